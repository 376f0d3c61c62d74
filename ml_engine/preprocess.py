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
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

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
    ras_spacing = np.linalg.norm(ras_affine[:3, :3], axis=0)
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

    device: resample there with torch (a GPU: the network grid goes up as uint8 and the CT grid comes back as uint8);
    None: on the CPU. Both give the same voxels (round half to even).
    """
    scale = 1.0 if probability.dtype == np.uint8 else 255.0
    ras = np.zeros(spec.ras_shape, dtype=np.uint8)
    (x0, x1), (y0, y1), (z0, z1) = spec.crop
    if device is not None:
        tensor = torch.from_numpy(np.ascontiguousarray(probability)).to(device).float()[None, None]
        if tuple(tensor.shape[2:]) != spec.crop_shape:
            tensor = F.interpolate(tensor, size=spec.crop_shape, mode="trilinear", align_corners=False)
        ras[x0:x1, y0:y1, z0:z1] = tensor[0, 0].mul_(scale).clamp_(0, 255).round_().to(torch.uint8).cpu().numpy()
        return np.ascontiguousarray(from_ras(ras, spec.ornt))
    crop = resample(probability.astype(np.float32, copy=False), spec.crop_shape)
    crop *= scale
    np.clip(crop, 0, 255, out=crop)
    ras[x0:x1, y0:y1, z0:z1] = np.rint(crop, out=crop).astype(np.uint8)
    del crop
    return np.ascontiguousarray(from_ras(ras, spec.ornt))
