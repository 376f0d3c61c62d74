"""Maps on a CT's grid: stored cropped to a box with a shifted affine, placed back, or reordered onto its voxels."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from ml_engine.io.errors import ImageError, short_error
from ml_engine.io.gz import FAST, ZLIB_ERRORS
from ml_engine.io.nifti import AFFINE_TOLERANCE_MM, Volume, load_nifti, same_geometry, write_nifti


def box_affine(affine: np.ndarray, start: tuple[int, ...] | list[int]) -> np.ndarray:
    """The affine (4, 4) of a crop whose voxel (0, 0, 0) is voxel `start` (x, y, z) of the grid of `affine`."""
    shifted = np.array(affine, dtype=np.float64)
    shifted[:3, 3] = np.asarray(affine, dtype=np.float64)[:3, :] @ np.array([*map(float, start), 1.0])
    return shifted


def write_nifti_box(path: str | os.PathLike, crop: np.ndarray, affine: np.ndarray, start: tuple[int, ...] | list[int],
                    *, dtype: np.dtype | type | None = None, level: int = FAST) -> Path:
    """Write crop (a box of a grid: its voxel (0, 0, 0) is the grid's voxel `start`) with the shifted affine.

    Any tool that places images by their world geometry (NiiVue, 3D Slicer, ITK-SNAP) shows it where it belongs on
    the grid; load_on_grid puts it back on the grid's voxels.
    """
    return write_nifti(path, crop, box_affine(affine, start), dtype=dtype, level=level)


def grid_offset(path: str | os.PathLike, file_affine: np.ndarray, file_shape: tuple[int, ...], shape: tuple[int, ...],
                affine: np.ndarray, tol: float = AFFINE_TOLERANCE_MM) -> tuple[int, int, int]:
    """Where a file's voxel (0, 0, 0) lies on the grid (shape, affine): whole voxels, the file inside the grid.

    ImageError naming the file when its voxels are not the grid's (other spacing or orientation, a shift by a
    fraction of a voxel) or when it reaches outside the grid.
    """
    file_affine, affine = np.asarray(file_affine, dtype=np.float64), np.asarray(affine, dtype=np.float64)
    if not np.allclose(file_affine[:3, :3], affine[:3, :3], atol=tol, rtol=0):
        raise ImageError(path, "its voxels differ from the CT's (spacing or orientation)")
    offset = np.linalg.solve(affine[:3, :3], file_affine[:3, 3] - affine[:3, 3])
    whole = np.rint(offset)
    if np.abs(affine[:3, :3] @ (offset - whole)).max() > tol:
        raise ImageError(path, f"its grid is shifted by a fraction of a voxel from the CT's ({np.round(offset, 3)})")
    start = tuple(int(v) for v in whole)
    if any(s < 0 or s + n > g for s, n, g in zip(start, file_shape, shape, strict=True)):
        raise ImageError(path, f"its box (start {start}, shape {tuple(file_shape)}) reaches outside the CT's grid "
                               f"{tuple(shape)}")
    return start  # type: ignore[return-value]


def load_on_grid(path: str | os.PathLike, shape: tuple[int, ...], affine: np.ndarray, *,
                 box: tuple[slice, slice, slice] | None = None, max_bytes: int | None = None) -> np.ndarray:
    """A map stored on the grid (shape, affine): whole, or cropped to a box with a shifted affine (write_nifti_box).

    Returns the map on the whole grid (x, y, z), zeros outside the stored box; with `box` (slices into the grid),
    only that part. ImageError names the file when it is not on the grid (see grid_offset) or cannot be read.
    """
    path = Path(path)
    shape = tuple(int(s) for s in shape)
    want = box if box is not None else tuple(slice(0, n) for n in shape)
    want_shape = tuple(s.stop - s.start for s in want)
    try:
        header = nib.load(str(path))
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, *ZLIB_ERRORS, ValueError) as exc:
        raise ImageError(path, f"not a readable NIfTI image ({short_error(exc)})") from exc
    file_shape = tuple(int(s) for s in header.shape[:3])
    start = grid_offset(path, header.affine, file_shape, shape, affine)
    if box is not None and file_shape == shape and not any(start):  # a whole-grid map: read the box only
        return np.asarray(header.dataobj[box])
    volume = load_nifti(path, max_bytes=max_bytes)
    lo = [max(s.start, o) for s, o in zip(want, start, strict=True)]
    hi = [min(s.stop, o + n) for s, o, n in zip(want, start, file_shape, strict=True)]
    if file_shape == want_shape and lo == [s.start for s in want] and hi == [s.stop for s in want]:
        return np.asarray(volume.data)
    out = np.zeros(want_shape, dtype=volume.data.dtype)
    if all(h > low for low, h in zip(lo, hi, strict=True)):
        out[tuple(slice(low - s.start, h - s.start) for low, h, s in zip(lo, hi, want, strict=True))] = \
            volume.data[tuple(slice(low - o, h - o) for low, h, o in zip(lo, hi, start, strict=True))]
    return out


def reorient_onto(volume: Volume, affine: np.ndarray, shape: tuple[int, ...], path: str | os.PathLike
                  ) -> tuple[np.ndarray, bool]:
    """volume's voxels in the voxel order of the grid (affine, shape), and whether they had to be reordered.

    A label whose affine describes the same physical grid as the CT with its axes flipped or permuted (two converters
    disagreeing on voxel order) is transposed and flipped onto the CT's order. Any other grid (other spacing, origin,
    extent or a rotation) raises ImageError naming path: nothing is resampled.
    """
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation, ornt_transform

    target = np.asarray(affine, dtype=np.float64)
    shape = tuple(int(s) for s in shape)
    if volume.shape == shape and same_geometry(volume.affine, target):
        return volume.data, False
    transform = ornt_transform(io_orientation(volume.affine), io_orientation(target))
    data = apply_orientation(volume.data, transform)
    moved = volume.affine @ inv_ornt_aff(transform, volume.shape)
    if tuple(data.shape) != shape:
        raise ImageError(path, f"label shape {volume.shape} differs from the CT's {shape}")
    if not same_geometry(moved, target):
        worst = float(np.abs(moved - target).max())
        raise ImageError(path, f"label affine differs from the CT's (by up to {worst:.4g} mm): a different grid, "
                               f"not the CT's grid in another voxel order")
    return np.ascontiguousarray(data), True
