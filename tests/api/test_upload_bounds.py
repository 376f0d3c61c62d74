"""Uploads and imports are bounded before any voxel is read (issue 14, item 1).

- A memory bomb: a few hundred kilobytes whose header promises a large volume (with scale factors that would turn
  it into float64). The header is refused first: the peak memory of the process that checks it, measured with
  `resource` in a subprocess, stays within a small multiple of the case's size.
- A gzip tail: a valid label followed by gigabytes of compressed zeros. Inflation stops where the header says the
  voxels end, and the trailing data is refused; the CPU time of the request stays bounded (never wall-clock).
- Imports follow the same rules, on a CT the size of a real one.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from annotation.models import Revision
from annotation.services.imports import import_cases
from tests.api.test_workflow import nifti_bytes, storage_files, upload
from tests.conftest import REPO, affine_for, make_ct, save_nifti

pytestmark = pytest.mark.django_db

MiB = 1024**2


def zeros_member(nbytes: int) -> bytes:
    """One gzip member inflating to nbytes of zeros (about nbytes / 1000 bytes long)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    block = bytes(1 << 20)
    parts = [compressor.compress(block) for _ in range(nbytes >> 20)]
    parts.append(compressor.compress(bytes(nbytes & ((1 << 20) - 1))))
    return b"".join(parts) + compressor.flush()


def raw_nifti_gz(path: Path, data: np.ndarray, slope: float | None = None, inter: float = 0.0) -> Path:
    """data (x, y, z) as a .nii.gz with the scale factors given (nibabel's writer would reset them)."""
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    header.set_qform(affine_for(), code=1)
    header.set_sform(affine_for(), code=1)
    if slope is not None:
        header.set_slope_inter(slope, inter)
    header["vox_offset"] = 352
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(header.binaryblock + b"\0" * 4)
        handle.write(np.asarray(data).tobytes(order="F"))
    return path


def bomb(path: Path, shape: tuple[int, int, int], dtype=np.int16, slope: float | None = 2.0) -> Path:
    """A .nii.gz whose header promises shape (and scale factors), with all-zero voxels: tiny on disk."""
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_qform(affine_for(), code=1)
    header.set_sform(affine_for(), code=1)
    if slope is not None:
        header.set_slope_inter(slope, -1024.0)
    header["vox_offset"] = 352
    head = header.binaryblock + b"\0" * 4  # no extensions
    voxels = int(np.prod(shape)) * np.dtype(dtype).itemsize
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(head, 1) + zeros_member(voxels))
    return path


# The checking process: Django set up, then the service that checks an upload against its case, with ru_maxrss
# (kilobytes on Linux: the process's peak) read before and after.
_PROBE = r"""
import json, os, resource, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")
import django
django.setup()
from pathlib import Path
import numpy as np
from annotation.models import Case
from annotation.services.revisions import UploadError, check_label_upload
from ml_engine.io import ImageError, load_nifti
kind, path, shape, affine = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
error = None
try:
    if kind == "upload":
        check_label_upload(path, Case(shape=shape, affine=affine))
    else:  # what an import does with a CT (no expected shape: bounded by ATLAS_MAX_VOLUME_BYTES)
        load_nifti(path, max_bytes=int(sys.argv[5]))
except (UploadError, ImageError) as exc:
    error = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_rise_bytes": (after - before) * 1024, "error": error}))
"""


def probe(kind: str, path: Path, shape, max_bytes: int = 4 * 1024**3) -> dict:
    result = subprocess.run([sys.executable, "-c", _PROBE, kind, str(path), json.dumps(list(shape)),
                             json.dumps(affine_for().tolist()), str(max_bytes)],
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


CASE_SHAPE = (24, 20, 12)
CASE_BYTES = int(np.prod(CASE_SHAPE))
SLACK = 8 * MiB  # allocator and import noise: a small, fixed amount, far below what any bomb asks for


@pytest.mark.parametrize("kind,shape,dtype,slope,expected", [
    # 400^3 int16 with a slope: 128 MB of voxels, 512 MB once scaled to float64; the file is about 130 KB.
    ("wrong shape", (400, 400, 400), np.int16, 2.0, "shape (400, 400, 400) differs from the CT's (24, 20, 12)"),
    ("scaled", CASE_SHAPE, np.int16, 2.0, "scale factors"),
    ("float", CASE_SHAPE, np.float64, None, "expected integer voxels, found float64"),
])
def test_a_memory_bomb_is_refused_from_its_header(tmp_path, kind, shape, dtype, slope, expected):
    path = bomb(tmp_path / "bomb.nii.gz", shape, dtype=dtype, slope=slope)
    assert path.stat().st_size < 1 * MiB
    result = probe("upload", path, CASE_SHAPE)
    assert result["error"] is not None and expected in result["error"], result
    # Before: the worker read every voxel (and scaled them to float64) before comparing shapes: +512 MB here.
    assert result["peak_rise_bytes"] <= 4 * CASE_BYTES * 8 + SLACK, result


def test_a_bomb_upload_gets_400_naming_the_file(world, tmp_path):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    data = bomb(tmp_path / "bomb.nii.gz", (256, 256, 256)).read_bytes()
    response = upload(api, task_id, data)
    assert response.status_code == 400, response.json()
    assert response.json()["detail"] == "file: shape (256, 256, 256) differs from the CT's (24, 20, 12)"
    assert response.json()["field"] == "file"


def test_a_gzip_tail_is_refused_without_inflating_it(world, settings):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    member = zeros_member(64 * MiB)
    tail = member * 128  # 8 GiB of zeros, about 8 MB on the wire
    data = nifti_bytes(world.pseudo) + tail
    assert len(data) < 16 * MiB
    started = time.process_time()
    response = upload(api, task_id, data)
    cpu = time.process_time() - started
    assert response.status_code == 400, response.json()
    assert "trailing data after the 5760 bytes of voxels its header describes" in response.json()["detail"]
    # Before: 8 GiB were inflated (several CPU-seconds) and the revision was accepted (201). Now the check reads
    # one byte past the voxels; the rest of the request (multipart parsing, an 8 MB copy) is the cost.
    assert cpu < 2.0, cpu
    assert Revision.objects.count() == 0 and storage_files(settings, "revisions") == []


def test_a_plain_nii_with_trailing_bytes_is_refused(world):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    response = upload(api, task_id, nifti_bytes(world.pseudo, gz=False) + b"\0" * 1000, name="edit.nii")
    assert response.status_code == 400 and "trailing data" in response.json()["detail"]


def test_a_scaled_or_float_label_upload_is_refused(world):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    response = upload(api, task_id, nifti_bytes(world.pseudo.astype(np.float32)))
    assert response.status_code == 400 and "expected integer voxels, found float32" in response.json()["detail"]


# --- imports ---------------------------------------------------------------------------------------------------


def test_import_refuses_a_ct_with_a_gzip_tail_and_a_label_bomb(tmp_path, db):
    affine = affine_for()
    ct = save_nifti(tmp_path / "src" / "tail.nii", make_ct((24, 20, 12)), affine)
    tailed = tmp_path / "src" / "tail.nii.gz"
    tailed.write_bytes(gzip.compress(ct.read_bytes()) + zeros_member(64 * MiB) * 32)
    ct.unlink()
    started = time.process_time()
    report = import_cases(tailed, dataset="bounded")
    assert time.process_time() - started < 2.0  # 2 GiB of tail never inflated
    assert report.imported == [] and len(report.errors) == 1
    assert report.errors[0].startswith(f"{tailed}: trailing data after the"), report.errors

    good = save_nifti(tmp_path / "ok" / "case.nii.gz", make_ct((24, 20, 12)), affine)
    label = bomb(tmp_path / "labels" / "case.nii.gz", (300, 300, 300), dtype=np.uint8, slope=None)
    report = import_cases(good, dataset="bounded", labels=label)
    assert report.imported == [] and report.errors == [
        f"{label}: label shape (300, 300, 300) differs from the CT's (24, 20, 12)"]


def test_import_reads_a_real_sized_ct_once_within_a_small_multiple_of_its_size(tmp_path):
    """512 x 512 x 96 int16 with CT scale factors (slope 1, intercept -1024): 48 MB stored, 192 MB as float64."""
    shape = (512, 512, 96)
    data = np.zeros(shape, dtype=np.int16)
    data[100:400, 120:380, 10:80] = 1064
    path = raw_nifti_gz(tmp_path / "big.nii.gz", data, slope=1.0, inter=-1024.0)
    result = probe("import", path, shape)
    assert result["error"] is None, result
    raw = data.nbytes
    # The raw buffer plus its float64 image: 5 x raw at most (the old reader also inflated the file twice).
    assert result["peak_rise_bytes"] <= 5 * raw + SLACK, (result, raw)
    result = probe("import", path, shape, max_bytes=raw)  # the float64 image counts against the limit
    assert "exceeds the limit" in result["error"] and result["peak_rise_bytes"] <= SLACK
