"""Read paths of audits: the reads of a round's audit sample, and what they say about the unrevised part (the
estimates with their 95% intervals, ml_engine.audit), about the auto-accepted part, and whether the audit's
stopping rule holds. The dashboard, `round_status` and the export's dataset card all read `audit_estimates`, so
their figures are the same.
"""

from __future__ import annotations

import numpy as np

from annotation.models import Audit, AuditCase, AutoAccept, DoubleRead, Round
from annotation.selectors.labels import revisions
from ml_engine.audit import Read, Thresholds, case_values, estimate

DEFAULT_THRESHOLDS = {"ml": Thresholds().ml, "dice": Thresholds().dice}


def audit_of(round: Round) -> Audit | None:
    return Audit.objects.filter(round=round).select_related("round__label_set").first()


def thresholds_of(audit: Audit) -> Thresholds:
    t = {**DEFAULT_THRESHOLDS, **(audit.settings.get("thresholds") or {})}
    return Thresholds(ml=t["ml"], dice=t["dice"])


def _voxel_ml(case) -> float:
    return abs(float(np.linalg.det(np.asarray(case.affine, dtype=float)[:3, :3]))) / 1000.0


def audit_reads(audit: Audit) -> list[tuple[AuditCase, list]]:
    """Each drawn case with its reads: the newest revision no lead rejected of its task, and of its double read's
    second task when it has one (an empty list: not read yet)."""
    rows = list(audit.cases.select_related("case", "task").order_by("order"))
    seconds = dict(DoubleRead.objects.filter(first_id__in=[r.task_id for r in rows])
                   .values_list("first_id", "second_id"))
    out = []
    for row in rows:
        reads = []
        for task_id in (row.task_id, seconds.get(row.task_id)):
            if task_id is None:
                continue
            newest = revisions().filter(task_id=task_id).order_by("-number").first()
            if newest is not None:
                reads.append(newest)
        out.append((row, reads))
    return out


def _read(row: AuditCase, revision, organs: list[str]) -> Read:
    voxel_ml = _voxel_ml(row.case)
    nsd = (row.nsd or {}).get(str(revision.pk))
    return Read(dice={o: float(revision.dice.get(o, 1.0)) for o in organs},
                changed_ml={o: float(revision.changed_voxels.get(o, 0)) * voxel_ml for o in organs},
                nsd=None if nsd is None else {o: float(nsd.get(o, 1.0)) for o in organs})


def _between(row: AuditCase, reads: list, organs: list[str]) -> Read | None:
    """The two reads' agreement of a double-read case, when measured on exactly these reads (services.audit)."""
    rater = row.rater or {}
    if len(reads) < 2 or rater.get("key") != f"r{reads[0].pk}:r{reads[1].pk}":
        return None
    per = rater.get("organs") or {}
    return Read(dice={o: float(per.get(o, {}).get("dice", 1.0)) for o in organs},
                changed_ml={o: float(per.get(o, {}).get("changed_ml", 0.0)) for o in organs},
                nsd={o: float(per.get(o, {}).get("nsd", 1.0)) for o in organs})


def audit_estimates(round: Round) -> dict | None:
    """The round's audit: how it was drawn, its sample sizes, and the estimates for the unrevised part (per organ
    and overall) and for the auto-accepted part, each with its 95% interval. None: the round has no audit."""
    audit = audit_of(round)
    if audit is None:
        return None
    organs = list(round.label_set.organ_names())
    thresholds = thresholds_of(audit)
    sizes = [int(n) for n in audit.frame.get("sizes", [])]
    strata_of = {int(k): int(v) for k, v in (audit.frame.get("strata") or {}).items()}
    accepted_ids = set(AutoAccept.objects.filter(case_id__in=list(strata_of)).values_list("case_id", flat=True))
    domain_sizes = [0] * len(sizes)
    for case_id, h in strata_of.items():
        if case_id in accepted_ids:
            domain_sizes[h] += 1
    pairs = audit_reads(audit)
    read, read_domain = [], []
    drawn = [0] * len(sizes)
    done = [0] * len(sizes)
    double = 0
    for row, reads in pairs:
        drawn[row.stratum] += 1
        if not reads:
            continue
        done[row.stratum] += 1
        double += len(reads) > 1
        values = case_values([_read(row, r, organs) for r in reads], organs, thresholds,
                             between=_between(row, reads, organs))
        read.append((row.stratum, values))
        if row.case_id in accepted_ids:
            read_domain.append((row.stratum, values))
    keys = ["overall", *organs]
    rater = _rater_agreement(pairs, organs)
    return {
        "round": round.number, "seed": audit.seed, "drawn": len(pairs), "read": len(read), "double_read": double,
        "frame": sum(sizes), "thresholds": {"ml": thresholds.ml, "dice": thresholds.dice},
        "settings": audit.settings, "created": audit.created.isoformat(),
        "strata": [{"stratum": h, "frame": n, "drawn": drawn[h], "read": done[h], "auto_accepted": domain_sizes[h]}
                   for h, n in enumerate(sizes)],
        "unrevised": estimate(sizes, read, keys, seed=audit.seed),
        "auto_accepted": {"cases": sum(domain_sizes), "read": len(read_domain),
                          "estimates": estimate(domain_sizes, read_domain, keys, seed=audit.seed)
                          if sum(domain_sizes) else None},
        "rater": rater,
    }


def _rater_agreement(pairs, organs: list[str]) -> dict:
    """The rater's own variability on the audit's double reads: mean Dice and NSD between the two reads per organ."""
    firsts = [row.task_id for row, reads in pairs if len(reads) > 1]
    agreements = [a for a in DoubleRead.objects.filter(first_id__in=firsts).values_list("agreement", flat=True) if a]
    result = {}
    for organ in organs:
        values = [a[organ] for a in agreements if organ in a]
        if values:
            result[organ] = {"dice": round(float(np.mean([v["dice"] for v in values])), 4),
                             "nsd": round(float(np.mean([v["nsd"] for v in values])), 4), "pairs": len(values)}
    return {"pairs": len(agreements), "organs": result}


def stop_target(round: Round) -> float | None:
    """The audit stopping rule's target (share), when the round has one."""
    value = (round.settings or {}).get("audit_stop")
    return None if value is None else float(value)


def audit_stop_holds(round: Round) -> tuple[bool, dict]:
    """Whether the audit's stopping rule holds: every drawn case read, and the upper end of the 95% interval of the
    unrevised part's share needing correction below the round's target. Returns (holds, {target, upper, read,
    drawn}); computed without the bootstrap (the share's interval is Wilson's)."""
    target = stop_target(round)
    audit = audit_of(round)
    if target is None or audit is None:
        return False, {"target": target}
    organs = list(round.label_set.organ_names())
    thresholds = thresholds_of(audit)
    pairs = audit_reads(audit)
    read = [(row.stratum, case_values([_read(row, r, organs) for r in reads], organs, thresholds,
                                      between=_between(row, reads, organs)))
            for row, reads in pairs if reads]
    sizes = [int(n) for n in audit.frame.get("sizes", [])]
    share = estimate(sizes, read, ["overall"], seed=audit.seed, resamples=1)["overall"]["needs_correction"]
    complete = len(read) == len(pairs) and len(pairs) > 0
    holds = complete and share["high"] is not None and share["high"] < target
    return holds, {"target": target, "upper": share["high"], "read": len(read), "drawn": len(pairs)}


WEIGHTED_COMBINATION = ("not measured: the ensemble's pseudo-label stays the plain mean of the members "
                        "(ml_engine.ensemble); a combination weighted by these figures per organ is not built, since "
                        "it has not been measured against the plain mean")


def _overall_row(round: Round) -> dict:
    estimates = audit_estimates(round)
    unrevised = (estimates or {}).get("unrevised", {}).get("overall") if estimates else None
    return {"round": round.number, "status": round.status, "converged": round.converged,
            "stopped_by": round.stopped_by, "drawn": estimates["drawn"] if estimates else 0,
            "read": estimates["read"] if estimates else 0, "frame": estimates["frame"] if estimates else 0,
            "auto_accepted": AutoAccept.objects.filter(round=round).count(),
            "needs_correction": unrevised["needs_correction"] if unrevised else None,
            "dice": unrevised["dice"] if unrevised else None}


def audit_board(round: Round | None) -> dict:
    """The dashboard's audit panel (and `round_status`'s): per round the audit's headline figures; for the shown
    round its estimates (unrevised and auto-accepted parts, per organ and overall), the stopping rules, the
    auto-accept rule and count, and which member is right where (from the round's file metrics)."""
    rounds = [_overall_row(r) for r in Round.objects.select_related("label_set").order_by("number")]
    if round is None:
        return {"round": None, "rounds": rounds, "audit": None, "stopping": None, "auto_accept": None,
                "members": None, "weighted_combination": WEIGHTED_COMBINATION}
    holds, stop = audit_stop_holds(round)
    return {
        "round": round.number, "rounds": rounds, "audit": audit_estimates(round),
        "stopping": {"stopped_by": round.stopped_by, "converged": round.converged, "audit_target": stop.get("target"),
                     "audit_upper": stop.get("upper"), "audit_holds": holds},
        "auto_accept": {"rule": (round.settings or {}).get("auto_accept"),
                        "cases": AutoAccept.objects.filter(round=round).count()},
        "members": (round.metrics or {}).get("member_accuracy"),
        "weighted_combination": WEIGHTED_COMBINATION,
    }
