"""Boxes (three slices) into an (x, y, z) grid: the bounding box of a mask, and box arithmetic."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[slice, slice, slice]
EMPTY_BOX: Box = (slice(0, 0), slice(0, 0), slice(0, 0))


def bounding_box(mask: np.ndarray) -> Box | None:
    """Smallest box (slices) holding every nonzero voxel of a 3D array, or None if there is none.

    Reads the array once in full (a max over its last axis) and then only inside the box.
    """
    if mask.size == 0:
        return None
    plane = mask.max(axis=2)
    xs = np.flatnonzero(plane.max(axis=1))
    if xs.size == 0:
        return None
    ys = np.flatnonzero(plane.max(axis=0))
    x0, x1, y0, y1 = int(xs[0]), int(xs[-1]) + 1, int(ys[0]), int(ys[-1]) + 1
    zs = np.flatnonzero(mask[x0:x1, y0:y1].max(axis=(0, 1)))
    return (slice(x0, x1), slice(y0, y1), slice(int(zs[0]), int(zs[-1]) + 1))


def grow_box(box: Box, margin: int, shape: Sequence[int]) -> Box:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin))  # type: ignore[return-value]
                 for s, n in zip(box, shape, strict=True))


def box_union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b, strict=True))  # type: ignore


def box_intersection(a: Box, b: Box) -> Box | None:
    out = tuple(slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a, b, strict=True))
    return None if any(s.stop <= s.start for s in out) else out  # type: ignore[return-value]


def relative_box(inner: Box, outer: Box) -> Box:
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True))  # type: ignore


def box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(s.stop - s.start for s in box)  # type: ignore[return-value]
