"""DICOM series, read with SimpleITK (GDCM) in the sandboxed decoder child (ml_engine.io.sandbox), converted to the
NIfTI convention (x, y, z; RAS+). Nothing here parses a DICOM byte: the child does, under its limits."""

from __future__ import annotations

import os
from pathlib import Path

from ml_engine.io.errors import ImageError
from ml_engine.io.nifti import Volume
from ml_engine.io.sandbox import DEFAULT_MAX_BYTES, DecodeLimits, read_volume, relative_paths, run_child

__all__ = ["DecodeLimits", "load_dicom_series", "read_dicom_series"]

MAX_UID_CHARS = 256


def read_dicom_series(folder: str | os.PathLike, *, limits: DecodeLimits | None = None,
                      scratch: str | os.PathLike | None = None, errors: list[ImageError] | None = None
                      ) -> list[tuple[str, Path]]:
    """The DICOM series under folder (recursively): (series instance UID, its folder), folders in path order.

    One decoder child scans every folder (GDCM parses each file's header). When it fails (a crash, a limit of
    `limits` hit) ImageError is raised; with `errors`, each folder is then scanned by a child of its own instead,
    and the folders that fail again are added to errors while the others' series are returned. A folder without
    DICOM gives [].
    """
    folder = Path(folder)
    try:
        return _scan(folder, recursive=True, limits=limits, scratch=scratch)
    except ImageError:
        subfolders = sorted(p for p in folder.rglob("*") if p.is_dir())
        if errors is None or not subfolders:
            raise
    series = []
    for directory in [folder, *subfolders]:
        try:
            series.extend(_scan(directory, recursive=False, limits=limits, scratch=scratch))
        except ImageError as exc:
            errors.append(exc)
    return series


def _scan(folder: Path, *, recursive: bool, limits: DecodeLimits | None, scratch: str | os.PathLike | None
          ) -> list[tuple[str, Path]]:
    with run_child("scan", folder, source=folder, what="DICOM series scan", args={"recursive": recursive},
                   limits=limits, scratch=scratch) as result:
        found = result.fields.get("series")
        if not isinstance(found, list) or not all(isinstance(item, list) and len(item) == 2 for item in found):
            raise ImageError(folder, "the decoder returned no list of series")
        folders = relative_paths([item[1] for item in found], folder, source=folder, kind="folder")
        series = []
        for (uid, _), directory in zip(found, folders, strict=True):
            if not isinstance(uid, str) or not 0 < len(uid) <= MAX_UID_CHARS or not uid.isprintable():
                raise ImageError(directory, f"a series UID that is not one printable line: {str(uid)[:80]!r}")
            series.append((uid, directory))
    return series


def load_dicom_series(folder: str | os.PathLike, series_uid: str, *, max_bytes: int | None = None,
                      limits: DecodeLimits | None = None, scratch: str | os.PathLike | None = None
                      ) -> tuple[Volume, list[Path]]:
    """Read one DICOM series as a Volume in NIfTI convention (x, y, z; RAS+ affine), and its files in slice order.

    SimpleITK (GDCM) orders the slices by position and applies rescale slope / intercept, in a decoder child under
    `limits`. Its headers decide first: a series whose first file's size times its number of files would exceed
    max_bytes (default DEFAULT_MAX_BYTES) is refused before a voxel is read, and the parent allocates nothing
    until the child's result is checked. ImageError names the folder and the problem.
    """
    folder = Path(folder)
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    with run_child("load", folder, source=folder, what=f"DICOM series {series_uid}",
                   args={"series_uid": str(series_uid)}, max_bytes=max_bytes, limits=limits,
                   scratch=scratch) as result:
        data, affine = read_volume(result, source=folder, max_bytes=max_bytes)
        files = relative_paths(result.fields.get("files"), folder, source=folder, kind="file")
    if len(files) < 2:
        raise ImageError(folder, f"DICOM series {series_uid} has a single slice: expected a 3D volume")
    if not all(path.is_file() for path in files):
        raise ImageError(folder, f"DICOM series {series_uid}: the decoder named files that are not in {folder}")
    return Volume(data=data, affine=affine), files
