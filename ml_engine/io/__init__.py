"""Reading and writing CT volumes and label maps with their geometry kept exactly.

Arrays are in NIfTI voxel order (x, y, z); `affine` is the 4 x 4 voxel-to-RAS+ matrix (mm).
Every write lands whole or not at all: it goes to a temporary name beside the target, then is renamed.
Label maps from outside (NIfTI, NRRD) are read in pure Python under our own limits, so that no upload reaches a
native image parser; DICOM series are read with SimpleITK in a sandboxed child process (sandbox) and converted to the
same convention.

Gzip goes through ISA-L (python-isal's igzip: the same format, 3 to 10 times faster than zlib) when it is installed,
else through the standard library. The compression level is chosen per use: FAST for the files the loop writes and
reads again (soft predictions, pseudo-labels, heatmaps, revisions), DEFAULT for what leaves the system (exports).

The package's modules, each imported from here by the rest of the project:

- errors: ImageError, CheckpointError (str() names the file and the problem);
- files: atomic_path (temporary name, then rename), atomic_folder (the same for a folder), sha256_file,
  write_json, write_csv;
- gz: the gzip backend and levels, a reproducible writer, reads bounded by what a header promises;
- nifti: Volume, load_nifti (header checked before any voxel is read), write_nifti, copy_as_nifti_gz;
- grid: maps stored cropped to a box (write_nifti_box, load_on_grid), labels reordered onto a CT (reorient_onto);
- nrrd: load_nrrd, a pure-Python NRRD reader under our own limits (header caps, attached integer data only);
- labels_io: label maps from outside (LABEL_SUFFIXES, label_suffix, load_label_image): NIfTI and NRRD, never through
  SimpleITK;
- dicom: DICOM series (read_dicom_series, load_dicom_series), decoded in the sandbox;
- sandbox: native decoders in a child process under resource limits and Landlock (DecodeLimits, run_child);
  _decode_child is that child, the one place SimpleITK reads DICOM;
- sitk_images: sitk_to_volume, SimpleITK images as Volumes (the reference the readers' tests compare with);
- atlas, checkpoints: AbdomenAtlas case folders and ensemble outputs, model checkpoints.
"""

from ml_engine.io.atlas import (
    AtlasCase,
    average_mask_path,
    find_atlas_cases,
    list_soft_preds,
    load_atlas_case,
    pseudo_label_path,
    soft_pred_path,
)
from ml_engine.io.checkpoints import load_checkpoint_payload, save_checkpoint_payload
from ml_engine.io.dicom import load_dicom_series, read_dicom_series
from ml_engine.io.errors import CheckpointError, ImageError
from ml_engine.io.files import atomic_folder, atomic_path, sha256_file, write_csv, write_json
from ml_engine.io.grid import box_affine, grid_offset, load_on_grid, reorient_onto, write_nifti_box
from ml_engine.io.gz import DEFAULT, FAST, GZIP_BACKEND, check_gzip_whole
from ml_engine.io.labels_io import LABEL_SUFFIXES, label_suffix, load_label_image
from ml_engine.io.nifti import (
    AFFINE_TOLERANCE_MM,
    NIFTI_SUFFIXES,
    Volume,
    axis_codes,
    copy_as_nifti_gz,
    is_nifti,
    load_nifti,
    nifti_stem,
    same_geometry,
    spacing_from_affine,
    write_nifti,
)
from ml_engine.io.nrrd import NRRD_SUFFIXES, is_nrrd, load_nrrd
from ml_engine.io.sandbox import DecodeLimits
from ml_engine.io.sitk_images import sitk_to_volume

__all__ = [
    "AFFINE_TOLERANCE_MM",
    "DEFAULT",
    "FAST",
    "GZIP_BACKEND",
    "LABEL_SUFFIXES",
    "NIFTI_SUFFIXES",
    "NRRD_SUFFIXES",
    "AtlasCase",
    "CheckpointError",
    "DecodeLimits",
    "ImageError",
    "Volume",
    "atomic_folder",
    "atomic_path",
    "average_mask_path",
    "axis_codes",
    "box_affine",
    "check_gzip_whole",
    "copy_as_nifti_gz",
    "find_atlas_cases",
    "grid_offset",
    "is_nifti",
    "is_nrrd",
    "label_suffix",
    "list_soft_preds",
    "load_atlas_case",
    "load_checkpoint_payload",
    "load_dicom_series",
    "load_label_image",
    "load_nifti",
    "load_nrrd",
    "load_on_grid",
    "nifti_stem",
    "pseudo_label_path",
    "read_dicom_series",
    "reorient_onto",
    "same_geometry",
    "save_checkpoint_payload",
    "sha256_file",
    "sitk_to_volume",
    "soft_pred_path",
    "spacing_from_affine",
    "write_csv",
    "write_json",
    "write_nifti",
    "write_nifti_box",
]
