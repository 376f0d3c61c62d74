"""Automatic quality checks of one multi-label map: what a careful reviewer would look at first.

Each check returns flags with a reason and the voxels or component concerned:

- ``volume``: an organ's volume outside the range seen (a robust z-score against a median and a scale, in mL);
- ``components``: more connected components (26-connected, each at least ``min_component_ml``) than the organ has;
- ``side``: a lateral organ on the wrong side of the body's midline, in world (RAS+) coordinates;
- ``edge``: an organ touching a face of the volume (it is probably cut off; the aorta and the IVC may leave through
  the top and the bottom);
- ``outside_body``: organ voxels in the air that surrounds the body (air connected to the volume's border);
- ``erased``: most of an organ that the previous label had is gone.

Pure NumPy / SciPy / cc3d, arrays plus their affine; every organ is examined inside its bounding box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cc3d
import numpy as np
from scipy import ndimage

CHECKS = ("volume", "components", "side", "edge", "outside_body", "erased")
# AbdomenAtlas-like adult organ volumes (mL): median and a robust scale (1.4826 x MAD), used until a dataset has data.
DEFAULT_VOLUME_ML: dict[str, tuple[float, float]] = {
    "liver": (1500.0, 350.0), "spleen": (200.0, 100.0), "kidney_right": (160.0, 45.0), "kidney_left": (165.0, 45.0),
    "gallbladder": (30.0, 20.0), "stomach": (300.0, 160.0), "aorta": (100.0, 40.0), "postcava": (70.0, 30.0),
    "pancreas": (80.0, 25.0),
}
# Organs that are one piece.
SINGLE = ("liver", "spleen", "kidney_right", "kidney_left", "gallbladder", "stomach", "aorta", "postcava", "pancreas")
# Vessels run through any abdominal scan: touching its top or bottom is normal.
THROUGH = ("aorta", "postcava")
# The patient's side of lateral organs: +1 right (larger x in RAS+), -1 left.
SIDES: dict[str, int] = {"liver": 1, "gallbladder": 1, "spleen": -1}
Z_LIMIT = 3.5
AIR_HU = -500.0


@dataclass
class Flag:
    organ: str
    check: str
    reason: str
    detail: dict = field(default_factory=dict)


def side_of(organ: str) -> int:
    """+1 for an organ of the patient's right, -1 of the left, 0 for a midline or unknown organ."""
    if organ.endswith("_right"):
        return 1
    if organ.endswith("_left"):
        return -1
    return SIDES.get(organ, 0)


def robust_range(volumes: Sequence[float]) -> tuple[float, float] | None:
    """(median, 1.4826 x median absolute deviation) of volumes; None for fewer than 5 or no spread."""
    if len(volumes) < 5:
        return None
    values = np.asarray(volumes, dtype=float)
    median = float(np.median(values))
    scale = 1.4826 * float(np.median(np.abs(values - median)))
    return (median, scale) if scale > 0 else None


def outside_air(ct: np.ndarray) -> np.ndarray:
    """(x, y, z) bool: air (< -500 HU) connected to a face of the volume, i.e. outside the body."""
    air = ct < AIR_HU
    labels = cc3d.connected_components(air.view(np.uint8) if air.dtype == bool else air, connectivity=6)
    faces = np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(), labels[:, -1].ravel(),
                            labels[:, :, 0].ravel(), labels[:, :, -1].ravel()])
    border = np.unique(faces[faces > 0])
    return np.isin(labels, border)


def _world(affine: np.ndarray, voxel: np.ndarray) -> np.ndarray:
    return affine[:3, :3] @ voxel + affine[:3, 3]


def _centre(mask: np.ndarray) -> np.ndarray:
    """The centroid (3,) in voxel coordinates of a bool mask, from its marginal counts (no list of voxels)."""
    total = np.count_nonzero(mask)
    return np.array([float(np.arange(n) @ np.count_nonzero(mask, axis=tuple(a for a in range(3) if a != axis)))
                     / total for axis, n in enumerate(mask.shape)])


def check_label(label: np.ndarray, affine: np.ndarray, organs: Mapping[str, int], *, ct: np.ndarray | None = None,
                previous: np.ndarray | None = None, volume_ranges: Mapping[str, tuple[float, float]] | None = None,
                min_component_ml: float = 0.05, erased_share: float = 0.5) -> tuple[list[Flag], dict[str, float]]:
    """Run every check on label ((x, y, z) uint8 in the organs' values) with its affine (4, 4).

    ct: the CT on the same grid (HU), for the body's midline and outside-body voxels (without it the volume's centre
    is the midline and that check is skipped); previous: the label this one replaces (for ``erased``);
    volume_ranges: {organ: (median, scale)} in mL (default: DEFAULT_VOLUME_ML). Returns (flags, {organ: volume mL}).
    """
    voxel_ml = abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0
    ranges = dict(DEFAULT_VOLUME_ML) | dict(volume_ranges or {})
    boxes = ndimage.find_objects(label, max_label=max(organs.values(), default=0))
    outside = outside_air(ct) if ct is not None else None
    midline_x = _world(affine, _centre(~outside) if outside is not None and not outside.all()
                       else (np.asarray(label.shape, dtype=float) - 1) / 2)[0]
    flags: list[Flag] = []
    volumes: dict[str, float] = {}
    for organ, value in organs.items():
        box = boxes[value - 1] if 0 < value <= len(boxes) else None
        before = int(np.count_nonzero(previous == value)) if previous is not None else None
        if box is None:
            volumes[organ] = 0.0
            if before:
                flags.append(Flag(organ, "erased", f"{organ}: all {before * voxel_ml:.1f} mL were erased",
                                  {"before_ml": round(before * voxel_ml, 3), "after_ml": 0.0}))
            continue
        mask = label[box] == value
        n = int(np.count_nonzero(mask))
        volumes[organ] = round(n * voxel_ml, 3)
        start = [s.start for s in box]
        bbox = [start, [s.stop for s in box]]
        if organ in ranges:
            median, scale = ranges[organ]
            z = (volumes[organ] - median) / scale if scale > 0 else 0.0
            if abs(z) > Z_LIMIT:
                flags.append(Flag(organ, "volume", f"{organ}: {volumes[organ]:.1f} mL is {abs(z):.1f} robust SD "
                                  f"{'above' if z > 0 else 'below'} the usual {median:.0f} mL",
                                  {"ml": volumes[organ], "median_ml": median, "scale_ml": scale, "z": round(z, 2)}))
        if organ in SINGLE:
            labels, count = cc3d.connected_components(mask.view(np.uint8), connectivity=26, return_N=True)
            sizes = np.bincount(labels.ravel())[1:]
            kept = np.flatnonzero(sizes * voxel_ml >= min_component_ml)
            if len(kept) > 1:
                order = kept[np.argsort(-sizes[kept])]
                parts = []
                for k in order[1:6]:  # the pieces beyond the largest, the biggest first
                    where = np.argwhere(labels == k + 1)
                    parts.append({"voxels": int(sizes[k]), "ml": round(float(sizes[k]) * voxel_ml, 3),
                                  "centroid": [round(float(c + o), 1) for c, o in zip(where.mean(axis=0), start,
                                                                                       strict=True)]})
                flags.append(Flag(organ, "components", f"{organ}: {len(kept)} separate pieces where there should "
                                  "be one", {"components": len(kept), "extra": parts, "bbox": bbox}))
        side = side_of(organ)
        if side:
            x_organ = _world(affine, _centre(mask) + np.asarray(start))[0]
            if (x_organ - midline_x) * side < 0:
                flags.append(Flag(organ, "side", f"{organ}: on the patient's {'left' if side > 0 else 'right'} "
                                  f"({x_organ - midline_x:+.0f} mm from the body's midline in x, RAS+)",
                                  {"x_mm": round(float(x_organ), 1), "midline_x_mm": round(float(midline_x), 1)}))
        faces = [f"{axis}{'-' if end == 0 else '+'}" for axis, s, size in zip("xyz", box, label.shape, strict=True)
                 for end in (0, size) if (s.start == 0 if end == 0 else s.stop == size)
                 and not (organ in THROUGH and axis == "z")]
        if faces:
            flags.append(Flag(organ, "edge", f"{organ}: touches the volume's edge ({', '.join(faces)}): probably cut "
                              "off", {"faces": faces, "bbox": bbox}))
        if outside is not None:
            out = int(np.count_nonzero(mask & outside[box]))
            if out * voxel_ml >= min_component_ml:
                flags.append(Flag(organ, "outside_body", f"{organ}: {out * voxel_ml:.2f} mL outside the body",
                                  {"voxels": out, "ml": round(out * voxel_ml, 3), "bbox": bbox}))
        if before and n < (1.0 - erased_share) * before:
            flags.append(Flag(organ, "erased", f"{organ}: {before * voxel_ml:.1f} mL became {n * voxel_ml:.1f} mL",
                              {"before_ml": round(before * voxel_ml, 3), "after_ml": volumes[organ]}))
    return flags, volumes
