"""Simulated ensembles: per-model organ probabilities from a label map, with the paper's typical errors injected.

For tests, benchmarks and the demo, where no trained models exist. Each model's probability of an organ is a
sharp sigmoid of the signed distance (mm) to the true boundary, moved by a smooth model-specific random field
(so that models disagree a little along every boundary, as real ones do), then quantised to uint8 p x 255 as
the ensemble writes it. Errors injected on top, each where the models disagree and mostly get it wrong:

- stomach_cavity_missed: the inner part of the stomach (a cavity full of air or fluid) is missed by most
  models, one is half sure (Figure 3 / 7 of the paper: "the cavity in the stomach is missing");
- boundary_shift: two of three models push the spleen's lateral boundary outwards by `shift_mm`;
- liver_bite: a ball at the liver's lateral edge is missed by most models ("a bite out of the liver").

`errors` of the result records the voxels each injection changed, per organ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ml_engine.attention.boxes import bounding_box
from ml_engine.attention.maps import check_spacing
from ml_engine.labels import ORGANS

SIMULATED_ERRORS: tuple[str, ...] = ("stomach_cavity_missed", "boundary_shift", "liver_bite")
_ERROR_ORGAN = {"stomach_cavity_missed": "stomach", "boundary_shift": "spleen", "liver_bite": "liver"}
# Per model (cycled when there are more than three): the probability each model gives inside an injected error.
_CAVITY_P = (0.12, 0.2, 0.6)
_BITE_P = (0.05, 0.1, 0.65)


@dataclass
class SimulatedEnsemble:
    """probs: {organ: M maps (x, y, z) uint8 p x 255}; truth: {organ: (x, y, z) bool}; errors: {organ: (x, y, z)
    bool where an injected error changed the models' probabilities} (only organs that received one)."""

    probs: dict[str, list[np.ndarray]]
    truth: dict[str, np.ndarray]
    spacing: tuple[float, float, float]
    errors: dict[str, np.ndarray] = field(default_factory=dict)


def simulate_organ(truth: np.ndarray, *, spacing: Sequence[float], models: int = 3, seed: int = 0,
                   errors: Sequence[str] = (), organ: str = "", edge_mm: float = 0.3, jitter_mm: float = 0.4,
                   shift_mm: float = 9.0, bite_mm: float = 15.0, margin_mm: float = 6.0
                   ) -> tuple[list[np.ndarray], np.ndarray]:
    """M probability maps (x, y, z) uint8 p x 255 for one organ's true mask, and the injected-error mask (bool).

    errors: names from SIMULATED_ERRORS; each applies only to its organ (stomach, spleen, liver) when organ says
    so. Work happens inside the organ's bounding box plus margin_mm; outside, every p is 0.
    """
    spacing = check_spacing(spacing)
    truth = np.asarray(truth, dtype=bool)
    unknown = [e for e in errors if e not in SIMULATED_ERRORS]
    if unknown:
        raise ValueError(f"unknown simulated errors {unknown}; valid: {', '.join(SIMULATED_ERRORS)}")
    if models < 1:
        raise ValueError(f"models must be at least 1, got {models}")
    rng = np.random.default_rng(seed)
    shape = truth.shape
    injected = np.zeros(shape, dtype=bool)
    maps = [np.zeros(shape, dtype=np.uint8) for _ in range(models)]
    box = bounding_box(truth)
    if box is None:
        return maps, injected
    reach = margin_mm + (shift_mm if "boundary_shift" in errors else 0.0)
    box = tuple(slice(max(0, s.start - int(np.ceil(reach / sp))), min(n, s.stop + int(np.ceil(reach / sp))))
                for s, sp, n in zip(box, spacing, shape, strict=True))
    inside = np.ascontiguousarray(truth[box])
    signed = _signed_distance(inside, spacing)
    active = [e for e in errors if _ERROR_ORGAN[e] == organ]

    lateral = None
    if "boundary_shift" in active:
        centre = np.argwhere(inside).mean(axis=0)
        # The spleen lies on the patient's left: its lateral side is towards smaller x (RAS+ voxel order).
        lateral = np.broadcast_to((np.arange(inside.shape[0]) < centre[0]).reshape(-1, 1, 1), inside.shape)
    cavity = _cavity(inside, spacing) if "stomach_cavity_missed" in active else None
    bite = _bite(inside, spacing, bite_mm) if "liver_bite" in active else None

    box_injected = np.zeros(inside.shape, dtype=bool)
    for index in range(models):
        distance = signed + _smooth_field(inside.shape, spacing, rng, jitter_mm)
        if lateral is not None and index % 3 in (0, 1):
            distance = np.where(lateral, distance + np.float32(shift_mm), distance)
        p = _sigmoid(distance / np.float32(edge_mm))
        if cavity is not None:
            np.minimum(p, np.where(cavity, np.float32(_CAVITY_P[index % 3]), np.float32(1)), out=p)
        if bite is not None:
            np.minimum(p, np.where(bite, np.float32(_BITE_P[index % 3]), np.float32(1)), out=p)
        maps[index][box] = np.rint(p * np.float32(255)).astype(np.uint8)
    if lateral is not None:
        box_injected |= lateral & ~inside & (signed > -np.float32(shift_mm))
    if cavity is not None:
        box_injected |= cavity
    if bite is not None:
        box_injected |= bite
    injected[box] = box_injected
    return maps, injected


def simulate_ensemble(labels: np.ndarray, *, spacing: Sequence[float], organs: Sequence[str] = ORGANS,
                      models: int = 3, seed: int = 0, errors: Sequence[str] = SIMULATED_ERRORS,
                      **options: float) -> SimulatedEnsemble:
    """Simulate M models' probabilities for every organ of a label map (x, y, z), values 1..n in organs' order.

    options go to simulate_organ (edge_mm, jitter_mm, shift_mm, bite_mm, margin_mm).
    """
    spacing = check_spacing(spacing)
    labels = np.asarray(labels)
    result = SimulatedEnsemble(probs={}, truth={}, spacing=spacing)
    for index, organ in enumerate(organs):
        truth = labels == index + 1
        maps, injected = simulate_organ(truth, spacing=spacing, models=models, seed=seed * 1009 + index,
                                        errors=errors, organ=organ, **options)
        result.probs[organ] = maps
        result.truth[organ] = truth
        if injected.any():
            result.errors[organ] = injected
    return result


def _signed_distance(inside: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Signed distance (mm, float32) to the boundary halfway between voxels: positive inside, negative outside."""
    import edt

    half = np.float32(0.5 * min(spacing))
    inner = edt.edt(inside.view(np.uint8), anisotropy=spacing, black_border=False, parallel=1)
    outer = edt.edt((~inside).view(np.uint8), anisotropy=spacing, black_border=False, parallel=1)
    return np.where(inside, inner - half, half - outer).astype(np.float32)


def _smooth_field(shape: tuple[int, ...], spacing: tuple[float, float, float], rng: np.random.Generator,
                  sd_mm: float, cell_mm: float = 12.0) -> np.ndarray:
    """A smooth random field (float32, mm) with standard deviation about sd_mm, varying over about cell_mm."""
    coarse_shape = tuple(max(2, int(np.ceil(n * s / cell_mm)) + 1) for n, s in zip(shape, spacing, strict=True))
    coarse = rng.normal(0.0, sd_mm, size=coarse_shape).astype(np.float32)
    zoom = [n / c for n, c in zip(shape, coarse_shape, strict=True)]
    field = ndimage.zoom(coarse, zoom, order=1, mode="nearest", grid_mode=True)
    return field[: shape[0], : shape[1], : shape[2]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, -30, 30, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += np.float32(1)
    np.reciprocal(x, out=x)
    return x


def _cavity(inside: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray | None:
    """The deep part of the organ (depth > 45% of its deepest point): a cavity the models miss."""
    import edt

    depth = edt.edt(inside.view(np.uint8), anisotropy=spacing, black_border=False, parallel=1)
    top = float(depth.max())
    return (depth > 0.45 * top) if top > 0 else None


def _bite(inside: np.ndarray, spacing: tuple[float, float, float], radius_mm: float) -> np.ndarray | None:
    """A ball of radius_mm centred on the organ's lateral-most voxel (largest x: the patient's right), inside it."""
    points = np.argwhere(inside)
    if points.size == 0:
        return None
    edge = points[np.argmax(points[:, 0] - 1e-3 * np.abs(points[:, 1] - points[:, 1].mean()))]
    grids = [(np.arange(n) - c) * s for n, c, s in zip(inside.shape, edge, spacing, strict=True)]
    distance2 = grids[0].reshape(-1, 1, 1) ** 2 + grids[1].reshape(1, -1, 1) ** 2 + grids[2].reshape(1, 1, -1) ** 2
    return inside & (distance2 <= radius_mm**2)
