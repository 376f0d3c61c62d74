"""Which member is right where: per organ, each ensemble member's Dice and NSD against the human label, and which
member the human label agrees with best at each attention hotspot.

Part of the round's file metrics (services.metrics): `case_members` adds a case's figures to its cached entry (once
per prediction and latest revision); `aggregate` sums them over the cases whose latest revision a lead accepted or
that read an audit case (the human labels the platform trusts), into Round.metrics["member_accuracy"].

"Used at a hotspot": the workspace does not record which member an annotator took, so it is measured: inside each
hotspot's box (models.OrganAttention.hotspots), the member (or the members' mean, "mean") whose mask agrees with the
human label on the most voxels; a tie counts for none of them ("tie").
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from annotation.models import AuditCase, DoubleRead, OrganAttention, Prediction, Review, Revision, Round
from annotation.storage import read_voxels
from ml_engine.metrics import dice, nsd, tolerance_for

MEAN, TIE = "mean", "tie"


def _dice_nsd(a: np.ndarray, b: np.ndarray, spacing, organ: str) -> dict[str, float]:
    """Dice and NSD of two bool masks, inside the box of both (one voxel of margin); both empty: 1 and 1."""
    either = a | b
    if not either.any():
        return {"dice": 1.0, "nsd": 1.0}
    idx = np.argwhere(either)
    lo, hi = np.maximum(idx.min(0) - 1, 0), idx.max(0) + 2
    box = tuple(slice(int(x0), int(x1)) for x0, x1 in zip(lo, hi, strict=True))
    return {"dice": round(float(dice(a[box], b[box])), 6),
            "nsd": round(float(nsd(a[box], b[box], spacing, tolerance_for(organ))), 6)}


def case_members(prediction: Prediction, revision: Revision, organs: dict[int, str], label: np.ndarray) -> dict:
    """{"organs": {organ: {member: {"dice", "nsd"}}}, "hotspots": {organ: {member | "mean" | "tie": count}}} of one
    case: each member's mask (soft prediction > 127) against the human label (x, y, z) of its latest revision."""
    soft = (prediction.files or {}).get("soft_pred") or {}
    spacing = [float(s) for s in prediction.case.spacing]
    pseudo = read_voxels(prediction.pseudo_label.name)
    hotspots = dict(OrganAttention.objects.filter(case=prediction.case_id, round=prediction.round_id)
                    .values_list("organ__name", "hotspots"))
    out: dict = {"organs": {}, "hotspots": {}}
    for value, organ in sorted(organs.items()):
        human = label == value
        masks = {member: read_voxels(names[organ]) > 127 for member, names in sorted(soft.items()) if names.get(organ)}
        if not masks:
            continue
        out["organs"][organ] = {member: _dice_nsd(mask, human, spacing, organ) for member, mask in masks.items()}
        counts: dict[str, int] = defaultdict(int)
        candidates = {**masks, MEAN: pseudo == value}
        for spot in hotspots.get(organ) or []:
            (x0, y0, z0), (x1, y1, z1) = spot["bbox"]
            box = (slice(x0, x1), slice(y0, y1), slice(z0, z1))
            agree = {name: int(np.count_nonzero(mask[box] == human[box])) for name, mask in candidates.items()}
            best = max(agree.values())
            winners = [name for name, n in agree.items() if n == best]
            counts[winners[0] if len(winners) == 1 else TIE] += 1
        if counts:
            out["hotspots"][organ] = dict(counts)
    return out


def trusted_revisions(round: Round) -> set[int]:
    """Revision ids whose labels count as the human truth here: accepted by a lead, or a read of an audit case."""
    accepted = Revision.objects.filter(task__round=round, review__decision=Review.Decision.ACCEPTED)
    audit_tasks = list(AuditCase.objects.filter(audit__round=round).values_list("task_id", flat=True))
    audit_tasks += list(DoubleRead.objects.filter(first_id__in=audit_tasks).values_list("second_id", flat=True))
    audited = Revision.objects.filter(task_id__in=audit_tasks).exclude(review__decision=Review.Decision.REJECTED)
    return set(accepted.values_list("pk", flat=True)) | set(audited.values_list("pk", flat=True))


def aggregate(of_round: Round, entries: list[dict]) -> dict:
    """{"cases", "organs": {organ: {member: {"dice", "nsd", "cases", "used"}}}, "ties": {organ: n}}: the means over
    the trusted cases (trusted_revisions) and each member's hotspot count."""
    trusted = trusted_revisions(of_round)
    per: dict[str, dict[str, dict[str, list[float]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    cases = 0
    for entry in entries:
        figures = entry.get("members")
        if not figures or entry.get("revision") not in trusted:
            continue
        cases += 1
        for organ, members in figures["organs"].items():
            for member, values in members.items():
                per[organ][member]["dice"].append(values["dice"])
                per[organ][member]["nsd"].append(values["nsd"])
        for organ, counts in figures["hotspots"].items():
            for member, n in counts.items():
                used[organ][member] += n
    organs = {}
    for organ, members in per.items():
        organs[organ] = {member: {"dice": round(float(np.mean(v["dice"])), 4),
                                  "nsd": round(float(np.mean(v["nsd"])), 4), "cases": len(v["dice"]),
                                  "used": used[organ].get(member, 0)} for member, v in sorted(members.items())}
        if used[organ].get(MEAN):
            organs[organ][MEAN] = {"dice": None, "nsd": None, "cases": 0, "used": used[organ][MEAN]}
    return {"cases": cases, "organs": organs, "ties": {o: c[TIE] for o, c in used.items() if c.get(TIE)}}
