"""What a revision changed, for the lead's review view: per organ the voxels added and removed and the volumes
before and after (mL), against the label it was made from (selectors.labels.started_from); and the diff as a volume
the viewer overlays (uint8: ADDED where an organ gained voxels, REMOVED where it lost them)."""

from __future__ import annotations

import numpy as np

from annotation.errors import Invalid
from annotation.models import Organ, Revision
from annotation.selectors.labels import started_from
from annotation.storage import read_voxels
from ml_engine.label_diff import diff_mask, nifti_gz_bytes, organ_diff


def _pair(revision: Revision) -> tuple[np.ndarray, np.ndarray, dict]:
    new = read_voxels(revision.label_file.name)
    ref = started_from(revision)
    old = read_voxels(ref.name) if ref is not None else np.zeros_like(new)
    about = {"source": ref.source if ref is not None else "empty",
             "revision": ref.revision.pk if ref is not None and ref.revision is not None else None,
             "number": ref.revision.number if ref is not None and ref.revision is not None else None}
    return new, old, about


def diff_summary(revision: Revision) -> dict:
    """{"reference": {source, revision, number}, "voxel_ml", "organs": [{organ, value, display_name, color, added,
    removed, added_ml, removed_ml, before_ml, after_ml, change_ml, centre}]} for the organs either label holds;
    centre: the middle of the changed voxels' box (file voxel indices), where the view goes to show them."""
    new, old, about = _pair(revision)
    case = revision.case
    voxel_ml = float(np.prod([float(s) for s in case.spacing])) / 1000.0
    organs = list(Organ.objects.filter(label_set=case.dataset.label_set_id).order_by("value"))
    counts = organ_diff(new, old, [o.value for o in organs])
    rows = []
    for o in organs:
        if o.value not in counts:
            continue
        c = counts[o.value]
        rows.append({"organ": o.name, "value": o.value, "display_name": o.display_name, "color": o.color,
                     "added": c["added"], "removed": c["removed"], "added_ml": _ml(c["added"], voxel_ml),
                     "removed_ml": _ml(c["removed"], voxel_ml), "before_ml": _ml(c["before"], voxel_ml),
                     "after_ml": _ml(c["after"], voxel_ml), "change_ml": _ml(c["after"] - c["before"], voxel_ml),
                     "centre": c["centre"]})
    return {"reference": about, "voxel_ml": round(voxel_ml, 6), "organs": rows}


def _ml(voxels: int, voxel_ml: float) -> float:
    return round(voxels * voxel_ml, 3)


def diff_volume(revision: Revision, organ: str | None = None) -> np.ndarray:
    """(x, y, z) uint8: ADDED where the organ (any organ: None) gained voxels, REMOVED where it lost them."""
    value = None
    if organ is not None:
        value = (Organ.objects.filter(label_set=revision.case.dataset.label_set_id, name=organ)
                 .values_list("value", flat=True).first())
        if value is None:
            raise Invalid(f"{organ!r} is not an organ of this case's label set", field="organ")
    new, old, _ = _pair(revision)
    return diff_mask(new, old, value)


def diff_nifti(revision: Revision, organ: str | None = None) -> bytes:
    """The diff volume as a gzipped NIfTI on the case's grid, computed per request in memory (revisions never change,
    and the file is small next to the CT)."""
    return nifti_gz_bytes(diff_volume(revision, organ), np.asarray(revision.case.affine))
