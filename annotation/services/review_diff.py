"""What a revision changed, for the lead's review view: per organ the voxels added and removed and the volumes
before and after (mL), against the label it was made from (selectors.labels.started_from); and the diff as a volume
the viewer overlays (uint8: ADDED where an organ gained voxels, REMOVED where it lost them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annotation.errors import Invalid
from annotation.models import Organ, Revision
from annotation.selectors.labels import started_from
from annotation.storage import read_voxels, scratch_dir
from ml_engine.io import write_nifti

ADDED, REMOVED = 255, 96  # brightest and a dark red in the viewer's heatmap colours


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
    k = int(max(new.max(initial=0), old.max(initial=0), max((o.value for o in organs), default=0))) + 1
    joint = np.bincount((old.astype(np.int64) * k + new).ravel(), minlength=k * k).reshape(k, k)
    changed = np.argwhere(new != old)  # (n, 3) file voxel indices
    new_at, old_at = new[tuple(changed.T)], old[tuple(changed.T)]
    rows = []
    for o in organs:
        before, after, both = int(joint[o.value, :].sum()), int(joint[:, o.value].sum()), int(joint[o.value, o.value])
        if before == 0 and after == 0:
            continue
        added, removed = after - both, before - both
        rows.append({"organ": o.name, "value": o.value, "display_name": o.display_name, "color": o.color,
                     "added": added, "removed": removed, "added_ml": _ml(added, voxel_ml),
                     "removed_ml": _ml(removed, voxel_ml), "before_ml": _ml(before, voxel_ml),
                     "after_ml": _ml(after, voxel_ml), "change_ml": _ml(after - before, voxel_ml),
                     "centre": _centre(changed[(new_at == o.value) | (old_at == o.value)])})
    return {"reference": about, "voxel_ml": round(voxel_ml, 6), "organs": rows}


def _centre(voxels: np.ndarray) -> list[int] | None:
    """The centre of the box of these (n, 3) voxels, in the file's voxel indices (None: no voxel)."""
    if not len(voxels):
        return None
    return [int(v) for v in (voxels.min(0) + voxels.max(0)) // 2]


def _ml(voxels: int, voxel_ml: float) -> float:
    return round(voxels * voxel_ml, 3)


def diff_volume(revision: Revision, organ: str | None = None) -> np.ndarray:
    """(x, y, z) uint8: ADDED where the organ (any organ: None) gained voxels, REMOVED where it lost them."""
    new, old, _ = _pair(revision)
    out = np.zeros(new.shape, dtype=np.uint8)
    if organ is None:
        changed = new != old
        out[changed & (new > 0)] = ADDED
        out[changed & (new == 0)] = REMOVED
        return out
    value = (Organ.objects.filter(label_set=revision.case.dataset.label_set_id, name=organ)
             .values_list("value", flat=True).first())
    if value is None:
        raise Invalid(f"{organ!r} is not an organ of this case's label set", field="organ")
    out[(new == value) & (old != value)] = ADDED
    out[(old == value) & (new != value)] = REMOVED
    return out


def diff_nifti(revision: Revision, organ: str | None = None) -> bytes:
    """The diff volume as a gzipped NIfTI on the case's grid (computed per request: revisions never change, and the
    file is small next to the CT)."""
    data = diff_volume(revision, organ)
    with scratch_dir("diff") as tmp:
        path = write_nifti(Path(tmp) / "diff.nii.gz", data, np.asarray(revision.case.affine), dtype=np.uint8)
        return Path(path).read_bytes()
