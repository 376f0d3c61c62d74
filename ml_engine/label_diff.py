"""What one label map changed against another, per organ: voxels added and removed, volumes before and after, where
the changes are; and the diff as a volume a viewer overlays (the lead's review view, annotation.services.review_diff).

Label maps are (x, y, z) integer arrays of one shape; values are organ values (0: background).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable

import nibabel as nib
import numpy as np

ADDED, REMOVED = 255, 96  # bright and dark red in a `hot` colour map


def organ_diff(new: np.ndarray, old: np.ndarray, values: Iterable[int]) -> dict[int, dict]:
    """{value: {"added", "removed", "before", "after" (voxels), "centre"}} for each value either map holds.

    Volumes are counted in slabs (bounded memory: no int64 copy of the whole volume); added and removed come from the
    changed voxels only, and so does centre, the middle of the box of the voxels where the organ changed (file voxel
    indices; None if it did not change).
    """
    values = list(values)
    k = int(max(new.max(initial=0), old.max(initial=0), max(values, default=0))) + 1
    order = "F" if new.flags.f_contiguous and old.flags.f_contiguous and not new.flags.c_contiguous else "C"
    flat_new, flat_old = new.ravel(order=order), old.ravel(order=order)  # views when the order matches
    before, after = _counts(flat_old, k), _counts(flat_new, k)
    changed = np.flatnonzero(flat_new != flat_old)
    new_at, old_at = flat_new[changed], flat_old[changed]
    added, removed = np.bincount(new_at, minlength=k), np.bincount(old_at, minlength=k)
    result = {}
    for value in values:
        if before[value] == 0 and after[value] == 0:
            continue
        where = changed[(new_at == value) | (old_at == value)]
        result[value] = {"added": int(added[value]), "removed": int(removed[value]), "before": int(before[value]),
                         "after": int(after[value]), "centre": _centre(where, new.shape, order)}
    return result


def _counts(flat: np.ndarray, k: int, slab: int = 1 << 22) -> np.ndarray:
    """Voxels of each value 0..k-1 in a flat integer array, counted 4 M voxels at a time."""
    total = np.zeros(k, dtype=np.int64)
    for start in range(0, flat.size, slab):
        total += np.bincount(flat[start:start + slab], minlength=k)[:k]
    return total


def _centre(flat_indices: np.ndarray, shape: tuple[int, ...], order: str) -> list[int] | None:
    if not len(flat_indices):
        return None
    voxels = np.stack(np.unravel_index(flat_indices, shape, order=order), axis=1)
    return [int(v) for v in (voxels.min(0) + voxels.max(0)) // 2]


def diff_mask(new: np.ndarray, old: np.ndarray, value: int | None = None) -> np.ndarray:
    """(x, y, z) uint8: ADDED where the organ `value` (any organ: None) gained voxels, REMOVED where it lost them."""
    out = np.zeros_like(new, dtype=np.uint8)  # the input's memory order (NIfTI's Fortran order): no transposing
    if value is None:
        changed = new != old
        out[changed & (new > 0)] = ADDED
        out[changed & (new == 0)] = REMOVED
    else:
        out[(new == value) & (old != value)] = ADDED
        out[(old == value) & (new != value)] = REMOVED
    return out


def nifti_gz_bytes(mask: np.ndarray, affine: np.ndarray) -> bytes:
    """A uint8 volume (x, y, z) as the bytes of a gzipped NIfTI with this affine (4, 4), built in memory: the diff a
    request serves and nothing keeps."""
    image = nib.Nifti1Image(np.asarray(mask, dtype=np.uint8), np.asarray(affine, dtype=np.float64))
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    return gzip.compress(image.to_bytes(), compresslevel=6)
