"""NIfTI volumes: read with every check decided from the header before a voxel is read; written atomically.

Arrays are in NIfTI voxel order (x, y, z); `affine` is the 4 x 4 voxel-to-RAS+ matrix (mm).
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from ml_engine.io.errors import ImageError, short_error
from ml_engine.io.files import atomic_path
from ml_engine.io.gz import DEFAULT, FAST, gzip_head_problem, gzip_writer, read_head, read_voxel_bytes

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# Header extensions (the bytes between the header and vox_offset) that nibabel reads, and keeps, before any check of
# ours: a few kilobytes in practice (dcm2niix's, AFNI's); a .gz of a megabyte could otherwise inflate gigabytes there.
MAX_EXTENSION_BYTES = 16 * 1024**2
AFFINE_TOLERANCE_MM = 1e-3  # NIfTI stores the sform in float32: tools round-trip it to about 1e-5 mm


@dataclass
class Volume:
    """A 3D volume. data: (x, y, z) array as stored (dtype kept); affine: (4, 4) float64 voxel-to-RAS+."""

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return spacing_from_affine(self.affine)


def spacing_from_affine(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel sizes in mm: the norms of the affine's first three columns."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))  # type: ignore[return-value]


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | os.PathLike) -> str:
    """File name without .nii / .nii.gz."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_nifti(path: str | os.PathLike, *, max_bytes: int | None = None, allow_float: bool = True,
               expect_shape: tuple[int, ...] | list[int] | None = None, any_axis_order: bool = False) -> Volume:
    """Read a NIfTI file and check that it is a usable 3D volume, deciding from its header before any voxel is read.

    The header is read first; the file is refused, without reading a voxel, when it is not 3D (trailing singleton
    dimensions are dropped), when its shape differs from expect_shape, when its voxels would take more than
    max_bytes once read (scaling to floats counted), or, with allow_float=False, when its type is not an integer
    type or its scale factors would turn the voxels into floats. The data are then read once, inflating a .gz
    no further than the header allows: a file shorter than that is truncated, one longer (trailing data, such as
    a long compressed tail of zeros) is refused after one byte of the excess. NaN or infinite voxels are refused.
    any_axis_order: expect_shape in any order of the axes (a label in another voxel order; see reorient_onto).
    ImageError names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(path, "no such file")
    gz = path.name.lower().endswith(".gz")
    if gz:
        with open(path, "rb") as handle:
            if handle.read(2) != b"\x1f\x8b":
                raise ImageError(path, "not a gzip file, though its name ends in .gz")
    _check_extensions(path, gz)
    try:
        image = nib.load(str(path))  # reads the header only: the voxels stay on disk behind image.dataobj
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError, zlib.error,
            ValueError, ArithmeticError) as exc:  # a header nibabel cannot fix (data code 0), vox_offset inf...
        if gz and (problem := gzip_head_problem(path)):
            raise ImageError(path, f"truncated or corrupt gzip stream ({problem})") from exc
        raise ImageError(path, f"not a readable NIfTI image ({short_error(exc)})") from exc
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageError(path, f"not a NIfTI image (read as {type(image).__name__})")
    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise ImageError(path, f"expected a 3D volume, found shape {tuple(image.shape)}")
    if min(shape) < 2:
        raise ImageError(path, f"expected a 3D volume, found a single slice of shape {tuple(shape)}")
    if expect_shape is not None:
        expected = tuple(int(s) for s in expect_shape)
        if (sorted(shape) != sorted(expected)) if any_axis_order else (shape != expected):
            raise ImageError(path, f"shape {shape} differs from the CT's {expected}")
    dtype = image.header.get_data_dtype()
    if dtype.kind not in "iubf" or dtype.itemsize > 8:
        raise ImageError(path, f"unsupported voxel type {dtype}")
    # nibabel moves the scale factors from the image's header into its data proxy ((1, 0) when there are none)
    slope, inter = float(image.dataobj.slope), float(image.dataobj.inter)
    scaled = (slope, inter) != (1.0, 0.0)
    if not allow_float:
        if dtype.kind == "f":
            raise ImageError(path, f"expected integer voxels, found {dtype}")
        if scaled:
            raise ImageError(path, f"expected integer voxels, found scale factors (slope {slope}, intercept "
                                   f"{inter}) that turn them into floats")
    count = int(np.prod(shape, dtype=object))
    raw_bytes = count * dtype.itemsize
    nbytes = count * max(dtype.itemsize, 8 if scaled else 0)
    if max_bytes is not None and nbytes > max_bytes:
        raise ImageError(path, f"volume of {nbytes} bytes exceeds the limit of {max_bytes} bytes")
    offset = int(image.dataobj.offset)
    raw = read_voxel_bytes(path, gz=gz, offset=offset, nbytes=raw_bytes)
    data = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order="F")
    if not dtype.isnative:
        data = data.astype(dtype.newbyteorder("="))
    if scaled:
        data = nib.volumeutils.apply_read_scaling(data, np.asanyarray(slope), np.asanyarray(inter))
    if data.dtype.kind == "f":
        if not allow_float:
            raise ImageError(path, f"expected integer voxels, found {data.dtype}")
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise ImageError(path, f"{bad} voxels are NaN or infinite")
    affine = np.asarray(image.affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise ImageError(path, "the affine is singular or not finite")
    return Volume(data=data, affine=affine, header=image.header)


def _check_extensions(path: Path, gz: bool) -> None:
    """Refuse a header whose vox_offset leaves more than MAX_EXTENSION_BYTES of extensions, before nibabel reads them
    (it reads each extension whole, and keeps them all). A file that is no NIfTI is left to nibabel to name."""
    head = read_head(path, gz=gz, nbytes=544)
    offset = None
    for order in "<>":
        if len(head) >= 176 and struct.unpack(f"{order}i", head[:4])[0] == 540:  # NIfTI-2: int64 vox_offset
            offset, header_end = struct.unpack(f"{order}q", head[168:176])[0], 544
        elif len(head) >= 112 and struct.unpack(f"{order}i", head[:4])[0] == 348:  # NIfTI-1: float32 vox_offset
            offset, header_end = struct.unpack(f"{order}f", head[108:112])[0], 352
        if offset is not None:
            break
    if offset is None:
        return
    if not np.isfinite(offset) or offset - header_end > MAX_EXTENSION_BYTES:
        raise ImageError(path, f"header extensions up to vox_offset {offset:.0f} exceed the limit of "
                               f"{MAX_EXTENSION_BYTES} bytes")


def same_geometry(a: np.ndarray, b: np.ndarray, tol: float = AFFINE_TOLERANCE_MM) -> bool:
    """Whether two affines describe the same grid, to within tol mm."""
    return bool(np.allclose(np.asarray(a), np.asarray(b), atol=tol, rtol=0))


def axis_codes(affine: np.ndarray) -> str:
    """Where the voxel axes point, as three letters (RAS: x to the patient's right, y anterior, z superior)."""
    return "".join(nib.aff2axcodes(np.asarray(affine)))


def write_nifti(path: str | os.PathLike, data: np.ndarray, affine: np.ndarray,
                header: nib.Nifti1Header | None = None, dtype: np.dtype | type | None = None, *,
                level: int = FAST) -> Path:
    """Write data (x, y, z) with affine (4, 4) to path (.nii or .nii.gz), atomically.

    With header, its qform/sform codes and units are kept; scaling is reset so values are stored as given.
    level: the gzip level, FAST (default: files the system reads again) or DEFAULT (exports); see the module doc.
    """
    data = np.asarray(data)
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    new_header = header.copy() if header is not None else None
    image = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64), header=new_header)
    image.set_data_dtype(data.dtype)
    image.header.set_slope_inter(1.0, 0.0)
    if header is not None:
        image.set_qform(np.asarray(affine), code=int(header["qform_code"]) or 1)
        image.set_sform(np.asarray(affine), code=int(header["sform_code"]) or 1)
    with atomic_path(path) as tmp:
        if tmp.name.lower().endswith(".gz"):
            with gzip_writer(tmp, level) as handle:
                image.to_file_map({"image": nib.FileHolder(fileobj=handle)})
        else:
            nib.save(image, str(tmp))
    return Path(path)


def copy_as_nifti_gz(src: str | os.PathLike, dst: str | os.PathLike, *, level: int = DEFAULT) -> Path:
    """Copy a NIfTI file to dst (.nii.gz) byte for byte, gzipping a plain .nii; atomically."""
    src = Path(src)
    with atomic_path(dst) as tmp:
        if src.name.lower().endswith(".gz"):
            shutil.copyfile(src, tmp)
        else:
            with open(src, "rb") as fin, gzip_writer(tmp, level) as fout:
                shutil.copyfileobj(fin, fout, 1 << 22)
    return Path(dst)
