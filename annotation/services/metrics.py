"""Round metrics that read NIfTI files, computed once and cached: the label-bias matrix (the paper's Figure 6a) and
the share of voxels decided by the AI versus changed by people (the paper: 92.5% / 7.5%).

Per case, a CaseMetrics row keeps what was computed from its prediction and latest revision, keyed by their ids:
`update_round_metrics` reads only the cases whose key changed (a new revision, a new prediction) and stores the
round's aggregate in Round.metrics with the key of what it saw (selectors.quality.metrics_key). GET endpoints read
Round.metrics and say whether it is stale; they never read files.

Masks: an architecture's mask of an organ is its soft prediction > 127 (uint8, p x 255, i.e. p > 0.5); the
ensemble's is the pseudo-label's value; the annotators' is the latest revision's value. Dice of a pair counts only
where at least one of the two masks is non-empty.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import CaseMetrics, DoubleRead, Job, Prediction, Revision, Round
from annotation.selectors.quality import latest_revisions, mean_or_none, metrics_key
from annotation.services import member_accuracy
from annotation.services.dispatch import enqueue
from annotation.storage import read_voxels
from ml_engine.io import ImageError
from ml_engine.metrics import dice

log = logging.getLogger(__name__)

ENSEMBLE, ANNOTATORS = "ensemble", "annotators"
Progress = Callable[[float, str], None]


def pair_dice(a: np.ndarray, b: np.ndarray) -> float | None:
    """Dice of two bool masks (x, y, z) of one shape; None when both are empty (the pair says nothing)."""
    if not (a.any() or b.any()):
        return None
    return round(dice(a, b), 6)


def case_key(prediction: Prediction, revision: Revision | None) -> str:
    """What a case's entry is computed from: its prediction (as last recorded) and its latest revision."""
    return f"p{prediction.pk}@{prediction.updated.timestamp():.6f}:r{revision.pk if revision is not None else 0}"


def case_entry(prediction: Prediction, revision: Revision | None, organs: dict[int, str]) -> dict:
    """One case's figures in a round.

    voxels: CT voxels; pseudo_foreground: voxels that are an organ in the pseudo-label. With a revision also:
    changed: voxels whose label differs between the revision and the pseudo-label; labelled: voxels that are an
    organ in either; sources and bias {organ: {"a|b": Dice}} between each pair of sources.
    """
    pseudo = read_voxels(prediction.pseudo_label.name)
    entry: dict = {"voxels": int(pseudo.size), "pseudo_foreground": int(np.count_nonzero(pseudo))}
    if revision is None:
        return entry
    label = read_voxels(revision.label_file.name)
    if label.shape != pseudo.shape:
        raise ImageError(revision.label_file.name, f"shape {label.shape} differs from the pseudo-label's "
                                                   f"{pseudo.shape}")
    entry.update(revision=revision.pk, kind=revision.kind, author=revision.author.username,
                 changed=int(np.count_nonzero(label != pseudo)),
                 labelled=int(np.count_nonzero((label > 0) | (pseudo > 0))))
    soft = (prediction.files or {}).get("soft_pred") or {}
    archs = sorted(soft)
    sources = [*archs, ENSEMBLE, ANNOTATORS]
    bias: dict[str, dict[str, float]] = {}
    for value, organ in sorted(organs.items()):
        masks = {arch: read_voxels(soft[arch][organ]) > 127 for arch in archs if soft[arch].get(organ)}
        masks[ENSEMBLE], masks[ANNOTATORS] = pseudo == value, label == value
        pairs = {}
        for i, a in enumerate(sources):
            for b in sources[i + 1:]:
                if a in masks and b in masks and (d := pair_dice(masks[a], masks[b])) is not None:
                    pairs[f"{a}|{b}"] = d
        if pairs:
            bias[organ] = pairs
    entry.update(sources=sources, bias=bias)
    entry["members"] = member_accuracy.case_members(prediction, revision, organs, label)
    return entry


def _matrix(sources: list[str], values: dict[str, float | None]) -> list[list[float | None]]:
    """Dice of each pair of sources; the diagonal is 1 (a model against itself), except the annotators' cell: two
    annotators' independent reads of one case (double reads), null until there are any."""
    n = len(sources)
    matrix: list[list[float | None]] = [
        [values.get(f"{a}|{a}") if i == j and a == ANNOTATORS else 1.0 if i == j else None for j in range(n)]
        for i, a in enumerate(sources)]
    for i, a in enumerate(sources):
        for j, b in enumerate(sources):
            if i != j:
                matrix[i][j] = values.get(f"{a}|{b}", values.get(f"{b}|{a}"))
    return matrix


def aggregate(entries: list[dict], organs: list[str], reads: list[dict] | None = None) -> dict:
    """The round's figures from its cases' entries: voxel shares and the label-bias matrices. reads: the double
    reads' agreements ({organ: {"dice", "nsd"}} each), the annotator-vs-annotator cell."""
    total = sum(e["voxels"] for e in entries)
    reviewed = [e for e in entries if "revision" in e]
    changed = sum(e["changed"] for e in reviewed)
    labelled = sum(e["labelled"] for e in reviewed) + sum(e["pseudo_foreground"] for e in entries
                                                          if "revision" not in e)
    voxels = {
        "total": total, "labelled": labelled, "changed_by_people": changed, "decided_by_ai": labelled - changed,
        "ai_share": round((labelled - changed) / labelled, 6) if labelled else None,
        "people_share": round(changed / labelled, 6) if labelled else None,
        "people_share_of_all": round(changed / total, 8) if total else None,
        "cases": len(entries), "cases_revised": sum(1 for e in reviewed if e["kind"] == Revision.Kind.REVISION),
        "cases_confirmed": sum(1 for e in reviewed if e["kind"] == Revision.Kind.CONFIRM),
    }
    archs = sorted({s for e in reviewed for s in e["sources"]} - {ENSEMBLE, ANNOTATORS})
    sources = [*archs, ENSEMBLE, ANNOTATORS]
    per_pair: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in reviewed:
        for organ, pairs in e["bias"].items():
            for pair, value in pairs.items():
                per_pair[organ][pair].append(value)
    for agreement in reads or []:
        for organ, values in agreement.items():
            per_pair[organ][f"{ANNOTATORS}|{ANNOTATORS}"].append(values["dice"])
    organ_means = {organ: {pair: mean_or_none(v) for pair, v in pairs.items()} for organ, pairs in per_pair.items()}
    overall: dict[str, list[float]] = defaultdict(list)
    for pairs in organ_means.values():
        for pair, value in pairs.items():
            if value is not None:
                overall[pair].append(value)
    names = [o for o in organs if o in organ_means] + sorted(set(organ_means) - set(organs))
    label_bias = {
        "sources": sources, "cases": len(reviewed),
        "mean": _matrix(sources, {pair: mean_or_none(v) for pair, v in overall.items()}),
        "organs": {organ: _matrix(sources, organ_means[organ]) for organ in names},
        "organ_cases": {organ: max((len(v) for v in per_pair[organ].values()), default=0) for organ in names},
    } if reviewed else None
    return {"voxels": voxels, "label_bias": label_bias}


def _save_entry(round: Round, case_id: int, key: str, data: dict) -> None:
    try:
        with transaction.atomic():
            CaseMetrics.objects.update_or_create(round=round, case_id=case_id, defaults={"key": key, "data": data})
    except IntegrityError:  # a concurrent update created the row first: ours is as good
        CaseMetrics.objects.filter(round=round, case_id=case_id).update(key=key, data=data)


def request_update(*, round: Round) -> Job:
    """Queue a METRICS job that brings the round's cached figures up to date (services.jobs runs it).

    When one is queued already and has not started, that one is returned: requests in a burst run once.
    """
    with transaction.atomic():
        Round.objects.select_for_update().filter(pk=round.pk).first()  # one request at a time per round
        waiting = round.jobs.filter(kind=Job.Kind.METRICS, status=Job.Status.QUEUED).first()
        if waiting is not None:
            return waiting
        n = round.jobs.filter(kind=Job.Kind.METRICS).count()
        job = Job.objects.create(key=f"round{round.number}:metrics:{n + 1}", kind=Job.Kind.METRICS, round=round)
        enqueue([job])
    return job


def update_round_metrics(*, round_id: int, progress: Progress | None = None) -> dict:
    """Bring a round's cached file-based metrics up to date and return them (Round.metrics).

    Reads only the cases whose prediction or latest revision changed since they were last computed; a case whose
    files cannot be read is left out and named in "errors". Safe to run twice or concurrently.
    """
    round = Round.objects.select_related("label_set").get(pk=round_id)
    key = metrics_key(round)  # first: what lands while this runs makes the result stale, never wrongly current
    organs = dict(round.label_set.organs.values_list("value", "name"))
    latest = latest_revisions(round)
    predictions = list(Prediction.objects.filter(round=round).order_by("case_id"))
    cached = {m.case_id: m for m in CaseMetrics.objects.filter(round=round)}
    entries, errors = [], []
    for i, prediction in enumerate(predictions):
        revision = latest.get(prediction.case_id)
        wanted = case_key(prediction, revision)
        row = cached.get(prediction.case_id)
        if row is not None and row.key == wanted:
            entries.append(row.data)
            continue
        try:
            data = case_entry(prediction, revision, organs)
        except (ImageError, OSError, KeyError) as exc:
            log.warning("round %s metrics: case %s: %s", round.number, prediction.case_id, exc)
            errors.append(f"case {prediction.case_id}: {exc}")
            continue
        _save_entry(round, prediction.case_id, wanted, data)
        entries.append(data)
        if progress is not None:
            progress((i + 1) / len(predictions), f"case {i + 1}/{len(predictions)}")
    CaseMetrics.objects.filter(round=round).exclude(case_id__in=[p.case_id for p in predictions]).delete()
    reads = [a for a in DoubleRead.objects.filter(round=round).values_list("agreement", flat=True) if a]
    metrics = {"key": key, "computed": timezone.now().isoformat(), "errors": errors,
               **aggregate(entries, [organs[v] for v in sorted(organs)], reads),
               "member_accuracy": member_accuracy.aggregate(round, entries)}
    Round.objects.filter(pk=round.pk).update(metrics=metrics)
    return metrics
