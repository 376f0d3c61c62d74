"""What one label map changed against another, per organ: voxels added and removed, volumes before and after, where
the changes are; and the diff as a volume a viewer overlays (the lead's review view, annotation.services.review_diff).

Label maps are (x, y, z) integer arrays of one shape; values are organ values (0: background).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

ADDED, REMOVED = 255, 96  # bright and dark red in a `hot` colour map


def organ_diff(new: np.ndarray, old: np.ndarray, values: Iterable[int]) -> dict[int, dict]:
    """{value: {"added", "removed", "before", "after" (voxels), "centre"}} for each value either map holds.

    One pass for the counts (a confusion matrix from bincount) and one over the changed voxels for the centres:
    centre is the middle of the box of the voxels where the organ changed (file voxel indices), None if it did not.
    """
    values = list(values)
    k = int(max(new.max(initial=0), old.max(initial=0), max(values, default=0))) + 1
    joint = np.bincount((old.astype(np.int64) * k + new).ravel(), minlength=k * k).reshape(k, k)
    changed = np.argwhere(new != old)  # (n, 3)
    new_at, old_at = new[tuple(changed.T)], old[tuple(changed.T)]
    result = {}
    for value in values:
        before, after, both = int(joint[value, :].sum()), int(joint[:, value].sum()), int(joint[value, value])
        if before == 0 and after == 0:
            continue
        result[value] = {"added": after - both, "removed": before - both, "before": before, "after": after,
                         "centre": _centre(changed[(new_at == value) | (old_at == value)])}
    return result


def _centre(voxels: np.ndarray) -> list[int] | None:
    if not len(voxels):
        return None
    return [int(v) for v in (voxels.min(0) + voxels.max(0)) // 2]


def diff_mask(new: np.ndarray, old: np.ndarray, value: int | None = None) -> np.ndarray:
    """(x, y, z) uint8: ADDED where the organ `value` (any organ: None) gained voxels, REMOVED where it lost them."""
    out = np.zeros(new.shape, dtype=np.uint8)
    if value is None:
        changed = new != old
        out[changed & (new > 0)] = ADDED
        out[changed & (new == 0)] = REMOVED
    else:
        out[(new == value) & (old != value)] = ADDED
        out[(old == value) & (new != value)] = REMOVED
    return out
