"""The sandboxed DICOM decoder: a child process that reads DICOM with SimpleITK (ITK / GDCM, native code) and writes
what it found into its output folder. Started only by ml_engine.io.sandbox, never imported by the web or a worker.

It runs as `python -I -B <this file> <request JSON>` (isolated mode: no PYTHON* variables, no user site, neither
the project nor the working folder on sys.path; it imports only the standard library, NumPy and SimpleITK). First
thing, before any native library is loaded, it sets its own resource limits: address space (RLIMIT_AS), CPU seconds
(RLIMIT_CPU), open files (RLIMIT_NOFILE), the size of any file it writes (RLIMIT_FSIZE), no core dump (RLIMIT_CORE).
Then it imports NumPy and SimpleITK, forbids itself new processes and threads (RLIMIT_NPROC 0; root ignores it),
sets no_new_privs and confines itself with Landlock: read beneath its input folder, read and write beneath its
output folder, nothing else on any file system (no exec either); no TCP bind / connect (Landlock ABI >= 4); no
abstract unix sockets or signals outside itself (ABI >= 6). A kernel without Landlock leaves it unconfined, which
the result says (`confined: false`); with `require_confinement` that is an error instead.

Operations: `scan` (the series under a folder, recursively) and `load` (one series as voxels + geometry). Test-only
operations (a crash, an allocation bomb, an endless wait, ...) run only when the request allows them, which only a
test's explicit call does (ml_engine.io.sandbox.run_child's `test_ops`).

Output, each file written whole (temporary name, then rename): `result.json` ({"ok": true, ...} or {"ok": false,
"kind": "image" | "memory" | "confinement" | "internal", "message": ...}) and, for `load`, `volume.raw`: the voxels
(x, y, z) in Fortran order (x fastest, as NIfTI stores them; ITK's own buffer, no copy) as little-endian bytes.
Exit status 0 with a result, 3 with a refusal.
"""

import json
import os
import resource
import sys

EXIT_REFUSED = 3
NOFILE = 64

# Landlock (include/uapi/linux/landlock.h). The syscall numbers are the same on x86_64 and aarch64 (asm-generic).
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
LANDLOCK_MACHINES = ("x86_64", "amd64", "aarch64", "arm64")
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_REMOVE_FILE, FS_MAKE_REG = 1 << 5, 1 << 8
FS_ABI1_ALL = (1 << 13) - 1  # execute ... make_sym
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6
PR_SET_NO_NEW_PRIVS = 38


class Refused(Exception):
    """The input cannot be used (reported as kind "image"), or the child cannot run as asked (its own kind)."""

    def __init__(self, message: str, kind: str = "image"):
        super().__init__(message)
        self.kind = kind


def set_limits(limits: dict) -> None:
    """Resource limits on this process, set before any native library is loaded."""
    cpu = max(1, int(limits["cpu_seconds"]))
    for name, soft, hard in (
        ("RLIMIT_CORE", 0, 0),
        ("RLIMIT_NOFILE", NOFILE, NOFILE),
        ("RLIMIT_FSIZE", int(limits["output_bytes"]), int(limits["output_bytes"])),
        ("RLIMIT_CPU", cpu, cpu + 2),  # SIGXCPU at the soft limit, SIGKILL at the hard one
        ("RLIMIT_AS", int(limits["memory_bytes"]), int(limits["memory_bytes"])),
    ):
        which = getattr(resource, name)
        ceiling = resource.getrlimit(which)[1]  # never above what this process was given (raising it is refused)
        if ceiling != resource.RLIM_INFINITY:
            soft, hard = min(soft, ceiling), min(hard, ceiling)
        resource.setrlimit(which, (soft, hard))


def forbid_new_processes() -> None:
    """No fork, no new thread from here on (RLIMIT_NPROC counts the user's processes; 0 refuses every new one).
    The kernel does not apply it to root (CAP_SYS_ADMIN / CAP_SYS_RESOURCE)."""
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (ENOSYS, EOPNOTSUPP) or on another architecture."""
    import platform

    if sys.platform != "linux" or platform.machine().lower() not in LANDLOCK_MACHINES:
        return 0
    ctypes, libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0),
                       ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def confine(read_dir: str, write_dir: str) -> int:
    """no_new_privs, then Landlock: read beneath read_dir, read + write beneath write_dir, nothing else. Returns the
    ABI version used, 0 when the kernel has no Landlock (then nothing is restricted)."""
    abi = landlock_abi()
    if abi < 1:
        return 0
    ctypes, libc = _libc()
    libc.syscall.restype = ctypes.c_long

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]

    class PathBeneathAttr(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    def check(result: int, what: str) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise Refused(f"{what} failed: {os.strerror(err)} (errno {err})", kind="confinement")
        return result

    handled = FS_ABI1_ALL | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    handled |= FS_IOCTL_DEV if abi >= 5 else 0
    attr = RulesetAttr(handled_access_fs=handled)
    size = 8  # the struct as the kernel's ABI knows it: fields it does not know must not be passed
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP  # handled, never allowed: no TCP at all
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    read = FS_READ_FILE | FS_READ_DIR
    write = read | FS_WRITE_FILE | FS_MAKE_REG | FS_REMOVE_FILE | (FS_TRUNCATE if abi >= 3 else 0)
    check(libc.prctl(ctypes.c_int(PR_SET_NO_NEW_PRIVS), ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0),
                     ctypes.c_ulong(0)), "prctl(PR_SET_NO_NEW_PRIVS)")
    ruleset = check(libc.syscall(ctypes.c_long(SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                                 ctypes.c_size_t(size), ctypes.c_uint32(0)), "landlock_create_ruleset")
    try:
        for path, access in ((read_dir, read), (write_dir, write)):
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
            try:
                rule = PathBeneathAttr(allowed_access=access, parent_fd=fd)
                check(libc.syscall(ctypes.c_long(SYS_LANDLOCK_ADD_RULE), ctypes.c_int(ruleset),
                                   ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0)),
                      f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        check(libc.syscall(ctypes.c_long(SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
              "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def write_whole(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def relative(path: str, folder: str) -> str:
    return os.path.relpath(path, folder)


# The operations. Each takes (modules, request) and returns the result's fields; Refused for a bad input.

def op_scan(mods: dict, request: dict) -> dict:
    """The series in the input folder, and in its subfolders unless args.recursive is false: [[series UID, folder
    relative to the input ("." for itself)]], folders in path order as pathlib sorts them."""
    from pathlib import Path

    sitk = mods["sitk"]
    root = request["input"]
    dirs = [Path(root)]
    if request["args"].get("recursive", True):
        for current, subdirs, _files in os.walk(root):  # symbolic links to folders are listed, not followed
            dirs.extend(Path(current) / name for name in subdirs)
    found = []
    for directory in [dirs[0], *sorted(dirs[1:])]:
        for uid in sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(directory)) or ():
            found.append([uid, relative(str(directory), root)])
    return {"series": found}


PIXEL_BYTES = {"8-bit": 1, "16-bit": 2, "32-bit": 4, "64-bit": 8}


def pixel_bytes(sitk, pixel_id: int) -> int:
    """Bytes per component of a SimpleITK pixel type, from its name ("16-bit signed integer", "64-bit float")."""
    name = sitk.GetPixelIDValueAsString(pixel_id)
    return next((n for key, n in PIXEL_BYTES.items() if key in name), 8)


def op_load(mods: dict, request: dict) -> dict:
    """One series: volume.raw ((x, y, z) in Fortran order), its shape (x, y, z), dtype, RAS+ affine and files (slice
    order, relative to the input)."""
    np, sitk = mods["np"], mods["sitk"]
    folder, out = request["input"], request["output"]
    uid, max_bytes = request["args"]["series_uid"], int(request["args"]["max_bytes"])
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid))
    if not files:
        raise Refused(f"DICOM series {uid} has no readable files")
    if len(files) < 2:
        raise Refused(f"DICOM series {uid} has a single slice: expected a 3D volume")
    # The headers decide first: what the first file promises, times the number of files, within max_bytes.
    header = sitk.ImageFileReader()
    header.SetFileName(files[0])
    try:
        header.ReadImageInformation()
    except RuntimeError as exc:
        raise Refused(f"DICOM series {uid} cannot be read ({short(exc)})") from None
    size = [int(s) for s in header.GetSize()]
    promised = (int(np.prod(size, dtype=object)) * len(files) * header.GetNumberOfComponents()
                * pixel_bytes(sitk, header.GetPixelID()))
    if promised > max_bytes:
        raise Refused(f"DICOM series {uid}: its headers promise {' x '.join(map(str, size))} voxels in each of "
                      f"{len(files)} files ({promised} bytes), beyond the limit of {max_bytes} bytes")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        if is_memory_error(exc):
            raise Refused(short(exc), kind="memory") from None
        raise Refused(f"DICOM series {uid} cannot be read ({short(exc)})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise Refused(f"expected a scalar 3D volume, found {image.GetDimension()}D "
                      f"with {image.GetNumberOfComponentsPerPixel()} components")
    size = image.GetSize()
    if min(size) < 2:
        raise Refused(f"expected a 3D volume, found size {size}")
    if int(np.prod(size, dtype=object)) * image.GetSizeOfPixelComponent() > max_bytes:
        raise Refused(f"volume of size {size} exceeds the limit of {max_bytes} bytes")
    voxels = sitk.GetArrayViewFromImage(image)  # (z, y, x) C order: (x, y, z) in Fortran order, as NIfTI stores it
    dtype = voxels.dtype.newbyteorder("<")
    if voxels.dtype != dtype:
        voxels = voxels.astype(dtype)
    nz, ny, nx = voxels.shape
    raw = os.path.join(out, "volume.raw")
    with open(f"{raw}.tmp", "wb") as handle:
        handle.write(memoryview(voxels).cast("B"))
    os.replace(f"{raw}.tmp", raw)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])  # ITK's physical space is LPS
    affine = np.eye(4)
    affine[:3, :3] = lps_to_ras @ direction @ np.diag(spacing)
    affine[:3, 3] = lps_to_ras @ origin
    return {"shape": [nx, ny, nz], "dtype": dtype.str, "affine": affine.tolist(),
            "files": [relative(f, folder) for f in files]}


# Test-only operations: reachable only through a request with "test_ops": true (a test's explicit call).

def op_test_segfault(mods: dict, request: dict) -> dict:
    import ctypes

    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return {}


def op_test_allocate(mods: dict, request: dict) -> dict:
    block = bytearray(int(request["args"]["bytes"]))  # MemoryError beyond RLIMIT_AS
    return {"allocated": len(block)}


def op_test_sleep(mods: dict, request: dict) -> dict:
    import time

    while True:
        time.sleep(3600)


def op_test_spin(mods: dict, request: dict) -> dict:
    while True:
        pass


def op_test_environ(mods: dict, request: dict) -> dict:
    return {"environ": dict(os.environ), "cwd": os.getcwd()}


def op_test_open(mods: dict, request: dict) -> dict:
    """Try to open each path (read, or write with "w"); report 0 or the errno per path."""
    outcome = {}
    for path, mode in request["args"]["paths"]:
        try:
            with open(path, "wb" if mode == "w" else "rb"):
                pass
            outcome[path] = 0
        except OSError as exc:
            outcome[path] = exc.errno
    return {"errno": outcome}


def op_test_connect(mods: dict, request: dict) -> dict:
    import socket

    try:
        socket.create_connection(("127.0.0.1", int(request["args"]["port"])), timeout=5).close()
        return {"errno": 0}
    except OSError as exc:
        return {"errno": exc.errno}


def op_test_fork(mods: dict, request: dict) -> dict:
    """Leave a process behind (a decoder that forks): its process group dies with the decoder. Root only: others
    cannot fork here (RLIMIT_NPROC 0)."""
    import time

    try:
        pid = os.fork()
    except OSError as exc:
        return {"pid": 0, "errno": exc.errno}
    if pid == 0:
        while True:
            time.sleep(3600)
    return {"pid": pid, "errno": 0}


OPS = {"scan": op_scan, "load": op_load}
TEST_OPS = {
    "test-segfault": op_test_segfault,
    "test-allocate": op_test_allocate,
    "test-sleep": op_test_sleep,
    "test-spin": op_test_spin,
    "test-environ": op_test_environ,
    "test-open": op_test_open,
    "test-connect": op_test_connect,
    "test-fork": op_test_fork,
}


def short(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    # ITK's messages start with a file and line in its own sources; the last line says what went wrong
    text = lines[-1] if lines else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def is_memory_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "bad_alloc" in text or "failed to allocate" in text or (
        "memory" in text and "alloc" in text)


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    set_limits(request["limits"])
    out = request["output"]
    result_path = os.path.join(out, "result.json")
    confined, abi = False, 0
    try:
        ops = dict(OPS, **(TEST_OPS if request.get("test_ops") else {}))
        if request["op"] not in ops:
            raise Refused(f"unknown operation {request['op']!r}", kind="internal")
        import ctypes  # noqa: F401 - loaded now: no library can be opened once confined
        import platform  # noqa: F401
        import socket  # noqa: F401
        import time  # noqa: F401
        from pathlib import Path  # noqa: F401

        import numpy as np
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's warnings (a folder above a series: "No Series were
        # found") are noise: the result says what was found, and the log is quoted when the child fails
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        sitk.ImageSeriesReader(), sitk.ImageFileReader()  # their factories registered before the confinement
        status = open("/proc/self/status", "rb", buffering=0)  # kept open: its peak address space, read at the end
        forbid_new_processes()
        if not (request.get("test_ops") and request.get("test_without_landlock")):
            abi = confine(request["input"], out)
        confined = abi > 0
        if not confined and request.get("require_confinement"):
            raise Refused("Landlock is not available on this kernel, and confinement is required",
                          kind="confinement")
        fields = ops[request["op"]]({"np": np, "sitk": sitk}, request)
        fields.update(ok=True, confined=confined, landlock_abi=abi, vm_peak_bytes=vm_peak(status))
        write_whole(result_path, json.dumps(fields).encode())
        return 0
    except Refused as exc:
        write_whole(result_path, json.dumps({"ok": False, "kind": exc.kind, "message": str(exc)[:2000],
                                             "confined": confined, "landlock_abi": abi}).encode())
        return EXIT_REFUSED
    except MemoryError:
        write_whole(result_path, json.dumps({"ok": False, "kind": "memory", "message": "MemoryError",
                                             "confined": confined, "landlock_abi": abi}).encode())
        return EXIT_REFUSED


def vm_peak(status) -> int:
    status.seek(0)
    for line in status.read().decode().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
