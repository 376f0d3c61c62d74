"""The ensemble members' opinions at one place of a case: each member's probability for one organ, their mean, and
the hotspot's region, cropped to a box, for the workspace's "members at a hotspot" and "local threshold" tools.

The browser asks for the box of the active organ's selected hotspot instead of downloading every member's volume
for every organ. Boxes are file voxel indices (x, y, z), inclusive, on the case's grid.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from annotation.errors import Invalid, NotFound
from annotation.models import Case, Prediction
from annotation.storage import local_copy
from ml_engine.io import load_on_grid

MAX_VOXELS = 8_000_000  # a box of 200^3: larger than any hotspot, far smaller than a 512 x 512 x 300 volume
AGREE_DICE = 0.9  # members agreeing this well in a region will not fix it for the annotator


@dataclass
class MemberCrops:
    organ: str
    box: list[list[int]]  # [[x0, y0, z0], [x1, y1, z1]], inclusive
    members: dict[str, np.ndarray]  # name -> uint8 (p x 255), shape of the box
    mean: np.ndarray  # uint8, the members' mean probability x 255 (rounded)
    region: np.ndarray | None  # bool: the attention hotspot's connected region around `seed`, dilated by one
    agreement: float | None  # smallest pairwise Dice of the members' (p > 0.5) masks inside the region

    def as_json(self) -> dict:
        """Arrays as base64 of their bytes with x fastest (Fortran order), as the viewer's volumes are laid out."""
        def pack(a: np.ndarray) -> str:
            return base64.b64encode(np.asfortranarray(a.astype(np.uint8)).tobytes(order="F")).decode()

        return {"organ": self.organ, "box": self.box, "shape": list(self.mean.shape),
                "members": [{"name": n, "probability": pack(a)} for n, a in sorted(self.members.items())],
                "mean": pack(self.mean), "region": pack(self.region) if self.region is not None else None,
                "agreement": self.agreement, "members_agree": self.agreement is not None and
                self.agreement >= AGREE_DICE}


def parse_box(text: str, shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    """'x0,y0,z0,x1,y1,z1' (inclusive file indices) clipped to the volume; Invalid when malformed or too large."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise Invalid("give six whole numbers x0,y0,z0,x1,y1,z1", field="box")
    lo = [max(0, values[k]) for k in range(3)]
    hi = [min(shape[k] - 1, values[3 + k]) for k in range(3)]
    if any(h < low for low, h in zip(lo, hi, strict=True)):
        raise Invalid(f"the box lies outside the volume of {' x '.join(map(str, shape[:3]))}", field="box")
    if np.prod([h - low + 1 for low, h in zip(lo, hi, strict=True)]) > MAX_VOXELS:
        raise Invalid(f"the box holds more than {MAX_VOXELS} voxels; ask for a hotspot's box", field="box")
    return tuple(slice(low, h + 1) for low, h in zip(lo, hi, strict=True))


def _crop(name: str, box: tuple[slice, slice, slice], case: Case) -> np.ndarray:
    """The stored map `name` inside box (slices of the case's grid): stored whole or cropped to its own box."""
    with local_copy(name) as path:
        return load_on_grid(path, tuple(case.shape), np.asarray(case.affine), box=box)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def member_crops(case: Case, *, organ: str, box: str, seed: list[int] | None = None) -> MemberCrops:
    """The latest prediction's members for `organ` inside `box`; with `seed` (file indices), the attention region."""
    prediction = Prediction.objects.filter(case=case).order_by("-round__number").first()
    if prediction is None:
        raise NotFound(f"case {case.name} has no prediction yet")
    soft = (prediction.files or {}).get("soft_pred") or {}
    names = {member: per_organ[organ] for member, per_organ in soft.items() if organ in per_organ}
    if not names:
        raise NotFound(f"no member's probability of {organ!r} is stored for case {case.name}", field="organ")
    slices = parse_box(box, tuple(case.shape))
    members = {member: _crop(name, slices, case).astype(np.uint8) for member, name in names.items()}
    mean = np.rint(np.mean(np.stack(list(members.values())).astype(np.float32), axis=0)).astype(np.uint8)
    region = None
    agreement = None
    attention = (prediction.files or {}).get("attention", {}).get(organ)
    if seed is not None and attention:
        region = _region(_crop(attention, slices, case) > 0, [s - sl.start for s, sl in zip(seed, slices, strict=True)])
        if region is not None:
            masks = [a[region] > 127 for a in members.values()]
            agreement = min((_dice(masks[i], masks[j]) for i in range(len(masks)) for j in range(i + 1, len(masks))),
                            default=None)
    lo = [s.start for s in slices]
    hi = [s.stop - 1 for s in slices]
    return MemberCrops(organ=organ, box=[lo, hi], members=members, mean=mean, region=region, agreement=agreement)


def _region(attention: np.ndarray, seed: list[int]) -> np.ndarray | None:
    """The connected attention component at the seed (else the one nearest to it), dilated by one voxel."""
    labels, count = ndimage.label(attention, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return None
    inside = all(0 <= s < n for s, n in zip(seed, attention.shape, strict=True))
    pick = labels[tuple(seed)] if inside else 0
    if pick == 0:
        points = np.argwhere(labels > 0)
        nearest = points[np.argmin(((points - np.array(seed)) ** 2).sum(axis=1))]
        pick = labels[tuple(nearest)]
    return ndimage.binary_dilation(labels == pick, structure=np.ones((3, 3, 3), dtype=bool))
