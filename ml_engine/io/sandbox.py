"""Native decoders in a child process that may die: the parent side of ml_engine.io._decode_child.

No untrusted byte reaches ITK / GDCM inside the web or a worker process. `run_child` starts a fresh interpreter
(`python -I -B _decode_child.py REQUEST`: not a fork of this process, so none of its memory, sockets, open files
or settings go with it) with stdin from /dev/null, every other descriptor closed, a minimal environment (PATH,
HOME and TMPDIR in its private scratch folder, LANG, single-threaded libraries: no DJANGO_*, DATABASE_URL,
SECRET_KEY, AWS_* or any other variable of the parent), its working folder that scratch folder, in a session of
its own. The child limits itself before it loads a native library (see _decode_child: address space, CPU seconds,
open files, output size, no core, no new processes) and confines itself with Landlock to reading its input folder
and writing its output folder. The parent kills the child's process group after `seconds` of wall-clock time.

Whatever goes wrong in the child (a crash, a limit hit, a timeout, an exception) becomes an ImageError naming the
source and saying what happened; the parent never dies with it. The parent reads the child's output back under its
own limits: result.json of at most MAX_RESULT_BYTES, voxels only as raw bytes of an allowed numeric type whose
shape fits max_bytes, a byte count that matches exactly, a finite affine. Nothing is unpickled.

Memory: measured on the build machine (Python 3.11, NumPy 2.4, SimpleITK 2.5), the child's address space peaks at
375 to 410 MiB before it reads anything (interpreter, NumPy, SimpleITK) and at 558 MiB for a 512 x 512 x 300 int16
series (150 MiB): GDCM holds the series' files while it sorts them, then ITK the volume (the fixed mmap threshold
keeps the two from adding up; 730 MiB without it). The default limit, DEFAULT_BASE_BYTES + 2 x max_bytes, leaves
room for compressed transfer syntaxes' buffers (docs/benchmarks.md, "DICOM decode in a sandbox").
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_engine.io._decode_child import EXIT_REFUSED, landlock_abi
from ml_engine.io.errors import ImageError

log = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("_decode_child.py")
__all__ = ["ChildResult", "DecodeLimits", "landlock_abi", "read_volume", "relative_paths", "run_child"]
DEFAULT_MAX_BYTES = 4 * 1024**3  # one volume's voxels, when the caller gives no bound (ATLAS_MAX_VOLUME_BYTES's)
DEFAULT_BASE_BYTES = 1024**3  # the child's address space besides the voxels: about 400 MiB measured, plus room
DEFAULT_SECONDS = 300.0
MAX_RESULT_BYTES = 16 * 1024**2  # result.json: a series' file names (a few thousand) fit many times over
RESULT_SLACK_BYTES = 64 * 1024**2  # the child's file size limit: the voxels plus this
ALLOWED_DTYPES = frozenset(np.dtype(t).str for t in ("<u1", "<i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8",
                                                       "<f4", "<f8"))
_warned_unconfined = False


@dataclass(frozen=True)
class DecodeLimits:
    """What one decode may use. memory_bytes: the child's address space (RLIMIT_AS), None for
    DEFAULT_BASE_BYTES + 2 x max_bytes. seconds: wall-clock time (the parent kills the child) and CPU time (the
    kernel stops it: RLIMIT_CPU, cpu_seconds if given). require_confinement: refuse to decode on a kernel without
    Landlock instead of going on unconfined."""

    memory_bytes: int | None = None
    seconds: float = DEFAULT_SECONDS
    require_confinement: bool = False
    cpu_seconds: float | None = None

    def memory_for(self, max_bytes: int) -> int:
        return int(self.memory_bytes) if self.memory_bytes else DEFAULT_BASE_BYTES + 2 * int(max_bytes)


@dataclass
class ChildResult:
    """What the child reported (its result.json, ok) and where its files are until run_child's block ends."""

    fields: dict
    out_dir: Path
    confined: bool


def child_environment(scratch: Path) -> dict[str, str]:
    """The child's whole environment: nothing of the parent's but PATH and LANG."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch / "out"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        # one thread each: CPU time is then wall time, and no thread stacks to reserve
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
        # a fixed mmap threshold: buffers above 128 KiB (GDCM's whole files while it sorts a series) go back to the
        # kernel when freed instead of staying in the heap, so the peak is the files or the volume, not both
        "MALLOC_MMAP_THRESHOLD_": str(128 * 1024),
    }


@contextlib.contextmanager
def run_child(op: str, folder: str | os.PathLike, *, source: str | os.PathLike, what: str, args: dict | None = None,
              max_bytes: int = DEFAULT_MAX_BYTES, limits: DecodeLimits | None = None,
              scratch: str | os.PathLike | None = None, test_ops: bool = False, test_request: dict | None = None
              ) -> Iterator[ChildResult]:
    """Run operation op of the decoder child on folder; yield its result while its output folder exists.

    source: the file or folder that ImageError names; what: what was being read ("DICOM series 1.2.3"), said in
    the error. max_bytes bounds the voxels the child may produce (its output file limit is max_bytes plus
    RESULT_SLACK_BYTES). scratch: where the child's private folder is made (default: tempfile's folder).
    test_ops: allow the test-only operations (tests pass it; nothing else does); then test_request may add fields to
    the request (`{"test_without_landlock": True}`: the child acts as on a kernel without Landlock).
    Raises ImageError for a refusal, a crash, a limit hit, a timeout or an unusable result.
    """
    limits = limits or DecodeLimits()
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise ImageError(source, f"{what}: not a folder")
    memory = limits.memory_for(max_bytes)
    seconds = float(limits.seconds)
    cpu_seconds = math.ceil(limits.cpu_seconds or seconds)
    work = Path(tempfile.mkdtemp(prefix="decode-", dir=scratch))  # 0700, this process's own
    try:
        out = work / "out"
        out.mkdir(mode=0o700)
        request = {
            "op": op, "input": str(folder), "output": str(out), "args": {**(args or {}), "max_bytes": int(max_bytes)},
            "limits": {"memory_bytes": memory, "cpu_seconds": cpu_seconds,
                       "output_bytes": int(max_bytes) + RESULT_SLACK_BYTES},
            "require_confinement": bool(limits.require_confinement), "test_ops": bool(test_ops),
        }
        if test_ops:
            request.update(test_request or {})
        log_path = work / "child.log"
        with open(os.devnull, "rb") as devnull, open(log_path, "wb") as child_log:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-B", str(CHILD), json.dumps(request)], stdin=devnull, stdout=child_log,
                    stderr=child_log, cwd=work, env=child_environment(work), close_fds=True, start_new_session=True)
            except OSError as exc:
                raise ImageError(source, f"{what}: the decoder could not start ({exc})") from exc
            try:
                timed_out = not _exited(proc, seconds)
            finally:
                _kill_group(proc)
        if timed_out:
            raise ImageError(source, f"{what}: the decoder took longer than {seconds:g} s and was stopped")
        fields = _outcome(proc.returncode, out, log_path, source=source, what=what, memory=memory,
                          cpu_seconds=cpu_seconds, output_bytes=request["limits"]["output_bytes"])
        confined = fields.get("confined") is True
        _warn_unconfined(confined)
        yield ChildResult(fields=fields, out_dir=out, confined=confined)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _warn_unconfined(confined: bool) -> None:
    global _warned_unconfined
    if not confined and not _warned_unconfined:
        _warned_unconfined = True
        log.warning("DICOM decoders run without Landlock confinement: this kernel has none (resource limits only)")


def _exited(proc: subprocess.Popen, seconds: float) -> bool:
    """Whether the child ended within seconds, without reaping it: until it is reaped its process ID, and so its
    process group's, cannot be given to another process, so that _kill_group signals nothing else."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux >= 5.3: reaped at once, the group killed just after
        try:
            proc.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(seconds * 1000))))
    finally:
        os.close(pidfd)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL to the child's whole process group (its session: anything it may have started), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _outcome(returncode: int, out: Path, log_path: Path, *, source, what: str, memory: int, cpu_seconds: int,
             output_bytes: int) -> dict:
    """The child's result fields, or the ImageError that says why there are none."""
    mib = memory // 1024**2
    if returncode < 0:
        signum = -returncode
        name = _signal_name(signum)
        if signum == signal.SIGXCPU:
            problem = f"the decoder used up its {cpu_seconds} s of CPU time and was stopped ({name})"
        elif signum == signal.SIGXFSZ:
            problem = f"the decoder wrote more than its {output_bytes // 1024**2} MiB of output and was stopped"
        elif signum == signal.SIGKILL:
            problem = (f"the decoder was killed ({name}: out of its {cpu_seconds} s of CPU time, or the machine's "
                       f"memory)")
        else:
            problem = f"the decoder crashed ({name}, signal {signum})"
        raise ImageError(source, f"{what}: {problem}")
    if returncode not in (0, EXIT_REFUSED):
        tail = _tail(log_path)
        if any(sign in tail for sign in ("MemoryError", "bad_alloc", "failed to map segment", "Cannot allocate")):
            raise ImageError(source, f"{what}: the decoder ran out of its {mib} MiB of memory (it needs about "
                                     f"400 MiB before it reads anything)")
        raise ImageError(source, f"{what}: the decoder failed (exit status {returncode}"
                                 f"{': ' + tail.splitlines()[-1][:300] if tail.strip() else ''})")
    fields = _read_result(out / "result.json", source=source, what=what)
    if fields.get("ok") is True:
        return fields
    message = _one_line(fields.get("message"))
    kind = fields.get("kind")
    if kind == "memory":
        raise ImageError(source, f"{what}: the decoder ran out of its {mib} MiB of memory ({message})")
    if kind == "image":
        raise ImageError(source, message)
    if kind == "confinement":
        raise ImageError(source, f"{what}: the decoder cannot be confined ({message})")
    raise ImageError(source, f"{what}: the decoder failed ({message})")


def _read_result(path: Path, *, source, what: str) -> dict:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(source, f"{what}: the decoder ended without a result") from None
    if size > MAX_RESULT_BYTES:
        raise ImageError(source, f"{what}: the decoder's result is {size} bytes, more than {MAX_RESULT_BYTES}")
    try:
        fields = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(source, f"{what}: the decoder's result is not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise ImageError(source, f"{what}: the decoder's result is not a JSON object")
    return fields


def _one_line(value) -> str:
    text = " ".join(str(value).split()) if value is not None else "no message"
    return text[:500]


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _tail(path: Path, limit: int = 4096) -> str:
    with contextlib.suppress(OSError), open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", "replace")
    return ""


def read_volume(result: ChildResult, *, source, max_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """The voxels (x, y, z; Fortran order) and the 4 x 4 affine the child wrote, checked before any voxel is read: a
    dtype of ALLOWED_DTYPES, three sizes >= 2 whose bytes fit max_bytes, volume.raw exactly that long, a finite
    affine whose last row is 0 0 0 1 and whose axes are not degenerate. ImageError otherwise."""
    fields = result.fields
    dtype_str, shape = fields.get("dtype"), fields.get("shape")
    if not isinstance(dtype_str, str) or dtype_str not in ALLOWED_DTYPES:
        raise ImageError(source, f"the decoder returned voxels of type {str(dtype_str)[:40]!r}, not a plain number")
    dtype = np.dtype(dtype_str)
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 2 for s in shape)):
        raise ImageError(source, f"the decoder returned the shape {str(shape)[:80]}, not three sizes >= 2")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise ImageError(source, f"volume of size {tuple(shape)} exceeds the limit of {max_bytes} bytes")
    affine = _affine(fields.get("affine"), source)
    raw = result.out_dir / "volume.raw"
    try:
        size = raw.stat().st_size
    except FileNotFoundError:
        raise ImageError(source, "the decoder returned no voxels") from None
    if size != nbytes:
        raise ImageError(source, f"the decoder returned {size} bytes of voxels for {tuple(shape)} {dtype.name}, "
                                 f"not {nbytes}")
    data = np.empty(shape, dtype=dtype, order="F")  # as the child wrote it (and as load_nifti returns voxels)
    with open(raw, "rb") as handle:
        if handle.readinto(memoryview(data.T).cast("B")) != nbytes:
            raise ImageError(source, "the decoder's voxels changed while they were read")
    if dtype.kind == "f" and not np.all(np.isfinite(data)):
        raise ImageError(source, "NaN or infinite voxels")
    return data, affine


def _affine(value, source) -> np.ndarray:
    try:
        affine = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        affine = None
    if (affine is None or affine.shape != (4, 4) or not np.all(np.isfinite(affine))
            or not np.array_equal(affine[3], [0.0, 0.0, 0.0, 1.0])
            or abs(np.linalg.det(affine[:3, :3])) < 1e-12):
        raise ImageError(source, "the decoder returned no usable geometry (a finite 4 x 4 affine with non-degenerate "
                                 "axes)")
    return affine


def relative_paths(values, folder: Path, *, source, kind: str, limit: int = 1_000_000) -> list[Path]:
    """Paths the child named relative to folder, each checked to lie inside it (resolved); ImageError otherwise."""
    root = folder.resolve()
    if not isinstance(values, list) or len(values) > limit:
        raise ImageError(source, f"the decoder returned no list of {kind}")
    paths = []
    for value in values:
        if not isinstance(value, str) or not value or "\x00" in value or os.path.isabs(value):
            raise ImageError(source, f"the decoder returned {kind} {str(value)[:80]!r}, not a path inside {folder}")
        path = folder / value if value != "." else folder
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise ImageError(source, f"the decoder returned {kind} {value[:80]!r}, outside {folder}")
        paths.append(path)
    return paths
