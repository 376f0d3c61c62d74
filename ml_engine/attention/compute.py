"""Attention of one organ and of a case (AbdomenAtlas-8K, section 2.1), from the building blocks of maps.py.

Speed and memory: every step runs inside the organ's support box (the bounding box of the voxels where any
model gives p > 0, plus a margin), in uint8 / int32 / float32. That is exact, not an approximation: outside
the support the std, the entropy and the pseudo-label are all zero, and an opening never adds voxels to
its mask (its erosion treats the outside of the box as background, as scipy's does at the volume border).
A case is computed in two passes: the first finds each organ's support box and pseudo-label (the overlap needs
every organ's), the second the criteria, the openings, the heatmap and the hotspots, one organ at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ml_engine.attention.boxes import (
    EMPTY_BOX,
    Box,
    bounding_box,
    box_intersection,
    box_shape,
    box_union,
    grow_box,
    relative_box,
)
from ml_engine.attention.hotspots import Hotspot, find_hotspots
from ml_engine.attention.maps import (
    check_probability_maps,
    check_spacing,
    inconsistency,
    open_mask,
    pseudo_label,
    scaled_variance,
    stack_probabilities,
    uncertainty,
)
from ml_engine.attention.settings import AttentionSettings

Progress = Callable[[int, int], None]


@dataclass
class OrganAttention:
    """The attention of one organ. Arrays are crops of the volume at `box` (slices into the full (x, y, z) grid).

    heatmap: uint8 0..255, > 0 exactly on the attention. inconsistency, uncertainty: the kept (opened) masks;
    overlap: the overlap mask; pseudo: the organ's pseudo-label (all bool, same shape as heatmap).
    Counts are voxels; *_raw are before the opening. expected_voxels: sum over voxels of the mean probability
    (the ensemble's expected organ volume, in voxels). hotspots: connected components of the attention,
    largest first, in full-volume voxel coordinates.
    """

    organ: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    box: Box
    heatmap: np.ndarray
    inconsistency: np.ndarray
    uncertainty: np.ndarray
    overlap: np.ndarray
    pseudo: np.ndarray
    models: int
    inconsistency_raw_voxels: int
    uncertainty_raw_voxels: int
    expected_voxels: float
    hotspots: list[Hotspot] = field(default_factory=list)

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def attention(self) -> np.ndarray:
        """(crop) bool: the attention map (union of the kept inconsistency, kept uncertainty and overlap)."""
        return self.heatmap > 0

    @property
    def voxels(self) -> int:
        return int(np.count_nonzero(self.heatmap))

    @property
    def volume_ml(self) -> float:
        return self.voxels * self.voxel_volume_ml

    def full(self, crop: np.ndarray) -> np.ndarray:
        """A crop of this organ (box-shaped) pasted into zeros of the full (x, y, z) shape, same dtype."""
        out = np.zeros(self.shape, dtype=crop.dtype)
        out[self.box] = crop
        return out

    def full_heatmap(self) -> np.ndarray:
        """The heatmap (x, y, z) uint8 on the full grid."""
        return self.full(self.heatmap)

    def compact_heatmap(self) -> tuple[np.ndarray, tuple[int, int, int]]:
        """The heatmap cropped to the attention's bounding box: (crop (x, y, z) uint8, its start on the full grid).

        The box is grown to at least 2 voxels a side (a NIfTI reader's smallest 3D volume), inside the grid; an
        empty attention gives a 2 x 2 x 2 crop of zeros. Pasting the crop at `start` into zeros gives full_heatmap().
        """
        inner = bounding_box(self.heatmap)
        if inner is None:
            lo = [s.start for s in self.box]
            box = tuple(slice(low, low + 1) for low in lo)
        else:
            box = tuple(slice(s.start + i.start, s.start + i.stop) for s, i in zip(self.box, inner, strict=True))
        grown = []
        for s, n in zip(box, self.shape, strict=True):
            start, stop = s.start, max(s.stop, s.start + 2)
            if stop > n:
                start, stop = max(0, n - max(2, s.stop - s.start)), n
            grown.append(slice(start, stop))
        crop = np.zeros(box_shape(tuple(grown)), dtype=np.uint8)  # type: ignore[arg-type]
        if inner is not None:
            crop[relative_box(box, tuple(grown))] = self.heatmap[inner]  # type: ignore[arg-type]
        return crop, tuple(g.start for g in grown)  # type: ignore[return-value]


    def summary(self) -> dict:
        """Sizes and counts as plain numbers (JSON-ready; hotspots not included)."""
        ml = self.voxel_volume_ml
        return {
            "voxels": self.voxels,
            "volume_ml": round(self.volume_ml, 6),
            "inconsistency_voxels": int(np.count_nonzero(self.inconsistency)),
            "inconsistency_voxels_before_opening": self.inconsistency_raw_voxels,
            "uncertainty_voxels": int(np.count_nonzero(self.uncertainty)),
            "uncertainty_voxels_before_opening": self.uncertainty_raw_voxels,
            "overlap_voxels": int(np.count_nonzero(self.overlap)),
            "pseudo_label_voxels": int(np.count_nonzero(self.pseudo)),
            "pseudo_label_ml": round(int(np.count_nonzero(self.pseudo)) * ml, 6),
            "expected_voxels": round(self.expected_voxels, 3),
            "models": self.models,
            "hotspot_count": len(self.hotspots),
        }


def max_heatmap(crops: Sequence[tuple[np.ndarray, Sequence[int]]]) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The voxel-wise max of compact heatmaps (crop, start) on one grid, cropped to the union of their boxes.

    Returns (crop (x, y, z) uint8, start); ValueError for no crops.
    """
    if not crops:
        raise ValueError("no heatmaps given")
    lo = np.min([start for _, start in crops], axis=0)
    hi = np.max([np.add(start, crop.shape) for crop, start in crops], axis=0)
    out = np.zeros(tuple(int(v) for v in hi - lo), dtype=np.uint8)
    for crop, start in crops:
        at = tuple(slice(int(s - low), int(s - low) + n) for s, low, n in zip(start, lo, crop.shape, strict=True))
        np.maximum(out[at], crop, out=out[at])
    return out, tuple(int(v) for v in lo)  # type: ignore[return-value]


@dataclass
class _Prepared:
    """Pass one of an organ: its support box and what the overlap step needs."""

    organ: str
    shape: tuple[int, int, int]
    box: Box
    stack: np.ndarray | None  # (M, *box shape) uint8 or float32
    pseudo: np.ndarray  # box-shaped bool
    models: int
    expected_voxels: float


def _prepare(organ: str, probs: Sequence[np.ndarray], *, settings: AttentionSettings) -> _Prepared:
    """Find the organ's support box over all models and keep only that crop of each map (no full-size stack)."""
    arrays = check_probability_maps(probs, organ)
    shape = arrays[0].shape
    box: Box | None = None
    for array in arrays:
        box = box_union(box, bounding_box(array))
    shape3 = tuple(int(s) for s in shape)
    if box is None:
        empty = np.zeros((0, 0, 0), dtype=bool)
        return _Prepared(organ, shape3, EMPTY_BOX, None, empty, len(arrays), 0.0)  # type: ignore[arg-type]
    box = grow_box(box, settings.margin_voxels, shape3)
    stack = stack_probabilities([np.ascontiguousarray(a[box]) for a in arrays])
    pseudo = pseudo_label(stack, threshold=settings.pseudo_threshold)
    scale = 255.0 if stack.dtype == np.uint8 else 1.0
    expected = float(stack.sum(dtype=np.float64)) / scale / len(arrays)
    return _Prepared(organ, shape3, box, stack, pseudo, len(arrays), expected)  # type: ignore[arg-type]


def _overlaps(prepared: Sequence[_Prepared]) -> dict[str, np.ndarray]:
    """Per organ (box-shaped bool): its pseudo-label voxels that another organ's pseudo-label also holds."""
    out = {p.organ: np.zeros(p.pseudo.shape, dtype=bool) for p in prepared}
    for a in prepared:
        if a.stack is None:
            continue
        for b in prepared:
            if b is a or b.stack is None:
                continue
            common = box_intersection(a.box, b.box)
            if common is None:
                continue
            ra, rb = relative_box(common, a.box), relative_box(common, b.box)
            out[a.organ][ra] |= a.pseudo[ra] & b.pseudo[rb]
    return out


def _finish(prep: _Prepared, overlap: np.ndarray, *, spacing: tuple[float, float, float],
            settings: AttentionSettings) -> OrganAttention:
    """Pass two of an organ: the three criteria, the openings, the heatmap and the hotspots, inside its box."""
    if prep.stack is None:
        empty = np.zeros((0, 0, 0), dtype=bool)
        return OrganAttention(prep.organ, prep.shape, spacing, prep.box, np.zeros((0, 0, 0), np.uint8), empty, empty,
                              empty, empty, prep.models, 0, 0, 0.0, [])
    stack = prep.stack
    m = stack.shape[0]
    radius = settings.opening_radius(spacing)

    if stack.dtype == np.uint8:
        q = scaled_variance(stack)
        bound = settings.std_threshold * 255.0 * m
        std_raw = q > int(math.floor(bound * bound))
        std = np.sqrt(q, dtype=np.float32)
        del q
        std *= np.float32(1.0 / (255.0 * m))
    else:
        std = inconsistency(stack)
        std_raw = std > np.float32(settings.std_threshold)
    entropy = uncertainty(stack, form=settings.entropy)
    entropy_raw = entropy > np.float32(settings.entropy_threshold)

    std_keep = open_mask(std_raw, radius)
    entropy_keep = open_mask(entropy_raw, radius)

    heat = np.where(std_keep, std, np.float32(0))
    del std
    heat += np.where(entropy_keep, entropy, np.float32(0))
    del entropy
    heat += overlap
    top = float(heat.max()) if heat.size else 0.0
    attention = std_keep | entropy_keep | overlap
    if top > 0:
        heat *= np.float32(255.0 / top)
        np.clip(heat, 0, 255, out=heat)
        heatmap = heat.astype(np.uint8)
        heatmap[attention & (heatmap == 0)] = 1
    else:
        heatmap = np.zeros(heat.shape, dtype=np.uint8)
    del heat

    offset = tuple(s.start for s in prep.box)
    hotspots = find_hotspots(attention, spacing=spacing, offset=offset, connectivity=settings.connectivity)
    return OrganAttention(
        organ=prep.organ, shape=prep.shape, spacing=spacing, box=prep.box, heatmap=heatmap,
        inconsistency=std_keep, uncertainty=entropy_keep, overlap=overlap, pseudo=prep.pseudo, models=m,
        inconsistency_raw_voxels=int(np.count_nonzero(std_raw)),
        uncertainty_raw_voxels=int(np.count_nonzero(entropy_raw)),
        expected_voxels=prep.expected_voxels, hotspots=hotspots)


def organ_attention(probs: Sequence[np.ndarray], *, spacing: Sequence[float], organ: str = "organ",
                    others: Sequence[np.ndarray] = (), settings: AttentionSettings | None = None) -> OrganAttention:
    """Attention of one organ from its M probability maps (each (x, y, z) uint8 p x 255 or float in [0, 1]).

    others: the other organs' pseudo-labels (x, y, z) bool, for the overlap criterion (none: no overlap).
    spacing: voxel size in mm (x, y, z), for the opening in mm and the volumes.
    """
    settings = settings or AttentionSettings()
    spacing = check_spacing(spacing)
    prep = _prepare(organ, probs, settings=settings)
    overlap = np.zeros(prep.pseudo.shape, dtype=bool)
    if prep.stack is not None:
        for other in others:
            other = np.asarray(other, dtype=bool)
            if other.shape != prep.shape:
                raise ValueError(f"{organ}: another organ's pseudo-label has shape {other.shape}, not {prep.shape}")
            overlap |= prep.pseudo & other[prep.box]
    return _finish(prep, overlap, spacing=spacing, settings=settings)


@dataclass
class CaseAttention:
    """Attention of every organ of one case, in the order given. Sizes add up over organs (as published)."""

    organs: dict[str, OrganAttention]
    spacing: tuple[float, float, float]

    @property
    def total_voxels(self) -> int:
        return sum(a.voxels for a in self.organs.values())

    @property
    def total_ml(self) -> float:
        return sum(a.volume_ml for a in self.organs.values())


def iter_case_attention(organs: Sequence[str], load: Callable[[str], Sequence[np.ndarray]], *,
                        spacing: Sequence[float], settings: AttentionSettings | None = None,
                        progress: Progress | None = None) -> Iterator[OrganAttention]:
    """Attention of each organ of a case, one at a time, holding only the organs' support boxes in memory.

    load(organ) returns that organ's M probability maps (x, y, z), uint8 p x 255 or float in [0, 1]; it is called
    once per organ, all before the first result is yielded (the overlap needs every pseudo-label), so that bad
    input is found before anything is written. progress(done, total) counts 2 steps per organ.
    """
    settings = settings or AttentionSettings()
    spacing = check_spacing(spacing)
    names = list(organs)
    if len(set(names)) != len(names):
        raise ValueError(f"organs repeat: {names}")
    total = 2 * len(names)
    prepared: list[_Prepared] = []
    shape: tuple[int, int, int] | None = None
    for index, organ in enumerate(names):
        prep = _prepare(organ, load(organ), settings=settings)
        if shape is None:
            shape = prep.shape
        elif prep.shape != shape:
            raise ValueError(f"{organ}: probability maps have shape {prep.shape}, {names[0]}'s have {shape}")
        prepared.append(prep)
        if progress:
            progress(index + 1, total)
    overlaps = _overlaps(prepared)
    for index, prep in enumerate(prepared):
        result = _finish(prep, overlaps.pop(prep.organ), spacing=spacing, settings=settings)
        prep.stack = None  # free the crop as soon as it is used
        if progress:
            progress(len(names) + index + 1, total)
        yield result


def case_attention(probs: Mapping[str, Sequence[np.ndarray]], *, spacing: Sequence[float],
                   settings: AttentionSettings | None = None, progress: Progress | None = None) -> CaseAttention:
    """Attention of every organ of a case. probs: {organ: M maps (x, y, z) uint8 p x 255 or float in [0, 1]}."""
    spacing = check_spacing(spacing)
    results = iter_case_attention(list(probs), lambda organ: probs[organ], spacing=spacing, settings=settings,
                                  progress=progress)
    return CaseAttention(organs={r.organ: r for r in results}, spacing=spacing)
