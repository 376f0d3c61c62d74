"""DICOM series, read with SimpleITK and converted to the NIfTI convention (x, y, z; RAS+).

No user upload comes here: label maps (NRRD included) go through ml_engine.io.labels_io, which never calls SimpleITK.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ml_engine.io.errors import ImageError, short_error
from ml_engine.io.nifti import Volume


def read_dicom_series(folder: str | os.PathLike) -> list[tuple[str, Path]]:
    """The DICOM series under folder (recursively): (series instance UID, its folder), sorted."""
    import SimpleITK as sitk

    folder = Path(folder)
    found: list[tuple[str, Path]] = []
    dirs = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
    for directory in dirs:
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory)) or ():
            found.append((uid, directory))
    return found


def load_dicom_series(folder: str | os.PathLike, series_uid: str, *, max_bytes: int | None = None
                      ) -> tuple[Volume, list[Path]]:
    """Read one DICOM series as a Volume in NIfTI convention (x, y, z; RAS+ affine), and its files.

    Uses SimpleITK (GDCM), which orders slices by position and applies rescale slope / intercept.
    """
    import SimpleITK as sitk

    folder = Path(folder)
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid)
    if not files:
        raise ImageError(folder, f"DICOM series {series_uid} has no readable files")
    if len(files) < 2:
        raise ImageError(folder, f"DICOM series {series_uid} has a single slice: expected a 3D volume")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageError(folder, f"DICOM series {series_uid} cannot be read ({short_error(exc)})") from exc
    volume = sitk_to_volume(image, folder, max_bytes=max_bytes)
    return volume, [Path(f) for f in files]


def sitk_to_volume(image, source: str | os.PathLike, *, max_bytes: int | None = None) -> Volume:
    """Convert a SimpleITK image (LPS physical space) to a Volume (x, y, z; RAS+ affine)."""
    import SimpleITK as sitk

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ImageError(source, f"expected a scalar 3D volume, found {image.GetDimension()}D "
                                 f"with {image.GetNumberOfComponentsPerPixel()} components")
    size = image.GetSize()
    if min(size) < 2:
        raise ImageError(source, f"expected a 3D volume, found size {size}")
    if max_bytes is not None and int(np.prod(size)) * image.GetSizeOfPixelComponent() > max_bytes:
        raise ImageError(source, f"volume of size {size} exceeds the limit of {max_bytes} bytes")
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)  # (z, y, x) -> (x, y, z)
    if data.dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ImageError(source, "NaN or infinite voxels")
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    return Volume(data=np.ascontiguousarray(data), affine=affine)
