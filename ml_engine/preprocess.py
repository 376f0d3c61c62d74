"""Preprocessing for the networks and its exact inverse back to the CT grid.

Forward (`prepare_image`): reorient the CT (x, y, z) to RAS by axis permutation and flips only (no interpolation),
crop to the body, resample to the target spacing (trilinear), clip Hounsfield units to a window and scale to [0, 1].
The returned `GridSpec` records every step, so that `restore` puts an array of the network grid back on the
original CT grid: same shape, same voxel order, and the caller keeps the original affine. The grid of every stage
is exact: the resampled grid's affine is derived from the same scale factors that the interpolation uses
(torch `interpolate`, align_corners=False: output voxel i samples input coordinate (i + 0.5) * in / out - 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from ml_engine.io import spacing_from_affine
from ml_engine.networks import HU_WINDOW

BODY_HU = -500.0  # voxels above this are body (air is -1000)
BODY_MARGIN_MM = 10.0


@dataclass(frozen=True)
class GridSpec:
    """How a CT grid maps to a network grid and back.

    original_shape (x, y, z) and original_affine (4, 4): the CT as read. ornt: (3, 2) nibabel orientation of the
    original axes. ras_shape: the reoriented shape. crop: (start, stop) per RAS axis. shape: the
    network grid (x', y', z'); affine: its (4, 4) voxel-to-RAS+ matrix; spacing: its voxel size in mm.
    """

    original_shape: tuple[int, int, int]
    original_affine: np.ndarray
    ornt: np.ndarray
    ras_shape: tuple[int, int, int]
    crop: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]
    shape: tuple[int, int, int]
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        return spacing_from_affine(self.affine)

    @property
    def crop_shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in self.crop)  # type: ignore[return-value]


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorient data (x, y, z, ...) to the RAS axes closest to affine's, by permutation and flips only.

    Returns (data in RAS order, its affine (4, 4), the (3, 2) orientation of the original axes for `from_ras`).
    """
    affine = np.asarray(affine, dtype=np.float64)
    original = nib.orientations.io_orientation(affine)
    transform = nib.orientations.ornt_transform(original, _RAS)
    out = nib.orientations.apply_orientation(data, transform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(transform, data.shape[:3])
    return out, new_affine, original


def from_ras(data: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Undo `to_ras`: data (x, y, z, ...) in RAS order back to the original axes (exact)."""
    return nib.orientations.apply_orientation(data, nib.orientations.ornt_transform(_RAS, original))


_RAS = nib.orientations.axcodes2ornt("RAS")


def body_box(ct: np.ndarray, spacing: Sequence[float], *, threshold: float = BODY_HU,
             margin_mm: float = BODY_MARGIN_MM) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(start, stop) per axis of the box around voxels of ct (x, y, z) above threshold HU, plus margin_mm.

    The whole volume when no voxel is above the threshold.
    """
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        profile = (ct > threshold).any(axis=other)
        index = np.flatnonzero(profile)
        if index.size == 0:
            return tuple((0, int(s)) for s in ct.shape)  # type: ignore[return-value]
        margin = int(np.ceil(margin_mm / float(spacing[axis])))
        box.append((max(0, int(index[0]) - margin), min(int(ct.shape[axis]), int(index[-1]) + 1 + margin)))
    return tuple(box)  # type: ignore[return-value]


def target_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> tuple[int, int, int]:
    """Grid shape that covers shape * spacing mm with voxels of about target mm (at least 1 voxel)."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target, strict=True))  # type: ignore[return-value]


def resample(array: np.ndarray, shape: Sequence[int], *, mode: str = "trilinear") -> np.ndarray:
    """Resample array (x, y, z) or (C, x, y, z) to the spatial shape (x', y', z'); float32 out (nearest keeps dtype).

    mode: "trilinear" or "nearest" (nearest-exact). align_corners=False, so voxel centres map as in GridSpec.
    """
    shape = tuple(int(s) for s in shape)
    squeeze = array.ndim == 3
    if tuple(array.shape[-3:]) == shape:
        return array.astype(np.float32) if mode == "trilinear" else array
    if mode == "nearest":
        index = [np.minimum(((np.arange(n) + 0.5) * (m / n)).astype(np.int64), m - 1)
                 for n, m in zip(shape, array.shape[-3:], strict=True)]
        return array[..., index[0][:, None, None], index[1][None, :, None], index[2][None, None, :]]
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    tensor = tensor[None, None] if squeeze else tensor[None]
    out = F.interpolate(tensor, size=shape, mode="trilinear", align_corners=False)[0]
    out = out[0] if squeeze else out
    return out.numpy()


def resampled_affine(affine: np.ndarray, shape: Sequence[int], new_shape: Sequence[int]) -> np.ndarray:
    """Affine (4, 4) of the grid of new_shape that `resample` produces from a grid (shape, affine)."""
    scale = np.asarray(shape, dtype=np.float64) / np.asarray(new_shape, dtype=np.float64)
    step = np.eye(4)
    step[:3, :3] = np.diag(scale)
    step[:3, 3] = 0.5 * scale - 0.5
    return np.asarray(affine, dtype=np.float64) @ step


def window(ct: np.ndarray, hu_window: Sequence[float] = HU_WINDOW) -> np.ndarray:
    """Clip ct (any shape, HU) to [low, high] and scale to [0, 1] float32."""
    low, high = float(hu_window[0]), float(hu_window[1])
    out = np.clip(ct.astype(np.float32), low, high)
    out -= low
    out /= high - low
    return out


def prepare_image(ct: np.ndarray, affine: np.ndarray, spacing: Sequence[float], *,
                  hu_window: Sequence[float] = HU_WINDOW, crop_body: bool = True) -> tuple[np.ndarray, GridSpec]:
    """CT (x, y, z) HU with its affine (4, 4) -> (network image (x', y', z') float32 in [0, 1], GridSpec).

    spacing: target voxel size in mm. The image is reoriented to RAS, cropped to the body (when crop_body), resampled
    and windowed to hu_window.
    """
    if ct.ndim != 3:
        raise ValueError(f"expected a 3D CT (x, y, z), got shape {ct.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"expected a 4 x 4 affine, got shape {affine.shape}")
    ras, ras_affine, transform = to_ras(ct, affine)
    ras_spacing = np.array(spacing_from_affine(ras_affine))
    box = body_box(ras, ras_spacing) if crop_body else tuple((0, int(s)) for s in ras.shape)
    cropped = ras[box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]]
    shift = np.eye(4)
    shift[:3, 3] = [a for a, _ in box]
    crop_affine = ras_affine @ shift
    new_shape = target_shape(cropped.shape, ras_spacing, spacing)
    image = resample(window(cropped, hu_window), new_shape)
    spec = GridSpec(original_shape=tuple(int(s) for s in ct.shape), original_affine=affine, ornt=transform,
                    ras_shape=tuple(int(s) for s in ras.shape), crop=box, shape=new_shape,  # type: ignore[arg-type]
                    affine=resampled_affine(crop_affine, cropped.shape, new_shape))
    return np.ascontiguousarray(image, dtype=np.float32), spec


def prepare_masks(masks: np.ndarray, spec: GridSpec) -> np.ndarray:
    """Organ masks (C, x, y, z) on the original grid -> (C, x', y', z') uint8 0/1 on the network grid of spec.

    Each mask is resampled as a fraction (trilinear) and thresholded at 0.5, which keeps thin structures better than
    nearest neighbour.
    """
    if masks.ndim != 4 or tuple(masks.shape[1:]) != spec.original_shape:
        raise ValueError(f"expected masks (C, {', '.join(map(str, spec.original_shape))}), got {masks.shape}")
    ras = nib.orientations.apply_orientation(np.moveaxis(masks, 0, -1),
                                             nib.orientations.ornt_transform(spec.ornt, _RAS))
    (x0, x1), (y0, y1), (z0, z1) = spec.crop
    ras = np.moveaxis(ras[x0:x1, y0:y1, z0:z1], -1, 0)
    out = np.empty((masks.shape[0], *spec.shape), dtype=np.uint8)
    for c in range(masks.shape[0]):
        out[c] = resample(ras[c].astype(np.float32), spec.shape) >= 0.5
    return out


def restore(array: np.ndarray, spec: GridSpec, *, mode: str = "trilinear", fill: float = 0) -> np.ndarray:
    """Put array (x', y', z') on the network grid of spec back on the original CT grid (x, y, z).

    mode "trilinear" returns float32 (probabilities); "nearest" keeps the dtype (labels). Voxels outside the body
    crop get fill. The caller writes the result with spec.original_affine.
    """
    if tuple(array.shape) != spec.shape:
        raise ValueError(f"expected an array of shape {spec.shape}, got {array.shape}")
    out_dtype = np.float32 if mode == "trilinear" else array.dtype
    ras = np.full(spec.ras_shape, fill, dtype=out_dtype)
    (x0, x1), (y0, y1), (z0, z1) = spec.crop
    ras[x0:x1, y0:y1, z0:z1] = resample(array, spec.crop_shape, mode=mode)
    return np.ascontiguousarray(from_ras(ras, spec.ornt))


def restore_uint8(probability: np.ndarray, spec: GridSpec, *, device: torch.device | str | None = None
                  ) -> np.ndarray:
    """Probabilities (x', y', z') in [0, 1] (float) or p x 255 (uint8) -> uint8 p x 255 on the original grid.

    Trilinear, the grid mapping of `resample`. When the nonzero voxels fill a small box of the network grid (an
    organ's neighbourhood), only the box of the CT grid they reach is interpolated, one axis at a time; the rest is
    0, as interpolating zeros gives (the two ways agree within one level of 255 on about 1e-5 of the voxels, the
    last bit of float32 rounding). device: where to interpolate (a GPU: the network grid goes up as uint8 and the
    CT grid comes back as uint8); None: the CPU.
    """
    scale = 1.0 if probability.dtype == np.uint8 else 255.0
    ras = np.zeros(spec.ras_shape, dtype=np.uint8)
    (x0, x1), (y0, y1), (z0, z1) = spec.crop
    inside = _nonzero_box(probability)
    if inside is not None:
        tensor = torch.from_numpy(np.ascontiguousarray(probability)).to(device or "cpu")
        share = np.prod([hi - lo for lo, hi in inside]) / probability.size
        if share < BOX_SHARE:  # an organ's corner of the grid: interpolate only where it lands
            out_box, values = _interpolate_box(tensor, inside, spec.crop_shape)
        else:  # most of the grid: torch's fused kernel over all of it is faster
            out_box = (slice(None),) * 3
            values = F.interpolate(tensor.float()[None, None], size=spec.crop_shape, mode="trilinear",
                                   align_corners=False)[0, 0]
        values = values.mul_(scale).clamp_(0, 255).round_().to(torch.uint8).cpu().numpy()
        ras[x0:x1, y0:y1, z0:z1][out_box] = values
    return np.ascontiguousarray(from_ras(ras, spec.ornt))


BOX_SHARE = 0.3  # below this share of the network grid, restore_uint8 interpolates the nonzero box only


def _nonzero_box(array: np.ndarray) -> list[tuple[int, int]] | None:
    """(start, stop) per axis of the nonzero voxels of a 3D array, None when all are zero."""
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        index = np.flatnonzero(np.any(array, axis=other))
        if index.size == 0:
            return None
        box.append((int(index[0]), int(index[-1]) + 1))
    return box


def _interpolate_box(tensor: torch.Tensor, inside: list[tuple[int, int]], shape: Sequence[int]
                     ) -> tuple[tuple[slice, slice, slice], torch.Tensor]:
    """Trilinear interpolation of tensor (x, y, z), zero outside `inside`, onto `shape`, where it can be nonzero.

    The same arithmetic as torch's trilinear interpolate (align_corners=False: output voxel j samples
    (j + 0.5) * n_in / n_out - 0.5, clamped at 0; weights 1 - l and l), done one axis at a time (z, then y, then x,
    the nesting of torch's kernel) and only for output voxels whose two source voxels meet the box.
    Returns (the output box as slices, its float32 values).
    """
    work = tensor
    out_box = []
    grown = [(max(0, lo - 1), min(n, hi + 1)) for (lo, hi), n in zip(inside, tensor.shape, strict=True)]
    work = work[grown[0][0]:grown[0][1], grown[1][0]:grown[1][1], grown[2][0]:grown[2][1]].float()
    plans = []
    for (lo, hi), (g0, _), n_in, n_out in zip(inside, grown, tensor.shape, shape, strict=True):
        step = np.float32(n_in) / np.float32(n_out)
        src = np.maximum(step * (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5),
                         np.float32(0))
        i0 = src.astype(np.int64)
        lam = (src - i0.astype(np.float32)).astype(np.float32)
        i1 = np.minimum(i0 + 1, n_in - 1)
        keep = np.flatnonzero((i1 >= lo) & (i0 < hi))
        a, b = int(keep[0]), int(keep[-1]) + 1
        out_box.append(slice(a, b))
        plans.append((torch.from_numpy(i0[a:b] - g0), torch.from_numpy(i1[a:b] - g0), torch.from_numpy(lam[a:b])))
    for axis in (2, 1, 0):
        i0, i1, lam = (t.to(work.device) for t in plans[axis])
        view = [1, 1, 1]
        view[axis] = -1
        lam = lam.view(view)
        work = torch.lerp(work.index_select(axis, i0), work.index_select(axis, i1), lam)
    return tuple(out_box), work  # type: ignore[return-value]
