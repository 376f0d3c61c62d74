"""Reading and writing CT volumes and label maps with their geometry kept exactly.

Arrays are in NIfTI voxel order (x, y, z); `affine` is the 4 x 4 voxel-to-RAS+ matrix (mm).
Every write lands whole or not at all: it goes to a temporary name beside the target, then is renamed.
DICOM series are read with SimpleITK and converted to the same convention.

Gzip goes through ISA-L (python-isal's igzip: the same format, 3 to 10 times faster than zlib) when it is installed,
else through the standard library. The compression level is chosen per use: FAST for the files the loop writes and
reads again (soft predictions, pseudo-labels, heatmaps, revisions), DEFAULT for what leaves the system (exports).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

try:  # ISA-L: an accelerated implementation of the same deflate format; the standard library otherwise
    from isal import igzip as _gzip
    from isal import isal_zlib as _zlib

    GZIP_BACKEND = "isal"
    _ZLIB_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _zlib.error)
    FAST, DEFAULT = 1, 2  # ISA-L's levels are 0..3: 1 is about zlib 1's size at several times its speed
except ImportError:  # pragma: no cover - the fallback is tested by patching these names
    _gzip = gzip
    GZIP_BACKEND = "zlib"
    _ZLIB_ERRORS = (zlib.error,)
    FAST, DEFAULT = 1, 6

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_UMASK = os.umask(0)
os.umask(_UMASK)
AFFINE_TOLERANCE_MM = 1e-3  # NIfTI stores the sform in float32: tools round-trip it to about 1e-5 mm


class ImageError(ValueError):
    """A file that cannot be used as a volume. str() names the file and the problem in one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


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


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
    try:
        image = nib.load(str(path))  # reads the header only: the voxels stay on disk behind image.dataobj
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, zlib.error, ValueError) as exc:
        if gz and (problem := _gzip_head_problem(path)):
            raise ImageError(path, f"truncated or corrupt gzip stream ({problem})") from exc
        raise ImageError(path, f"not a readable NIfTI image ({_short(exc)})") from exc
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
    raw = _read_voxel_bytes(path, gz=gz, offset=offset, nbytes=raw_bytes)
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


def _read_voxel_bytes(path: Path, *, gz: bool, offset: int, nbytes: int) -> bytearray:
    """The nbytes of voxel data after offset, inflating a .gz no further; refuse a shorter or a longer file.

    Returns a writable buffer (np.frombuffer over it gives a writable array). Raises ImageError.
    """
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    try:
        with (_gzip.open(path, "rb") if gz else open(path, "rb")) as handle:
            _skip(handle, offset)
            got = 0
            while got < nbytes:
                n = handle.readinto(view[got:])
                if not n:
                    raise ImageError(path, f"truncated or corrupt data (the header promises {nbytes} bytes of "
                                           f"voxels, the file holds {got})")
                got += n
            if handle.read(1):  # a .gz also checks its CRC and length here, at the end of the stream
                raise ImageError(path, f"trailing data after the {nbytes} bytes of voxels its header describes")
    except ImageError:
        raise
    except (OSError, EOFError, *_ZLIB_ERRORS, ValueError) as exc:
        raise ImageError(path, f"truncated or corrupt data ({_short(exc)})") from exc
    return buffer


def _gzip_head_problem(path: Path, limit: int = 1 << 20) -> str | None:
    """Why the first `limit` inflated bytes of a .gz cannot be read (a stream cut short, corrupt), else None."""
    try:
        with _gzip.open(path, "rb") as handle:
            handle.read(limit)
    except (OSError, EOFError, *_ZLIB_ERRORS) as exc:
        return _short(exc)
    return None


def _skip(handle, n: int) -> None:
    """Read and drop n bytes (the header and extensions before the voxels)."""
    while n > 0:
        block = handle.read(min(n, 1 << 16))
        if not block:
            raise EOFError("the file ends before its voxel data")
        n -= len(block)


def check_gzip_whole(path: str | os.PathLike, *, max_bytes: int | None = None) -> None:
    """Read a .gz file to its end so that a truncated or corrupt stream is caught. Raises ImageError.

    With max_bytes, inflation stops there and a larger stream is refused.
    """
    total = 0
    try:
        with _gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                total += len(block)
                if max_bytes is not None and total > max_bytes:
                    raise ImageError(path, f"inflates to more than the limit of {max_bytes} bytes")
    except gzip.BadGzipFile as exc:
        if "Not a gzipped file" in str(exc):
            raise ImageError(path, "not a gzip file, though its name ends in .gz") from exc
        raise ImageError(path, f"truncated or corrupt gzip stream ({_short(exc)})") from exc
    except (OSError, EOFError, *_ZLIB_ERRORS) as exc:
        raise ImageError(path, f"truncated or corrupt gzip stream ({_short(exc)})") from exc


def same_geometry(a: np.ndarray, b: np.ndarray, tol: float = AFFINE_TOLERANCE_MM) -> bool:
    """Whether two affines describe the same grid, to within tol mm."""
    return bool(np.allclose(np.asarray(a), np.asarray(b), atol=tol, rtol=0))


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside target, keeping its suffixes; rename it onto target on success.

    On an exception the temporary file is removed and target is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".nii.gz") else target.suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a finished file gets the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
            with _gzip_writer(tmp, level) as handle:
                image.to_file_map({"image": nib.FileHolder(fileobj=handle)})
        else:
            nib.save(image, str(tmp))
    return Path(path)


@contextlib.contextmanager
def _gzip_writer(path: Path, level: int) -> Iterator:
    """A gzip stream to path with neither a file name nor a time in its header (as nibabel's own writer): the same
    voxels give the same bytes, so the same checksum (imports recognise a file they already have by it)."""
    with open(path, "wb") as raw, _gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw,
                                                 mtime=0) as handle:
        yield handle


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
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, *_ZLIB_ERRORS, ValueError) as exc:
        raise ImageError(path, f"not a readable NIfTI image ({_short(exc)})") from exc
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


def copy_as_nifti_gz(src: str | os.PathLike, dst: str | os.PathLike, *, level: int = DEFAULT) -> Path:
    """Copy a NIfTI file to dst (.nii.gz) byte for byte, gzipping a plain .nii; atomically."""
    src = Path(src)
    with atomic_path(dst) as tmp:
        if src.name.lower().endswith(".gz"):
            shutil.copyfile(src, tmp)
        else:
            with open(src, "rb") as fin, _gzip_writer(tmp, level) as fout:
                shutil.copyfileobj(fin, fout, 1 << 22)
    return Path(dst)


def write_json(path: str | os.PathLike, payload: object) -> Path:
    """Write payload as indented UTF-8 JSON to path, atomically. NaN and infinities are refused (ValueError)."""
    import json

    text = json.dumps(payload, indent=1, allow_nan=False, ensure_ascii=False) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(path: str | os.PathLike, rows: list[list[object]]) -> Path:
    """Write rows (the first is usually a header) as a UTF-8 CSV file to path, atomically."""
    import csv

    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return Path(path)


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
        raise ImageError(folder, f"DICOM series {series_uid} cannot be read ({_short(exc)})") from exc
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


LABEL_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd")


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
            raise ImageError(path, f"not a readable NRRD file ({_short(exc)})") from exc
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
            raise ImageError(path, f"truncated or corrupt NRRD data ({_short(exc)})") from exc
        volume = sitk_to_volume(image, path, max_bytes=max_bytes)
    else:
        raise ImageError(path, "not a label file (.nii, .nii.gz, .nrrd or .seg.nrrd)")
    return volume


def axis_codes(affine: np.ndarray) -> str:
    """Where the voxel axes point, as three letters (RAS: x to the patient's right, y anterior, z superior)."""
    return "".join(nib.aff2axcodes(np.asarray(affine)))


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


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------------------------
# AbdomenAtlas case folders, model checkpoints and ensemble outputs (used by ml_engine.train / predict and the CLI)


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used. str() names the file and the problem in one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class AtlasCase:
    """One case of an AbdomenAtlas folder: the CT and the organ masks it has files for (x, y, z bool each)."""

    name: str
    folder: Path
    ct: Volume
    masks: dict[str, np.ndarray]


def find_atlas_cases(root: str | os.PathLike) -> list[Path]:
    """Case folders (holding ct.nii.gz) directly under root, sorted; [root] when root itself is a case."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(root, "no such folder")
    if (root / "ct.nii.gz").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "ct.nii.gz").is_file())


def load_atlas_case(folder: str | os.PathLike, organs: tuple[str, ...] | list[str]) -> AtlasCase:
    """Read folder/ct.nii.gz and folder/segmentations/<organ>.nii.gz for the organs that have a file.

    A mask must share the CT's shape and affine; ImageError naming the file otherwise. Files of organs outside
    organs are ignored.
    """
    folder = Path(folder)
    ct = load_nifti(folder / "ct.nii.gz")
    masks: dict[str, np.ndarray] = {}
    for organ in organs:
        path = folder / "segmentations" / f"{organ}.nii.gz"
        if not path.is_file():
            continue
        mask = load_nifti(path, allow_float=True)
        if mask.shape != ct.shape:
            raise ImageError(path, f"shape {mask.shape} differs from the CT's {ct.shape}")
        if not same_geometry(mask.affine, ct.affine):
            raise ImageError(path, "affine differs from the CT's")
        masks[organ] = np.asarray(mask.data) > 0.5
    return AtlasCase(name=folder.name, folder=folder, ct=ct, masks=masks)


def write_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """torch.save payload (tensors, numbers, strings, lists, dicts only) to path, atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint with torch.load(weights_only=True): arbitrary pickled objects are refused.

    Raises CheckpointError naming the file for a missing file, a corrupt file, or one that carries other objects.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        reason = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), "")
        raise CheckpointError(path, "refused: carries objects other than weights and plain metadata"
                                    + (f" ({reason[:160]})" if reason else "")) from exc
    except (RuntimeError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise CheckpointError(path, f"not a readable checkpoint ({_short(exc)})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"expected a dict of weights and metadata, found {type(payload).__name__}")
    return payload


def soft_pred_path(case_dir: str | os.PathLike, member: str, organ: str) -> Path:
    """CASE/backbones/<member>/soft_pred/<organ>.nii.gz (uint8, p x 255)."""
    return Path(case_dir) / "backbones" / member / "soft_pred" / f"{organ}.nii.gz"


def average_mask_path(case_dir: str | os.PathLike, organ: str) -> Path:
    """CASE/average/segmentations/<organ>.nii.gz (uint8 0/1, ensemble mean probability > 0.5)."""
    return Path(case_dir) / "average" / "segmentations" / f"{organ}.nii.gz"


def pseudo_label_path(case_dir: str | os.PathLike) -> Path:
    """CASE/average/pseudo_label.nii.gz (uint8 multi-label map, values 1..n in the model's organ order)."""
    return Path(case_dir) / "average" / "pseudo_label.nii.gz"


def list_soft_preds(case_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """{member: {organ: path}} of the soft predictions under CASE/backbones/."""
    found: dict[str, dict[str, Path]] = {}
    base = Path(case_dir) / "backbones"
    if not base.is_dir():
        return found
    for member in sorted(p for p in base.iterdir() if (p / "soft_pred").is_dir()):
        files = {nifti_stem(f): f for f in sorted((member / "soft_pred").glob("*.nii.gz"))}
        if files:
            found[member.name] = files
    return found
