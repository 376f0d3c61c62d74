"""Label maps from outside (uploads, imports): NIfTI through load_nifti, NRRD through our own reader; no SimpleITK.

Both readers decide everything from the header before a voxel is read and are pure Python (nibabel's header parser,
ml_engine.io.nrrd), so an annotator's file never reaches a native image parser in a web process (issue #23).
"""

from __future__ import annotations

import os
from pathlib import Path

from ml_engine.io.errors import ImageError
from ml_engine.io.nifti import Volume, load_nifti
from ml_engine.io.nrrd import load_nrrd

LABEL_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd")


def label_suffix(name: str) -> str | None:
    """The label-file suffix of a file name (.nii.gz, .nii, .seg.nrrd, .nrrd), or None for other files."""
    lower = name.lower()
    return next((s for s in LABEL_SUFFIXES if lower.endswith(s)), None)


def load_label_image(path: str | os.PathLike, *, max_bytes: int, expect_shape: tuple[int, ...] | None = None
                     ) -> Volume:
    """Read a label map (NIfTI, or NRRD as 3D Slicer saves it) as a Volume (x, y, z; RAS+ affine), integer voxels.

    NIfTI goes through load_nifti, NRRD through ml_engine.io.nrrd.load_nrrd: each reads its header first and
    refuses, before any voxel is read, a file whose voxels would take more than max_bytes (8 bytes a voxel for NRRD),
    that is not one integer 3D volume (a .seg.nrrd of overlapping segments holds several layers) or, with
    expect_shape, whose shape is not a permutation of it; the data are then inflated no further than the header
    promises. ImageError names the file.
    """
    path = Path(path)
    suffix = label_suffix(path.name)
    if suffix in (".nii", ".nii.gz"):
        return load_nifti(path, max_bytes=max_bytes, allow_float=False, expect_shape=expect_shape,
                          any_axis_order=True)
    if suffix in (".nrrd", ".seg.nrrd"):
        return load_nrrd(path, max_bytes=max_bytes, expect_shape=expect_shape)
    raise ImageError(path, "not a label file (.nii, .nii.gz, .nrrd or .seg.nrrd)")
