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

These defaults reproduce the published method; every threshold is a field of AttentionSettings. This module holds
the whole-array steps (any shape; all inputs of one call share it); compute.py applies them to each organ inside its
support box.

For uint8 input the std threshold is applied in exact integer arithmetic:
M^2 * 255^2 * var = M * sum(x^2) - (sum x)^2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage, special

from ml_engine.attention.boxes import bounding_box
from ml_engine.attention.settings import EntropyForm
from ml_engine.ensemble import pseudo_mask

_MAX_UINT8_MODELS = 180  # keeps M * sum(x^2) inside int32


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
    arrays = check_probability_maps(probs)
    shape = arrays[0].shape
    if all(a.dtype == np.uint8 for a in arrays):
        return np.stack(arrays)
    stacked = np.empty((len(arrays), *shape), dtype=np.float32)
    for index, array in enumerate(arrays):
        stacked[index] = array / np.float32(255) if array.dtype == np.uint8 else array
    return stacked


def check_probability_maps(probs: Sequence[np.ndarray], organ: str | None = None) -> list[np.ndarray]:
    """The M maps as arrays, checked: at least one, each 3D, one shape, uint8 or float in [0, 1].

    ValueError otherwise, its message starting with the organ's name when one is given.
    """
    arrays = [np.asarray(p) for p in probs]
    prefix = f"{organ}: " if organ is not None else ""
    if not arrays:
        raise ValueError(f"{prefix}no probability maps given")
    shape = arrays[0].shape
    for index, array in enumerate(arrays):
        if array.ndim != 3:
            raise ValueError(f"{prefix}probability map {index} is not 3D (shape {array.shape})")
        if array.shape != shape:
            raise ValueError(f"{prefix}probability map {index} has shape {array.shape}, map 0 has {shape}")
        check_probability_dtype(array, index if organ is None else f"{index} of {organ}")
    return arrays


def check_probability_dtype(array: np.ndarray, index: int | str) -> None:
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
        q = scaled_variance(stack)
        return np.sqrt(q, dtype=np.float32) * np.float32(1.0 / (255.0 * stack.shape[0]))
    return np.asarray(stack, dtype=np.float32).std(axis=0, dtype=np.float32)


def scaled_variance(stack: np.ndarray) -> np.ndarray:
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
    """Pseudo-label (x, y, z) bool: mean probability over models > threshold. stack: (M, x, y, z) uint8 p x 255
    (exact) or float. The ensemble's rule (ml_engine.ensemble.pseudo_mask), not a second one."""
    return pseudo_mask(stack, threshold)


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
