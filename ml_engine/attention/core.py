"""Attention maps (AbdomenAtlas-8K, section 2.1): where an ensemble's pseudo-labels are probably wrong.

For one organ, from M models' probabilities p_m, each (x, y, z) uint8 (p x 255) or float in [0, 1]:

- inconsistency: the standard deviation of p over the models (population, ddof 0), kept where > 0.1;
- uncertainty: the mean over the models of the entropy term -p ln p, kept where > 0.05 (option: the
  binary entropy of the mean probability, -m ln m - (1 - m) ln(1 - m));
- both masks are cleaned by a morphological opening with the 3 x 3 x 3 cube (26-connected): 2 erosions,
  then 2 dilations. Iterating the cube n times is the same as one box of half-width n voxels, so the
  opening is done with separable 1D min / max filters; `opening_mm` gives the half-width in mm instead
  (rounded per axis), so that one setting means the same anatomy at 1.5 mm and at 3 mm;
- overlap: voxels where this organ's pseudo-label (mean p > 0.5) meets another organ's pseudo-label;
- attention = union of the three; heatmap = (kept std + kept entropy + overlap) / its max, stored as uint8
  (x 255, truncated as in the published create_attention step) and at least 1 on every attention voxel,
  so that heatmap > 0 is exactly the attention map.

These defaults reproduce the published method; every threshold is a field of AttentionSettings.

Speed and memory: every step runs inside the organ's support box (the bounding box of the voxels where any
model gives p > 0, plus a margin), in uint8 / int32 / float32. That is exact, not an approximation: outside
the support the std, the entropy and the pseudo-label are all zero, and an opening never adds voxels to
its mask (its erosion treats the outside of the box as background, as scipy's does at the volume border).
For uint8 input the std threshold is applied in exact integer arithmetic:
M^2 * 255^2 * var = M * sum(x^2) - (sum x)^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage, special

from ml_engine.attention.hotspots import Hotspot, find_hotspots

Box = tuple[slice, slice, slice]
EntropyForm = Literal["term", "binary"]
Progress = Callable[[int, int], None]

_EMPTY_BOX: Box = (slice(0, 0), slice(0, 0), slice(0, 0))
_MAX_UINT8_MODELS = 180  # keeps M * sum(x^2) inside int32


@dataclass(frozen=True, kw_only=True)
class AttentionSettings:
    """Every threshold of the attention map. The defaults reproduce the published AbdomenAtlas method.

    std_threshold: inconsistency kept where the std of the models' probabilities is > this.
    entropy_threshold: uncertainty kept where the entropy is > this.
    entropy: "term" = mean over models of -p ln p (published); "binary" = binary entropy of the mean p.
    pseudo_threshold: the pseudo-label is mean p > this (used for the overlap criterion).
    opening_voxels: half-width of the opening box in voxels (= erosions, then as many dilations, with the
        26-connected 3 x 3 x 3 cube); 0 disables the opening.
    opening_mm: if set, the half-width in mm instead, rounded to whole voxels on each axis (6 mm is the
        published 2 voxels at 3 mm, and 4 voxels at 1.5 mm).
    connectivity: 6, 18 or 26, for the hotspots (connected components of the attention).
    margin_voxels: extra voxels kept around each organ's support box.
    """

    std_threshold: float = 0.1
    entropy_threshold: float = 0.05
    entropy: EntropyForm = "term"
    pseudo_threshold: float = 0.5
    opening_voxels: int = 2
    opening_mm: float | None = None
    connectivity: int = 26
    margin_voxels: int = 1

    def __post_init__(self) -> None:
        for name in ("std_threshold", "entropy_threshold"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.pseudo_threshold < 1.0:
            raise ValueError(f"pseudo_threshold must be in [0, 1), got {self.pseudo_threshold}")
        if self.entropy not in ("term", "binary"):
            raise ValueError(f"entropy must be 'term' or 'binary', got {self.entropy!r}")
        if int(self.opening_voxels) != self.opening_voxels or self.opening_voxels < 0:
            raise ValueError(f"opening_voxels must be a whole number >= 0, got {self.opening_voxels}")
        if self.opening_mm is not None and (not math.isfinite(self.opening_mm) or self.opening_mm < 0):
            raise ValueError(f"opening_mm must be a finite number of mm >= 0, got {self.opening_mm}")
        if self.connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {self.connectivity}")
        if int(self.margin_voxels) != self.margin_voxels or self.margin_voxels < 0:
            raise ValueError(f"margin_voxels must be a whole number >= 0, got {self.margin_voxels}")

    def opening_radius(self, spacing: Sequence[float]) -> tuple[int, int, int]:
        """Half-width of the opening box in voxels along x, y, z for this voxel spacing (mm)."""
        if self.opening_mm is None:
            n = int(self.opening_voxels)
            return (n, n, n)
        return tuple(int(math.floor(self.opening_mm / float(s) + 0.5)) for s in spacing)  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------------------------
# Whole-array building blocks (any shape; all inputs of one call share it)


def check_spacing(spacing: Sequence[float]) -> tuple[float, float, float]:
    """Three finite, positive voxel sizes in mm; ValueError otherwise."""
    values = tuple(float(s) for s in spacing)
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be three positive numbers of mm, got {tuple(spacing)}")
    return values  # type: ignore[return-value]


def stack_probabilities(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack M probability maps (x, y, z) into (M, x, y, z): uint8 when all are uint8, else float32 in [0, 1].

    ValueError for no maps, differing shapes, other dtypes, or float values outside [0, 1] or not finite.
    """
    arrays = [np.asarray(p) for p in probs]
    if not arrays:
        raise ValueError("no probability maps given")
    shape = arrays[0].shape
    for index, array in enumerate(arrays):
        if array.ndim != 3:
            raise ValueError(f"probability map {index} is not 3D (shape {array.shape})")
        if array.shape != shape:
            raise ValueError(f"probability map {index} has shape {array.shape}, map 0 has {shape}")
        _check_probability_dtype(array, index)
    if all(a.dtype == np.uint8 for a in arrays):
        return np.stack(arrays)
    stacked = np.empty((len(arrays), *shape), dtype=np.float32)
    for index, array in enumerate(arrays):
        stacked[index] = array / np.float32(255) if array.dtype == np.uint8 else array
    return stacked


def _check_probability_dtype(array: np.ndarray, index: int | str) -> None:
    if array.dtype == np.uint8:
        return
    if array.dtype.kind != "f":
        raise ValueError(f"probability map {index}: expected uint8 (p x 255) or float in [0, 1], found {array.dtype}")
    if array.size and not (np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1):
        raise ValueError(f"probability map {index}: float values must be finite and in [0, 1]")


def _entropy_lut() -> np.ndarray:
    return special.entr(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


_ENTR_UINT8 = _entropy_lut()


def inconsistency(stack: np.ndarray) -> np.ndarray:
    """Std over models, ddof 0. stack: (M, x, y, z) uint8 (p x 255) or float. Returns (x, y, z) float32 (p units)."""
    if stack.dtype == np.uint8:
        q = _scaled_variance(stack)
        return np.sqrt(q, dtype=np.float32) * np.float32(1.0 / (255.0 * stack.shape[0]))
    return np.asarray(stack, dtype=np.float32).std(axis=0, dtype=np.float32)


def _scaled_variance(stack: np.ndarray) -> np.ndarray:
    """M^2 * 255^2 * var, exactly, as int32 (x, y, z), for a uint8 stack (M, x, y, z)."""
    m = stack.shape[0]
    if m > _MAX_UINT8_MODELS:
        raise ValueError(f"at most {_MAX_UINT8_MODELS} uint8 models, got {m}")
    s1 = stack.sum(axis=0, dtype=np.int32)
    s2 = np.zeros(stack.shape[1:], dtype=np.int32)
    for member in stack:
        x = member.astype(np.int32)
        x *= x
        s2 += x
    s2 *= m
    s1 *= s1
    s2 -= s1
    return s2


def uncertainty(stack: np.ndarray, *, form: EntropyForm = "term") -> np.ndarray:
    """Entropy map (x, y, z) float32 (nats) of a stack (M, x, y, z) uint8 (p x 255) or float.

    form "term": mean over models of -p ln p (the published map, at most 1/e); "binary": binary entropy
    of the mean probability, -m ln m - (1 - m) ln(1 - m) (at most ln 2).
    """
    m = stack.shape[0]
    if form == "term":
        if stack.dtype == np.uint8:
            total = _ENTR_UINT8[stack[0]]
            for member in stack[1:]:
                total += _ENTR_UINT8[member]
        else:
            total = special.entr(np.asarray(stack, dtype=np.float32)).sum(axis=0, dtype=np.float32)
        total *= np.float32(1.0 / m)
        return total
    if form == "binary":
        mean = mean_probability(stack)
        out = special.entr(mean)
        out += special.entr(np.float32(1.0) - mean)
        return out.astype(np.float32, copy=False)
    raise ValueError(f"entropy form must be 'term' or 'binary', got {form!r}")


def mean_probability(stack: np.ndarray) -> np.ndarray:
    """Mean over models (x, y, z) float32 in [0, 1] of a stack (M, x, y, z) uint8 (p x 255) or float."""
    if stack.dtype == np.uint8:
        return stack.sum(axis=0, dtype=np.int32).astype(np.float32) * np.float32(1.0 / (255.0 * stack.shape[0]))
    return np.asarray(stack, dtype=np.float32).mean(axis=0, dtype=np.float32)


def pseudo_label(stack: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """Pseudo-label (x, y, z) bool: mean probability over models > threshold. stack: (M, x, y, z)."""
    if stack.dtype == np.uint8:  # exact: sum(x) > threshold * 255 * M
        bound = threshold * 255.0 * stack.shape[0]
        return stack.sum(axis=0, dtype=np.int32) > int(math.floor(bound))
    return mean_probability(stack) > np.float32(threshold)


def open_mask(mask: np.ndarray, radius: Sequence[int]) -> np.ndarray:
    """Morphological opening (x, y, z) bool of a bool mask by the box of half-widths radius (voxels per axis).

    radius (n, n, n) equals n erosions then n dilations with the 26-connected 3 x 3 x 3 cube
    (scipy.ndimage.binary_erosion / binary_dilation with iterations=n, outside the array = background).
    Computed inside the mask's bounding box with separable 1D min / max filters.
    """
    mask = np.asarray(mask, dtype=bool)
    radius = tuple(int(r) for r in radius)
    if len(radius) != mask.ndim or min(radius, default=0) < 0:
        raise ValueError(f"radius needs {mask.ndim} whole numbers >= 0, got {radius}")
    if not any(radius):
        return mask.copy()
    out = np.zeros_like(mask)
    box = bounding_box(mask)
    if box is None:
        return out
    if any(s.stop - s.start < 2 * r + 1 for s, r in zip(box, radius, strict=True)):
        return out  # the box cannot hold one structuring element
    work = np.ascontiguousarray(mask[box]).view(np.uint8)
    for axis, r in enumerate(radius):
        if r:
            work = ndimage.minimum_filter1d(work, 2 * r + 1, axis=axis, mode="constant", cval=0)
    if work.any():
        for axis, r in enumerate(radius):
            if r:
                work = ndimage.maximum_filter1d(work, 2 * r + 1, axis=axis, mode="constant", cval=0)
        out[box] = work.view(bool)
    return out


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


def _grow(box: Box, margin: int, shape: Sequence[int]) -> Box:
    return tuple(slice(max(0, s.start - margin), min(n, s.stop + margin))  # type: ignore[return-value]
                 for s, n in zip(box, shape, strict=True))


def _union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b, strict=True))  # type: ignore


def _intersection(a: Box, b: Box) -> Box | None:
    out = tuple(slice(max(p.start, q.start), min(p.stop, q.stop)) for p, q in zip(a, b, strict=True))
    return None if any(s.stop <= s.start for s in out) else out  # type: ignore[return-value]


def _relative(inner: Box, outer: Box) -> Box:
    return tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer, strict=True))  # type: ignore


def _box_shape(box: Box) -> tuple[int, int, int]:
    return tuple(s.stop - s.start for s in box)  # type: ignore[return-value]


def overlap_masks(pseudo_labels: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per organ (x, y, z) bool: voxels of its pseudo-label that also belong to another organ's pseudo-label."""
    count: np.ndarray | None = None
    for mask in pseudo_labels.values():
        add = np.asarray(mask, dtype=np.uint8)
        count = add.copy() if count is None else count + add
    if count is None:
        return {}
    shared = count >= 2
    return {organ: np.asarray(mask, dtype=bool) & shared for organ, mask in pseudo_labels.items()}


# --------------------------------------------------------------------------------------------------------------
# One organ, inside its support box


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
        crop = np.zeros(_box_shape(tuple(grown)), dtype=np.uint8)  # type: ignore[arg-type]
        if inner is not None:
            crop[_relative(box, tuple(grown))] = self.heatmap[inner]  # type: ignore[arg-type]
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
    arrays = [np.asarray(p) for p in probs]
    if not arrays:
        raise ValueError(f"{organ}: no probability maps given")
    shape = arrays[0].shape
    box: Box | None = None
    for index, array in enumerate(arrays):
        if array.ndim != 3:
            raise ValueError(f"{organ}: probability map {index} is not 3D (shape {array.shape})")
        if array.shape != shape:
            raise ValueError(f"{organ}: probability map {index} has shape {array.shape}, map 0 has {shape}")
        _check_probability_dtype(array, f"{index} of {organ}")
        box = _union(box, bounding_box(array))
    shape3 = tuple(int(s) for s in shape)
    if box is None:
        empty = np.zeros((0, 0, 0), dtype=bool)
        return _Prepared(organ, shape3, _EMPTY_BOX, None, empty, len(arrays), 0.0)  # type: ignore[arg-type]
    box = _grow(box, settings.margin_voxels, shape3)
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
            common = _intersection(a.box, b.box)
            if common is None:
                continue
            ra, rb = _relative(common, a.box), _relative(common, b.box)
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
        q = _scaled_variance(stack)
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


# --------------------------------------------------------------------------------------------------------------
# A case: every organ


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
