"""Random training patches (two in three centred on a labelled organ) and intensity augmentation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ml_engine.train.cases import TrainCase

FG_PROBABILITY = 0.67


def sample_patch(case: TrainCase, patch: Sequence[int], rng: np.random.Generator,
                 fg_probability: float = FG_PROBABILITY) -> tuple[np.ndarray, np.ndarray]:
    """A random patch (x, y, z) of image and (C, x, y, z) of labels; centred on an organ voxel with fg_probability."""
    shape = case.image.shape
    start = [0, 0, 0]
    channels = [c for c in range(case.labels.shape[0]) if case.foreground(c) is not None]
    if channels and rng.random() < fg_probability:
        flat = case.foreground(int(rng.choice(channels)))
        centre = np.unravel_index(int(flat[rng.integers(flat.size)]), shape)
        for a in range(3):
            start[a] = int(np.clip(centre[a] - patch[a] // 2 + rng.integers(-patch[a] // 4, patch[a] // 4 + 1),
                                   0, shape[a] - patch[a]))
    else:
        start = [int(rng.integers(0, shape[a] - patch[a] + 1)) for a in range(3)]
    box = tuple(slice(s, s + int(p)) for s, p in zip(start, patch, strict=True))
    return case.image[box], case.labels[(slice(None), *box)]


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, brightness, gamma and Gaussian noise on an image patch (x, y, z) in [0, 1]; float32 out."""
    out = image.astype(np.float32, copy=True)
    if rng.random() < 0.3:
        gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
        np.power(np.clip(out, 0, 1), gamma, out=out)
    if rng.random() < 0.5:
        out *= float(rng.uniform(0.85, 1.15))
        out += float(rng.uniform(-0.08, 0.08))
    if rng.random() < 0.3:
        sigma = np.float32(rng.uniform(0.0, 0.05))
        out += rng.standard_normal(size=out.shape, dtype=np.float32) * sigma  # drawn in float32, not float64
    return out
