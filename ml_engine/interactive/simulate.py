"""Simulated clicks, as DeepEdit trains and as the validation figures count them.

A simulated person clicks at the deepest point (largest distance to the region's border) of the largest region where
the current label and the target disagree: inside a missed part, a positive click; inside an extra part, a
negative one. `degrade` makes a wrong starting label from a target when no pseudo-label is at hand (training on
phantoms): the errors an ensemble makes (a shifted, shrunk or swollen organ, a missing chunk, an extra blob, or
nothing at all).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from ml_engine.interactive.model import PASSES, ClickCheckpoint, answer
from ml_engine.interactive.prompts import click_map

_BALL = ndimage.generate_binary_structure(3, 1)


def next_click(label: np.ndarray, target: np.ndarray) -> tuple[tuple[int, int, int], bool] | None:
    """(voxel, positive) of the click a person would place next, None when label equals target."""
    missed = target & ~label
    extra = label & ~target
    best: tuple[float, tuple[int, int, int], bool] | None = None
    for error, positive in ((missed, True), (extra, False)):
        if not error.any():
            continue
        parts, count = ndimage.label(error)
        sizes = np.bincount(parts.ravel())[1:]
        biggest = int(np.argmax(sizes)) + 1
        if best is not None and sizes[biggest - 1] <= best[0]:
            continue
        region = parts == biggest
        depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1, 1:-1]
        point = tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), region.shape))
        best = (float(sizes[biggest - 1]), point, positive)  # type: ignore[assignment]
    return None if best is None else (best[1], best[2])


def _ball(shape: Sequence[int], centre: Sequence[float], radius: float) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, int(n)) for n in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius ** 2  # type: ignore[return-value]


def degrade(target: np.ndarray, rng: np.random.Generator, kinds: Sequence[str] | None = None) -> np.ndarray:
    """A wrong label made from `target` (bool, x, y, z): one or two of the ensemble's kinds of error (the paper's,
    and the effort benchmark's): the organ shifted, shrunk or swollen; a chunk missing or a blob added at its edge;
    an island far from it; its cross-sections missing on a run of slices (z), or its part beyond a plane missing
    over a run of slices (a part missed, or taken by a neighbour); or no label at all. `kinds` (of ERRORS) chooses
    them instead of the draw."""
    label = target.copy()
    if kinds is None:
        kinds = rng.choice(list(ERRORS), size=int(rng.integers(1, 3)), replace=False, p=list(ERRORS.values()))
    inside = np.argwhere(target)
    for kind in kinds:
        if kind == "empty":
            label[:] = False
        elif kind == "shift":
            label = np.roll(label, tuple(int(v) for v in rng.integers(-3, 4, size=3)), axis=(0, 1, 2))
        elif kind == "erode":
            label = ndimage.binary_erosion(label, _BALL, iterations=int(rng.integers(1, 3)))
        elif kind == "dilate":
            label = ndimage.binary_dilation(label, _BALL, iterations=int(rng.integers(1, 3)))
        elif kind == "chunk" and len(inside):
            centre = inside[int(rng.integers(len(inside)))]
            label &= ~_ball(label.shape, centre, float(rng.uniform(3, 8)))
        elif kind == "blob":
            base = inside[int(rng.integers(len(inside)))] if len(inside) else np.array(label.shape) // 2
            centre = base + rng.integers(-8, 9, size=3)
            label |= _ball(label.shape, centre, float(rng.uniform(2, 6)))
        elif kind == "island":
            label |= _island(target, rng)
        elif kind in ("slices", "side") and len(inside):
            label &= ~_lost_run(label.shape, inside, kind == "side", rng)
    return label


ERRORS = {"shift": 0.1, "erode": 0.1, "dilate": 0.08, "chunk": 0.12, "blob": 0.08, "empty": 0.06, "island": 0.18,
          "slices": 0.14, "side": 0.14}  # degrade's kinds and how often each is drawn


def _lost_run(shape: Sequence[int], inside: np.ndarray, side: bool, rng: np.random.Generator) -> np.ndarray:
    """What a run of 2 to 8 of the organ's slices (z) loses: all of it, or (side) its part beyond a plane across x or
    y at a random depth of the organ (`inside`: the organ's voxels)."""
    zs = np.unique(inside[:, 2])
    run = int(rng.integers(2, 9))
    z0 = int(zs[int(rng.integers(len(zs)))]) - run // 2
    cut = np.zeros(tuple(shape), bool)
    cut[:, :, max(0, z0):z0 + run] = True
    if side:
        axis = int(rng.integers(0, 2))
        at = int(np.percentile(inside[:, axis], float(rng.uniform(40, 85))))
        plane = np.zeros(shape[axis], bool)
        plane[at:] = True
        if rng.random() < 0.5:
            plane = ~plane
        cut &= np.expand_dims(plane, tuple(a for a in range(3) if a != axis))
    return cut


def _island(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A false ball of radius 2 to 6 voxels centred 4 to 20 voxels outside the organ (a small one near it may touch
    it); none when the patch has no room."""
    outside = ndimage.distance_transform_edt(~target) if target.any() else np.full(target.shape, 10.0)
    room = np.argwhere((outside >= 4) & (outside <= 20))
    if not len(room):
        return np.zeros_like(target)
    centre = room[int(rng.integers(len(room)))]
    return _ball(target.shape, centre, float(rng.uniform(2, 6))) & ~target


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


@torch.no_grad()
def click_session(model: torch.nn.Module, image: np.ndarray, start: np.ndarray, target: np.ndarray, clicks: int,
                  radius: float, passes: int = PASSES) -> list[float]:
    """Dice with the target before any click and after each of `clicks` simulated clicks; image, start, target on
    the model's grid with every side a multiple of its divisor. Each click's output (the engine's `passes` passes of
the network, before the tool keeps only its changes at the clicks) is the next click's label."""
    label = start.astype(bool)
    positive: list[tuple[int, int, int]] = []
    negative: list[tuple[int, int, int]] = []
    dice = [_dice(label, target)]
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    for _ in range(clicks):
        click = next_click(label, target)
        if click is not None:
            (positive if click[1] else negative).append(click[0])
            maps = [torch.from_numpy(click_map(p, image.shape, radius))[None] for p in (positive, negative)]
            logits = answer(model, x, torch.from_numpy(label.astype(np.float32))[None], *maps, passes=passes)
            label = (logits[0, 0] > 0).numpy()
        dice.append(_dice(label, target))
    return dice


def evaluate(checkpoint: ClickCheckpoint, samples: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
             clicks: Sequence[int] = (1, 3, 5)) -> dict[str, float]:
    """Mean Dice before any click (dice_0) and after each count in clicks (dice_1, ...) over samples of (image,
    starting label, target) on the model's grid; n_samples."""
    model = checkpoint.build()
    most = max(clicks)
    curves = [click_session(model, image, start, target, most, checkpoint.click_radius)
              for image, start, target in samples]
    out = {"n_samples": float(len(curves))}
    if curves:
        out["dice_0"] = float(np.mean([c[0] for c in curves]))
        for k in clicks:
            out[f"dice_{k}"] = float(np.mean([c[k] for c in curves]))
    return out
