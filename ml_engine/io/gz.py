"""Gzip streams: the backend (ISA-L or the standard library), a reproducible writer, and reads bounded by a header.

Gzip goes through ISA-L (python-isal's igzip: the same format, 3 to 10 times faster than zlib) when it is installed,
else through the standard library. Every function here opens streams through this module's `_gzip`, so that patching
that one name switches the backend for reads and writes alike (the tests of the fallback do).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ml_engine.io.errors import ImageError, short_error

try:  # ISA-L: an accelerated implementation of the same deflate format; the standard library otherwise
    from isal import igzip as _gzip
    from isal import isal_zlib as _zlib

    GZIP_BACKEND = "isal"
    ZLIB_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _zlib.error)
    FAST, DEFAULT = 1, 2  # ISA-L's levels are 0..3: 1 is about zlib 1's size at several times its speed
except ImportError:  # pragma: no cover - the fallback is tested by patching these names
    _gzip = gzip
    GZIP_BACKEND = "zlib"
    ZLIB_ERRORS = (zlib.error,)
    FAST, DEFAULT = 1, 6


@contextlib.contextmanager
def gzip_writer(path: Path, level: int) -> Iterator:
    """A gzip stream to path with neither a file name nor a time in its header (as nibabel's own writer): the same
    voxels give the same bytes, so the same checksum (imports recognise a file they already have by it)."""
    with open(path, "wb") as raw, _gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw,
                                                 mtime=0) as handle:
        yield handle


def read_voxel_bytes(path: Path, *, gz: bool, offset: int, nbytes: int, start: int = 0,
                     handle: BinaryIO | None = None) -> bytearray:
    """The nbytes of voxel data after offset, inflating a .gz no further; refuse a shorter or a longer file.

    start: where the stream begins in the file (0 for NIfTI; NRRD's plain-text header comes before its gzip stream).
    offset: bytes of the stream (inflated, for gz) dropped before the voxels. handle: an open binary file to read
    instead of opening path (left open; path only names the file in errors). Returns a writable buffer
    (np.frombuffer over it gives a writable array). Raises ImageError.
    """
    buffer = bytearray(nbytes)
    view = memoryview(buffer)
    try:
        with contextlib.ExitStack() as stack:
            raw = handle if handle is not None else stack.enter_context(open(path, "rb"))
            raw.seek(start)
            stream = stack.enter_context(_gzip.GzipFile(fileobj=raw, mode="rb")) if gz else raw
            _skip(stream, offset)
            got = 0
            while got < nbytes:
                n = stream.readinto(view[got:])
                if not n:
                    raise ImageError(path, f"truncated or corrupt data (the header promises {nbytes} bytes of "
                                           f"voxels, the file holds {got})")
                got += n
            if stream.read(1):  # a .gz also checks its CRC and length here, at the end of the stream
                raise ImageError(path, f"trailing data after the {nbytes} bytes of voxels its header describes")
    except ImageError:
        raise
    except (OSError, EOFError, *ZLIB_ERRORS, ValueError) as exc:
        raise ImageError(path, f"truncated or corrupt data ({short_error(exc)})") from exc
    return buffer


def read_head(path: Path, *, gz: bool, nbytes: int) -> bytes:
    """The first nbytes of a file, inflated for a .gz (fewer when it is shorter). Raises ImageError for a corrupt
    stream."""
    try:
        with (_gzip.open(path, "rb") if gz else open(path, "rb")) as handle:
            return handle.read(nbytes)
    except (OSError, EOFError, *ZLIB_ERRORS, ValueError) as exc:
        raise ImageError(path, f"truncated or corrupt {'gzip stream' if gz else 'data'} ({short_error(exc)})") from exc


def _skip(handle, n: int) -> None:
    """Read and drop n bytes (the header and extensions before the voxels)."""
    while n > 0:
        block = handle.read(min(n, 1 << 16))
        if not block:
            raise EOFError("the file ends before its voxel data")
        n -= len(block)


def gzip_head_problem(path: Path, limit: int = 1 << 20) -> str | None:
    """Why the first `limit` inflated bytes of a .gz cannot be read (a stream cut short, corrupt), else None."""
    try:
        with _gzip.open(path, "rb") as handle:
            handle.read(limit)
    except (OSError, EOFError, *ZLIB_ERRORS) as exc:
        return short_error(exc)
    return None


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
        raise ImageError(path, f"truncated or corrupt gzip stream ({short_error(exc)})") from exc
    except (OSError, EOFError, *ZLIB_ERRORS) as exc:
        raise ImageError(path, f"truncated or corrupt gzip stream ({short_error(exc)})") from exc
