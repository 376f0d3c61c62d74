"""The published dense attention computation (AbdomenAtlas create_attention), as a reference and a baseline.

Every organ of every model is taken at full size as float64, numpy computes the std and the entropy over the
whole volume, and scipy's binary_erosion / binary_dilation (26-connected, `iterations` times) clean the masks
over the whole volume; the overlap reads each other organ's pseudo-label at full size as float64. Tests use it
to check the fast path voxel for voxel; benchmarks/bench_attention.py times it as the baseline.
The one deliberate difference from the published script: the entropy is computed from the probabilities
(mean over models of -p ln p) instead of being read back from per-model uint8 entropy files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy import ndimage, special


def published_pseudo_label(probs: Sequence[np.ndarray], *, threshold: float = 0.5) -> np.ndarray:
    """(x, y, z) uint8 0/1: mean over models of p > threshold, computed densely in float64."""
    stack = np.stack([_as_float64(p) for p in probs])
    return (stack.mean(axis=0) > threshold).astype(np.uint8)


def _as_float64(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p)
    return p / 255.0 if p.dtype == np.uint8 else p.astype(np.float64)


def _post_process(values: np.ndarray, threshold: float, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """The published std_post_process / entropy_post_process: threshold, erode, dilate, zero outside the mask."""
    struct = ndimage.generate_binary_structure(3, 3)
    kept = values > threshold
    if iterations:
        kept = ndimage.binary_erosion(kept, structure=struct, iterations=iterations)
        if kept.any():
            kept = ndimage.binary_dilation(kept, structure=struct, iterations=iterations)
    mask = np.zeros(values.shape)
    mask[kept] = 1
    kept_values = values.copy()
    kept_values[mask != 1] = 0
    return kept_values, mask


def published_attention(organs: Sequence[str], load: Callable[[str], Sequence[np.ndarray]],
                        load_pseudo: Callable[[str], np.ndarray], *, std_threshold: float = 0.1,
                        entropy_threshold: float = 0.05, iterations: int = 2
                        ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (organ, heatmap (x, y, z) uint8, attention (x, y, z) bool) per organ, the published way.

    load(organ): the M probability maps (uint8 p x 255 or float); load_pseudo(organ): its pseudo-label (0/1).
    """
    for organ in organs:
        maps = load(organ)
        models, shape = len(maps), np.shape(maps[0])
        consistency = np.zeros((models, *shape)) if models > 1 else None
        entropy = np.zeros(shape)
        for index, p in enumerate(maps):
            p = _as_float64(p)
            if consistency is not None:
                consistency[index] = p
            entropy += special.entr(p)
            del p
        del maps
        if consistency is not None:
            std_float, std_binary = _post_process(np.std(consistency, axis=0), std_threshold, iterations)
        else:
            std_float = std_binary = np.zeros(entropy.shape)
        del consistency
        entropy_float, entropy_binary = _post_process(entropy / models, entropy_threshold, iterations)
        del entropy
        seg = np.asarray(load_pseudo(organ), dtype=np.float64)
        overlap_initial = np.zeros(seg.shape)
        for other in organs:
            if other != organ:
                overlap_initial += (seg + np.asarray(load_pseudo(other), dtype=np.float64)) > 1
        overlap_total = (overlap_initial > 0).astype(np.uint8)
        attention = (std_binary + entropy_binary + overlap_total) > 0
        heat = std_float + entropy_float + overlap_total
        top = np.max(heat)
        heatmap = (heat / top * 255).astype(np.uint8) if top > 0 else np.zeros(heat.shape, dtype=np.uint8)
        yield organ, heatmap, attention
