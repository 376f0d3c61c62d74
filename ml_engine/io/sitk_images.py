"""SimpleITK images converted to the NIfTI convention (x, y, z; RAS+): the reference that the tests and the
label-reader benchmark compare Atlas's own readers with.

No project code reads a file with SimpleITK here: label maps (NRRD included) go through ml_engine.io.labels_io, and
DICOM through ml_engine.io.dicom, which decodes in a sandboxed child process (ml_engine.io.sandbox).
"""

from __future__ import annotations

import os

import numpy as np

from ml_engine.io.errors import ImageError
from ml_engine.io.nifti import Volume


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
