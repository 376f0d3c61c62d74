"""Inter-annotator agreement of a double read: per organ Dice and NSD between the two reads' latest revisions.

Measured in the QC job of each revision that lands on a read (services.quality_checks), kept on the DoubleRead with
the two revisions it was measured on; the dashboard and the round metrics' label-bias matrix read it from there.
"""

from __future__ import annotations

import numpy as np

from annotation.models import DoubleRead, Organ, Revision
from annotation.selectors.double_reads import double_read_of
from annotation.selectors.labels import revisions
from annotation.storage import read_voxels
from ml_engine.metrics import dice, nsd, tolerance_for


def latest_reads(pair: DoubleRead) -> tuple[Revision | None, Revision | None]:
    """The newest revision no lead rejected of each read (None: that read has not landed)."""
    def newest(task_id: int) -> Revision | None:
        return revisions().filter(task_id=task_id).order_by("-number").first()

    return newest(pair.first_id), newest(pair.second_id)


def organ_agreement(a: np.ndarray, b: np.ndarray, organs: dict[int, str], spacing) -> dict[str, dict]:
    """{organ: {"dice", "nsd"}} of two label maps (x, y, z), for the organs either labels; NSD at FLARE's
    tolerance, computed inside the box of the two masks (one voxel of margin) to stay cheap on large volumes."""
    result = {}
    for value, organ in sorted(organs.items()):
        ma, mb = a == value, b == value
        either = ma | mb
        if not either.any():
            continue
        idx = np.argwhere(either)
        lo, hi = np.maximum(idx.min(0) - 1, 0), idx.max(0) + 2
        box = tuple(slice(int(x0), int(x1)) for x0, x1 in zip(lo, hi, strict=True))
        result[organ] = {"dice": round(dice(ma[box], mb[box]), 6),
                         "nsd": round(nsd(ma[box], mb[box], spacing, tolerance_for(organ)), 6)}
    return result


def update_agreement(revision: Revision) -> DoubleRead | None:
    """Measure (again) the agreement of the double read this revision belongs to, when both reads have landed and
    what was measured is not current. None: the revision is no read of a double read."""
    pair = double_read_of(revision.task_id)
    if pair is None:
        return None
    first, second = latest_reads(pair)
    if first is None or second is None:
        return pair
    key = f"r{first.pk}:r{second.pk}"
    if pair.agreement_key == key:
        return pair
    organs = dict(Organ.objects.filter(label_set=pair.case.dataset.label_set_id).values_list("value", "name"))
    agreement = organ_agreement(read_voxels(first.label_file.name), read_voxels(second.label_file.name), organs,
                                [float(s) for s in pair.case.spacing])
    DoubleRead.objects.filter(pk=pair.pk).update(agreement=agreement, agreement_key=key)
    pair.agreement, pair.agreement_key = agreement, key
    return pair
