"""NRRD label maps, read with SimpleITK and converted to the NIfTI convention (x, y, z; RAS+). DICOM: dicom.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ml_engine.io.errors import ImageError, short_error
from ml_engine.io.nifti import Volume, load_nifti

LABEL_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd")


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


def label_suffix(name: str) -> str | None:
    """The label-file suffix of a file name (.nii.gz, .nii, .seg.nrrd, .nrrd), or None for other files."""
    lower = name.lower()
    return next((s for s in LABEL_SUFFIXES if lower.endswith(s)), None)


def load_label_image(path: str | os.PathLike, *, max_bytes: int, expect_shape: tuple[int, ...] | None = None
                     ) -> Volume:
    """Read a label map (NIfTI, or NRRD as 3D Slicer saves it) as a Volume (x, y, z; RAS+ affine), integer voxels.

    NIfTI goes through load_nifti (header first, inflated no further than the header allows). NRRD is read with
    SimpleITK, whose header is read first: a file whose voxels would take more than max_bytes, or that is not one
    scalar 3D volume (a .seg.nrrd of overlapping segments holds several layers), is refused before any voxel is read.
    With expect_shape, a shape that is not a permutation of it is refused there too. ImageError names the file.
    """
    import SimpleITK as sitk

    path = Path(path)
    suffix = label_suffix(path.name)
    if suffix in (".nii", ".nii.gz"):
        volume = load_nifti(path, max_bytes=max_bytes, allow_float=False, expect_shape=expect_shape,
                            any_axis_order=True)
    elif suffix in (".nrrd", ".seg.nrrd"):
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.SetImageIO("NrrdImageIO")
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise ImageError(path, f"not a readable NRRD file ({short_error(exc)})") from exc
        size = tuple(int(s) for s in reader.GetSize())
        layers = reader.GetNumberOfComponents()
        if len(size) != 3 or layers != 1:
            raise ImageError(path, f"expected one 3D label map, found size {size} with {layers} layer(s) "
                                   f"(overlapping segments: save a label map without overlaps)")
        pixel = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        if "float" in pixel or "complex" in pixel:
            raise ImageError(path, f"expected integer voxels, found {pixel}")
        nbytes = int(np.prod(size, dtype=object)) * 8
        if nbytes > max_bytes:
            raise ImageError(path, f"volume of size {size} exceeds the limit of {max_bytes} bytes")
        if expect_shape is not None and sorted(size) != sorted(int(s) for s in expect_shape):
            raise ImageError(path, f"shape {size} differs from the CT's {tuple(expect_shape)}")
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise ImageError(path, f"truncated or corrupt NRRD data ({short_error(exc)})") from exc
        volume = sitk_to_volume(image, path, max_bytes=max_bytes)
    else:
        raise ImageError(path, "not a label file (.nii, .nii.gz, .nrrd or .seg.nrrd)")
    return volume
