"""Hotspots: connected components of an attention map, for the viewer to jump to, largest first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hotspot:
    """One connected component of an attention map, in voxel coordinates of the full (x, y, z) volume.

    centroid: mean voxel index (x, y, z). bbox_start / bbox_stop: first and one-past-last voxel index per axis.
    """

    voxels: int
    volume_ml: float
    centroid: tuple[float, float, float]
    bbox_start: tuple[int, int, int]
    bbox_stop: tuple[int, int, int]

    def to_dict(self, affine: np.ndarray | None = None) -> dict:
        """The one hotspot JSON format (the `attention` CLI's attention.json, the platform's OrganAttention rows and
        the workspace): {voxels, ml, centroid: voxel (x, y, z), bbox: [start, stop] (voxel indices, stop one past
        the last)}; with the (4, 4) voxel-to-RAS+ affine, also centroid_mm (world mm)."""
        out = {
            "voxels": self.voxels,
            "ml": round(self.volume_ml, 6),
            "centroid": [round(c, 3) for c in self.centroid],
            "bbox": [list(self.bbox_start), list(self.bbox_stop)],
        }
        if affine is not None:
            world = np.asarray(affine, dtype=np.float64) @ np.array([*self.centroid, 1.0])
            out["centroid_mm"] = [round(float(v), 3) for v in world[:3]]
        return out


def label_components(mask: np.ndarray, *, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Connected components of a bool mask (x, y, z): labels (x, y, z) uint32, 0 = background, and their count."""
    import cc3d

    mask = np.asarray(mask, dtype=bool)
    if mask.size == 0 or not mask.any():
        return np.zeros(mask.shape, dtype=np.uint32), 0
    labels, count = cc3d.connected_components(np.ascontiguousarray(mask).view(np.uint8), connectivity=connectivity,
                                              return_N=True, out_dtype=np.uint32)
    return labels, int(count)


def find_hotspots(mask: np.ndarray, *, spacing: Sequence[float], offset: Sequence[int] = (0, 0, 0),
                  connectivity: int = 26) -> list[Hotspot]:
    """Connected components of mask (x, y, z bool), largest first (ties: first in scan order).

    offset: where mask's [0, 0, 0] lies in the full volume (for crops); spacing (mm) gives the volumes in mL.
    """
    import cc3d

    labels, count = label_components(mask, connectivity=connectivity)
    if count == 0:
        return []
    stats = cc3d.statistics(labels)
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    counts = np.asarray(stats["voxel_counts"], dtype=np.int64)
    centroids = np.asarray(stats["centroids"], dtype=np.float64)
    boxes = stats["bounding_boxes"]
    off = [int(o) for o in offset]
    found = []
    for label in range(1, count + 1):
        n = int(counts[label])
        if n == 0:
            continue
        box = boxes[label]
        found.append(Hotspot(
            voxels=n, volume_ml=n * voxel_ml,
            centroid=tuple(float(centroids[label, k]) + off[k] for k in range(3)),  # type: ignore[arg-type]
            bbox_start=tuple(int(box[k].start) + off[k] for k in range(3)),  # type: ignore[arg-type]
            bbox_stop=tuple(int(box[k].stop) + off[k] for k in range(3)),  # type: ignore[arg-type]
        ))
    found.sort(key=lambda h: -h.voxels)  # stable: equal sizes keep scan order
    return found
