"""What a person gives an interactive engine: positive and negative points, scribbles and a 2D box, in voxel indices
(x, y, z) of a crop of the case's grid; and how the click model sees them (click maps on its own grid).

Limits: every prompt lies inside the crop; at most MAX_POINTS points (clicks and scribble points together). A box is
[[x0, y0, z], [x1, y1, z]] (inclusive) on one slice: the organ, on that slice, lies inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_POINTS = 2048  # clicks plus scribble points of one request
CLICK_RADIUS_MM = 3.0  # a click's ball on the click model's grid (2 voxels at its 1.5 mm)

Point = tuple[int, int, int]


class PromptError(ValueError):
    """A prompt that cannot be used; `field` names what was wrong."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Scribble:
    points: tuple[Point, ...]  # in drawing order; consecutive points are joined
    positive: bool = True


@dataclass(frozen=True)
class Prompts:
    positive: tuple[Point, ...] = ()
    negative: tuple[Point, ...] = ()
    scribbles: tuple[Scribble, ...] = ()
    box: tuple[Point, Point] | None = None  # one slice: lo[2] == hi[2]

    def count(self) -> int:
        return len(self.positive) + len(self.negative) + sum(len(s.points) for s in self.scribbles)

    def empty(self) -> bool:
        return self.count() == 0 and self.box is None

    def checked(self, shape: Sequence[int]) -> Prompts:
        """Self, after checking that every prompt lies in a crop of `shape` and the limits hold (PromptError)."""
        if self.empty():
            raise PromptError("give at least one point, scribble or box", field="positive")
        if self.count() > MAX_POINTS:
            raise PromptError(f"{self.count()} points: at most {MAX_POINTS} in one request", field="positive")

        def inside(point: Sequence[int], name: str) -> None:
            if len(point) != 3 or any(not 0 <= int(p) < int(n) for p, n in zip(point, shape, strict=True)):
                raise PromptError(f"point {list(point)} lies outside the crop of {' x '.join(map(str, shape))}",
                                  field=name)

        for name, points in (("positive", self.positive), ("negative", self.negative)):
            for point in points:
                inside(point, name)
        for scribble in self.scribbles:
            if not scribble.points:
                raise PromptError("a scribble without points", field="scribbles")
            for point in scribble.points:
                inside(point, "scribbles")
        if self.box is not None:
            lo, hi = self.box
            inside(lo, "box")
            inside(hi, "box")
            if lo[2] != hi[2] or lo[0] > hi[0] or lo[1] > hi[1]:
                raise PromptError("a box is [[x0, y0, z], [x1, y1, z]] on one slice, x0 <= x1 and y0 <= y1",
                                  field="box")
        return self

    def signed_points(self) -> tuple[list[Point], list[Point]]:
        """(positive, negative) points with the scribbles drawn in (consecutive points joined voxel by voxel) and a
        box's centre as a positive click."""
        positive, negative = list(self.positive), list(self.negative)
        for scribble in self.scribbles:
            (positive if scribble.positive else negative).extend(polyline(scribble.points))
        if self.box is not None:
            lo, hi = self.box
            positive.append(tuple((a + b) // 2 for a, b in zip(lo, hi, strict=True)))  # type: ignore[arg-type]
        return positive, negative


def polyline(points: Sequence[Point]) -> list[Point]:
    """The voxels of a scribble: its points joined voxel by voxel, in order, each once."""
    out: list[Point] = [tuple(int(v) for v in points[0])]  # type: ignore[list-item]
    for a, b in zip(points[:-1], points[1:], strict=True):
        steps = int(max(abs(int(q) - int(p)) for p, q in zip(a, b, strict=True)))
        for k in range(1, steps + 1):
            out.append(tuple(int(round(p + (q - p) * k / steps)) for p, q in zip(a, b, strict=True)))  # type: ignore[arg-type]
    return list(dict.fromkeys(out))


def ball_offsets(radius: float) -> np.ndarray:
    """(n, 3) integer offsets of a ball of `radius` voxels."""
    r = int(np.floor(radius))
    grid = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1].reshape(3, -1).T
    return grid[(grid ** 2).sum(axis=1) <= radius ** 2 + 1e-6]


def click_map(points: Sequence[Sequence[float]], shape: Sequence[int], radius: float) -> np.ndarray:
    """(x, y, z) float32: 1 in a ball of `radius` voxels around each point (rounded), 0 elsewhere."""
    out = np.zeros(tuple(int(s) for s in shape), dtype=np.float32)
    if not len(points):
        return out
    offsets = ball_offsets(radius)
    centres = np.rint(np.asarray(points, dtype=np.float64)).astype(np.int64)
    voxels = (centres[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    keep = np.all((voxels >= 0) & (voxels < np.asarray(out.shape)), axis=1)
    voxels = voxels[keep]
    out[voxels[:, 0], voxels[:, 1], voxels[:, 2]] = 1.0
    return out


@dataclass
class ClickHistory:
    """Clicks placed so far on one organ (model-grid indices), for simulations."""

    positive: list[tuple[int, int, int]] = field(default_factory=list)
    negative: list[tuple[int, int, int]] = field(default_factory=list)
