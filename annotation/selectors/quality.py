"""Read paths for the quality of each round: attention curves, pseudo-label Dice against the revisions, model
validation Dice, error tags, and the cached file-based figures (annotation.services.metrics).

Everything here is database-only; the figures that need NIfTI files are read from Round.metrics, never computed.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict

from django.db.models import Count, Exists, Max, OuterRef

from annotation.figures import round_ml, rounded
from annotation.models import DoubleRead, ErrorTag, Prediction, Revision, RevisionTag, Round, Task
from annotation.selectors.labels import revisions

METRICS_VERSION = 1


def round_revisions(round: Round):
    """The round's revisions that count (selectors.labels.revisions: a rejection sends the task back, not the truth)."""
    return revisions().filter(task__round=round)


def latest_revisions(round: Round) -> dict[int, Revision]:
    """case id -> the latest non-rejected revision made on the round's task for that case."""
    latest: dict[int, Revision] = {}
    for revision in round_revisions(round).select_related("author").order_by("case_id", "-number"):
        latest.setdefault(revision.case_id, revision)
    return latest


def metrics_key(round: Round) -> str:
    """What Round.metrics must have been computed from to be current: its revisions and predictions."""
    revisions = Revision.objects.filter(task__round=round).aggregate(n=Count("id"), last=Max("id"),
                                                                     reviewed=Count("review"))
    predictions = Prediction.objects.filter(round=round).aggregate(n=Count("id"), last=Max("id"), at=Max("updated"))
    at = f"{predictions['at'].timestamp():.6f}" if predictions["at"] else "0"
    measured = ",".join(DoubleRead.objects.filter(round=round).exclude(agreement_key="").order_by("pk")
                        .values_list("agreement_key", flat=True))  # the double reads' agreements
    reads = hashlib.sha256(measured.encode()).hexdigest()[:12] if measured else "0"
    return (f"v{METRICS_VERSION}:rev{revisions['n']}-{revisions['last'] or 0}-{revisions['reviewed']}"
            f":pred{predictions['n']}-{predictions['last'] or 0}-{at}:reads{reads}")



def mean_or_none(values: list[float]) -> float | None:
    return rounded(statistics.fmean(values), 6) if values else None


def attention_curves(rounds=None) -> list[dict]:
    """Per round (ascending): every case's attention size (mL, its task's priority), largest first, with whether
    it was revised or confirmed in that round. The paper's Figure 3a, one line per round."""
    rounds = list(rounds if rounds is not None else Round.objects.order_by("number"))
    result = []
    for round in rounds:
        kept = round_revisions(round).filter(task=OuterRef("pk"))
        rows = (Task.objects.filter(round=round).order_by("-priority", "id")
                .annotate(revised=Exists(kept.filter(kind=Revision.Kind.REVISION)),
                          confirmed=Exists(kept.filter(kind=Revision.Kind.CONFIRM)))
                .values_list("case_id", "case__name", "priority", "revised", "confirmed"))
        result.append({"round": round.number, "status": round.status, "converged": round.converged,
                       "cases": [{"rank": i + 1, "case_id": case_id, "case": name, "size_ml": round_ml(size),
                                  "revised": revised, "confirmed": confirmed}
                                 for i, (case_id, name, size, revised, confirmed) in enumerate(rows)]})
    return result



def attention_distribution(round: Round) -> dict:
    """Summary of the round's attention sizes (mL per case): count, total, mean, median, 90th percentile, max."""
    sizes = sorted(float(v) for v in Task.objects.filter(round=round).values_list("priority", flat=True))
    if not sizes:
        return {"cases": 0, "total_ml": 0.0, "mean_ml": None, "median_ml": None, "p90_ml": None, "max_ml": None,
                "zero_cases": 0}
    p90 = sizes[min(len(sizes) - 1, int(0.9 * len(sizes)))]
    return {"cases": len(sizes), "total_ml": round_ml(sum(sizes)), "mean_ml": round_ml(statistics.fmean(sizes)),
            "median_ml": round_ml(statistics.median(sizes)), "p90_ml": round_ml(p90), "max_ml": round_ml(sizes[-1]),
            "zero_cases": sum(1 for s in sizes if s <= 0)}


def pseudo_label_dice(round: Round, organs: list[str]) -> dict:
    """Per organ: Dice of the round's pseudo-label against the latest revision of each case that was revised or
    confirmed in the round (Revision.dice, computed when the revision was stored). mean, min and n cases."""
    values: dict[str, list[float]] = defaultdict(list)
    latest = latest_revisions(round)
    for revision in latest.values():
        for organ, value in (revision.dice or {}).items():
            if value is not None:
                values[organ].append(float(value))
    names = [o for o in organs if o in values] + sorted(set(values) - set(organs))
    per_organ = {o: {"mean": mean_or_none(values[o]), "min": rounded(min(values[o]), 6), "n": len(values[o])}
                 for o in names}
    means = [v["mean"] for v in per_organ.values() if v["mean"] is not None]
    return {"cases": len(latest), "organs": per_organ, "mean": mean_or_none(means)}


def validation(round: Round) -> list[dict]:
    """Validation Dice of each of the round's models (M_k) against its parent (M_{k-1}) on revised cases held out
    from fine-tuning, as training stored it in ModelVersion.metadata["validation"]; [] when none was."""
    rows = []
    for version in round.members.order_by("arch", "name"):
        block = (version.metadata or {}).get("validation")
        if not isinstance(block, dict):
            continue
        rows.append({"arch": version.arch, "model": version.name, "parent": version.parent.name
                     if version.parent_id else None, "cases": list(block.get("cases") or []),
                     "mean": block.get("mean"), "parent_mean": block.get("parent_mean"),
                     "dice": dict(block.get("dice") or {}), "parent_dice": dict(block.get("parent_dice") or {})})
    return rows


def error_tags(round: Round) -> dict:
    """Error-tag counts by organ over the round's revisions, in the taxonomy's order."""
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (RevisionTag.objects.filter(revision__task__round=round).values_list("organ__name", "tag__code")
            .annotate(n=Count("id")).order_by("organ__value", "tag__id"))
    for organ, tag, n in rows:
        counts[organ][tag] = n
    order = list(round.label_set.organ_names())
    names = [o for o in order if o in counts] + sorted(set(counts) - set(order))
    return {"tags": list(ErrorTag.objects.order_by("id").values_list("code", flat=True)),
            "organs": {o: counts[o] for o in names}, "total": sum(n for per in counts.values() for n in per.values())}


def round_quality(round: Round) -> dict:
    """Everything the dashboard and round_status show about one round's quality."""
    organs = list(round.label_set.organ_names())
    cached = dict(round.metrics or {})
    key = metrics_key(round)
    return {
        "round": round.number, "status": round.status, "converged": round.converged,
        "created": round.created.isoformat(), "finished": round.finished.isoformat() if round.finished else None,
        "organs": organs,
        "attention": attention_distribution(round),
        "tasks": _task_counts(round),
        "pseudo_label_dice": pseudo_label_dice(round, organs),
        "validation": validation(round),
        "error_tags": error_tags(round),
        "label_bias": cached.get("label_bias"),
        "voxels": cached.get("voxels"),
        "metrics": {"computed": cached.get("computed"), "key": cached.get("key"), "current_key": key,
                    "stale": cached.get("key") != key},
    }


def _task_counts(round: Round) -> dict:
    counts = {s: 0 for s in Task.Status.values}
    counts.update(dict(Task.objects.filter(round=round).values_list("status").annotate(n=Count("id")).order_by()))
    return counts


def quality(rounds=None) -> list[dict]:
    """round_quality of every round, ascending."""
    rounds = rounds if rounds is not None else Round.objects.select_related("label_set").order_by("number")
    return [round_quality(r) for r in rounds]


def convergence(round: Round) -> str:
    """A line saying whether the loop has converged, by the paper's stopping rule."""
    if round.converged is True:
        return "yes: the round's top-priority case was confirmed with no change"
    if round.converged is False:
        return "no: the round's top-priority case needed a revision"
    top = Task.objects.filter(round=round).order_by("-priority", "id").first()
    if top is None:
        return "not yet: the round has no tasks"
    return f"not yet: the top-priority case ({top.case.name}) has not been revised or confirmed"
