"""Segmentation metrics: Dice, NSD, HD95, ASSD (spacing-aware), and attention-map sensitivity / precision.

Surface metrics follow the DeepMind surface-distance definitions (Nikolov et al., `surface_distance`):

- the surface of a mask is the set of 2 x 2 x 2 voxel cubes that hold both foreground and background
  (after padding the masks by one voxel of background); each such surface element carries the area of the
  marching-cubes triangles inside its cube, for the voxel spacing (DeepMind's neighbour-code table, as
  shipped by MONAI, which computes the same metrics);
- the distance of a surface element of A to B is the Euclidean distance (mm, anisotropic spacing) from its
  cube to the nearest surface cube of B (an exact distance transform, the `edt` package);
- NSD at tolerance t = (area of A's surface within t of B + area of B's surface within t of A) /
  (area of A's surface + area of B's surface), "surface Dice";
- HD95 = the larger of the two directed 95th percentiles, each percentile weighted by surface area;
- ASSD = the area-weighted mean of both directions' distances together.

Empty masks follow the FLARE conventions: both empty gives Dice = NSD = 1 (and HD95 = ASSD = 0: there is no
surface to be wrong); exactly one empty gives Dice = NSD = 0 and HD95 = ASSD = inf.

Masks are bool (x, y, z) arrays of one shape; spacing is the voxel size in mm along x, y, z.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ml_engine.attention.boxes import bounding_box
from ml_engine.attention.maps import check_spacing

#: FLARE's per-organ NSD tolerances in mm (abdomenatlas organ names).
FLARE_TOLERANCE_MM: dict[str, float] = {
    "liver": 5.0, "kidney_right": 3.0, "kidney_left": 3.0, "spleen": 3.0, "pancreas": 5.0, "aorta": 2.0,
    "postcava": 2.0, "gallbladder": 2.0, "stomach": 5.0,
}
DEFAULT_TOLERANCE_MM = 2.0  # for structures FLARE does not list

# Weight of each corner of a 2 x 2 x 2 cube in its neighbour code, [dx][dy][dz] (DeepMind / MONAI convention).
_CODE_WEIGHTS = ((((0, 0, 0), 128), ((0, 0, 1), 64), ((0, 1, 0), 32), ((0, 1, 1), 16),
                  ((1, 0, 0), 8), ((1, 0, 1), 4), ((1, 1, 0), 2), ((1, 1, 1), 1)))


def tolerance_for(organ: str, default: float = DEFAULT_TOLERANCE_MM) -> float:
    """FLARE's NSD tolerance (mm) for an abdomenatlas organ name, else default."""
    return FLARE_TOLERANCE_MM.get(organ, default)


def _check_pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"pred has shape {pred.shape} and ref has shape {ref.shape}: they must match")
    if pred.ndim != 3:
        raise ValueError(f"masks must be 3D (x, y, z), got shape {pred.shape}")
    return pred.astype(bool, copy=False), ref.astype(bool, copy=False)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice = 2 |pred & ref| / (|pred| + |ref|) of two bool masks (x, y, z); 1.0 when both are empty (FLARE)."""
    pred, ref = _check_pair(pred, ref)
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(ref))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(pred & ref)) / total


@functools.lru_cache(maxsize=64)
def surface_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    """(256,) float64: area (mm^2) of the marching-cubes surface in a 2 x 2 x 2 cube, by neighbour code.

    DeepMind's table, taken from MONAI (monai.metrics.utils), scaled for the voxel spacing (mm).
    """
    from monai.metrics.utils import create_table_neighbour_code_to_surface_area

    table, _ = create_table_neighbour_code_to_surface_area(tuple(float(s) for s in spacing))
    return np.asarray(table.cpu().numpy(), dtype=np.float64)


def _neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """Neighbour code of every 2 x 2 x 2 cube of a bool array (n0, n1, n2): uint8 (n0 - 1, n1 - 1, n2 - 1)."""
    m = mask.view(np.uint8)
    n0, n1, n2 = m.shape
    code = np.zeros((n0 - 1, n1 - 1, n2 - 1), dtype=np.uint8)
    for (dx, dy, dz), weight in _CODE_WEIGHTS:
        part = m[dx:dx + n0 - 1, dy:dy + n1 - 1, dz:dz + n2 - 1]
        code += part if weight == 1 else part * np.uint8(weight)
    return code


def _distance_to(surface: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Exact Euclidean distance (mm) from every cube to the nearest cube of surface (bool): float32, same shape."""
    import edt

    return edt.edt(np.ascontiguousarray(~surface).view(np.uint8), anisotropy=spacing, black_border=False,
                   parallel=1)


@dataclass(frozen=True)
class SurfaceDistances:
    """Distances (mm) from each surface element of pred to ref's surface and back, sorted ascending, with the
    surface area (mm^2) of each element in the same order. Empty arrays for an empty mask."""

    pred_to_ref: np.ndarray
    pred_areas: np.ndarray
    ref_to_pred: np.ndarray
    ref_areas: np.ndarray
    pred_empty: bool
    ref_empty: bool


def surface_distances(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Both directions' surface distances of two bool masks (x, y, z), DeepMind-style (see the module doc).

    Works inside the bounding box of pred | ref padded by one voxel, so the cost follows the organ, not the scan.
    """
    pred, ref = _check_pair(pred, ref)
    spacing = check_spacing(spacing)
    empty = np.zeros(0, dtype=np.float64)
    union = pred | ref
    pred_empty, ref_empty = not pred.any(), not ref.any()
    if pred_empty and ref_empty:
        return SurfaceDistances(empty, empty, empty, empty, True, True)
    box = bounding_box(union)
    assert box is not None
    shape = tuple(s.stop - s.start + 2 for s in box)
    inner = tuple(slice(1, n - 1) for n in shape)
    crops = []
    for mask in (pred, ref):
        padded = np.zeros(shape, dtype=bool)
        padded[inner] = mask[box]
        crops.append(padded)
    table = surface_area_table(spacing)
    codes = [_neighbour_codes(c) for c in crops]
    surfaces = [(c != 0) & (c != 255) for c in codes]
    out = []
    for this, other in ((0, 1), (1, 0)):
        if not surfaces[this].any():
            out.append((empty, empty))
            continue
        areas = table[codes[this][surfaces[this]]]
        if surfaces[other].any():
            dist = _distance_to(surfaces[other], spacing)[surfaces[this]].astype(np.float64)
        else:
            dist = np.full(areas.shape, np.inf)
        order = np.argsort(dist, kind="stable")
        out.append((dist[order], areas[order]))
    (pd, pa), (rd, ra) = out
    return SurfaceDistances(pd, pa, rd, ra, pred_empty, ref_empty)


def _surface_dice(d: SurfaceDistances, tolerance_mm: float) -> float:
    if d.pred_empty and d.ref_empty:
        return 1.0
    if d.pred_empty or d.ref_empty:
        return 0.0
    within = d.pred_areas[d.pred_to_ref <= tolerance_mm].sum() + d.ref_areas[d.ref_to_pred <= tolerance_mm].sum()
    total = d.pred_areas.sum() + d.ref_areas.sum()
    return float(within / total) if total > 0 else 1.0


def _directed_percentile(distances: np.ndarray, areas: np.ndarray, percentile: float) -> float:
    if distances.size == 0:
        return math.inf
    cumulative = np.cumsum(areas) / np.sum(areas)
    index = int(np.searchsorted(cumulative, percentile / 100.0))
    return float(distances[min(index, distances.size - 1)])


def _hd(d: SurfaceDistances, percentile: float) -> float:
    if d.pred_empty and d.ref_empty:
        return 0.0
    if d.pred_empty or d.ref_empty:
        return math.inf
    return max(_directed_percentile(d.pred_to_ref, d.pred_areas, percentile),
               _directed_percentile(d.ref_to_pred, d.ref_areas, percentile))


def _assd(d: SurfaceDistances) -> float:
    if d.pred_empty and d.ref_empty:
        return 0.0
    if d.pred_empty or d.ref_empty:
        return math.inf
    total = d.pred_areas.sum() + d.ref_areas.sum()
    return float((np.dot(d.pred_to_ref, d.pred_areas) + np.dot(d.ref_to_pred, d.ref_areas)) / total)


def nsd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], tolerance_mm: float) -> float:
    """Normalised surface Dice at tolerance_mm of two bool masks (x, y, z); spacing in mm.

    Both empty: 1.0; one empty: 0.0 (FLARE).
    """
    if not math.isfinite(tolerance_mm) or tolerance_mm < 0:
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm}")
    return _surface_dice(surface_distances(pred, ref, spacing), float(tolerance_mm))


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, percentile: float = 95.0) -> float:
    """Robust Hausdorff distance (mm): the larger of the two directed, area-weighted percentiles.

    Both empty: 0.0; one empty: inf.
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return _hd(surface_distances(pred, ref, spacing), percentile)


def assd(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """Average symmetric surface distance (mm), area-weighted over both surfaces. Both empty: 0.0; one: inf."""
    return _assd(surface_distances(pred, ref, spacing))


def evaluate_masks(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float], *, tolerance_mm: float) -> dict:
    """Dice, NSD, HD95 and ASSD of one organ (surface distances computed once), and both volumes in mL."""
    pred, ref = _check_pair(pred, ref)
    spacing = check_spacing(spacing)
    d = surface_distances(pred, ref, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {
        "dice": dice(pred, ref),
        "nsd": _surface_dice(d, float(tolerance_mm)),
        "tolerance_mm": float(tolerance_mm),
        "hd95_mm": _hd(d, 95.0),
        "assd_mm": _assd(d),
        "pred_ml": int(np.count_nonzero(pred)) * voxel_ml,
        "ref_ml": int(np.count_nonzero(ref)) * voxel_ml,
    }


# --------------------------------------------------------------------------------------------------------------
# Attention evaluation (paper, section 3.1 and Table 1)


@dataclass(frozen=True)
class AttentionDetection:
    """Component-wise evaluation of an attention map against the error region (pseudo-label XOR truth).

    sensitivity = error components touched by attention / error components (nan when there is no error);
    precision = attention components touching an error / attention components (nan when there is no attention).
    """

    error_components: int
    detected_errors: int
    attention_components: int
    useful_attention: int
    error_voxels: int
    attention_voxels: int

    @property
    def sensitivity(self) -> float:
        return self.detected_errors / self.error_components if self.error_components else math.nan

    @property
    def precision(self) -> float:
        return self.useful_attention / self.attention_components if self.attention_components else math.nan

    def to_dict(self) -> dict:
        return {
            "sensitivity": _finite_or_none(self.sensitivity), "precision": _finite_or_none(self.precision),
            "error_components": self.error_components, "detected_errors": self.detected_errors,
            "attention_components": self.attention_components, "useful_attention": self.useful_attention,
            "error_voxels": self.error_voxels, "attention_voxels": self.attention_voxels,
        }


def error_region(pseudo: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(x, y, z) bool: false positives and false negatives of a pseudo-label, pseudo XOR truth."""
    pseudo, truth = _check_pair(pseudo, truth)
    return pseudo ^ truth


def attention_detection(attention: np.ndarray, pseudo: np.ndarray, truth: np.ndarray, *, connectivity: int = 26,
                        min_voxels: int = 1) -> AttentionDetection:
    """Component-wise sensitivity and precision of an attention map (all three bool (x, y, z), one shape).

    An error component is detected when at least one of its voxels is attention; an attention component is
    useful when at least one of its voxels is an error. Components smaller than min_voxels are ignored.
    """
    from ml_engine.attention.hotspots import label_components

    attention, _ = _check_pair(attention, truth)
    errors = error_region(pseudo, truth)
    if min_voxels < 1:
        raise ValueError(f"min_voxels must be at least 1, got {min_voxels}")
    error_labels, n_errors = _components(errors, connectivity, min_voxels, label_components)
    attention_labels, n_attention = _components(attention, connectivity, min_voxels, label_components)
    detected = np.unique(error_labels[attention_labels > 0])
    useful = np.unique(attention_labels[error_labels > 0])
    return AttentionDetection(
        error_components=n_errors, detected_errors=int(np.count_nonzero(detected)),
        attention_components=n_attention, useful_attention=int(np.count_nonzero(useful)),
        error_voxels=int(np.count_nonzero(error_labels)), attention_voxels=int(np.count_nonzero(attention_labels)))


def _components(mask: np.ndarray, connectivity: int, min_voxels: int, label_components) -> tuple[np.ndarray, int]:
    labels, count = label_components(mask, connectivity=connectivity)
    if min_voxels > 1 and count:
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        keep = sizes >= min_voxels
        keep[0] = False
        remap = np.zeros(count + 1, dtype=labels.dtype)
        remap[keep] = np.arange(1, int(keep.sum()) + 1, dtype=labels.dtype)
        return remap[labels], int(keep.sum())
    return labels, count


def mean_detection(results: Mapping[str, AttentionDetection]) -> dict[str, float | None]:
    """Mean sensitivity and precision over organs, each over the organs where it is defined (Table 1's Avg.)."""
    sens = [r.sensitivity for r in results.values() if not math.isnan(r.sensitivity)]
    prec = [r.precision for r in results.values() if not math.isnan(r.precision)]
    return {"sensitivity": float(np.mean(sens)) if sens else None, "precision": float(np.mean(prec)) if prec else None}


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
