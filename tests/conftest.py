"""Shared fixtures: media in a temporary folder, small volumes written on the fly."""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import nibabel as nib
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"  # /work/shared/data beside a checkout at /work/main (CI's layout)
CT_EXAMPLE = SHARED_DATA / "ct_example"


def unavailable(reason: str, *, switch: str) -> NoReturn:
    """The one way a test steps aside for something this machine lacks: it skips, saying why, unless the environment
    sets `switch` to 1 (`.ci/run` sets every one), where it fails instead. Callable in a test, a fixture or at
    module level."""
    if os.environ.get(switch) == "1":
        pytest.fail(f"required here ({switch}=1) but {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def import_or_skip(module: str, *, reason: str, switch: str) -> ModuleType:
    """pytest.importorskip, with unavailable's switch."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable(f"{module} cannot be imported ({exc}); {reason}", switch=switch)


def require_ct_example(*files: str) -> Path:
    """../shared/data/ct_example, holding files (ct.nii.gz by default); skipped when absent, failed where
    ATLAS_REQUIRE_SHARED_DATA=1."""
    for name in files or ("ct.nii.gz",):
        if not (CT_EXAMPLE / name).is_file():
            unavailable(f"{CT_EXAMPLE / name} is absent", switch="ATLAS_REQUIRE_SHARED_DATA")
    return CT_EXAMPLE


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (the big networks' tests: many threads only wait on each other here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Tests under tests/browser/ and tests/integration/ carry their folder's marker (`make quick` leaves them out)."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(REPO).parts
        if len(parts) > 1 and parts[1] in ("browser", "integration"):
            item.add_marker(parts[1])


@pytest.fixture(autouse=True)
def _media_root(request, tmp_path):
    """Each test that touches Django gets its own media folder, and runs the jobs it queues in this process as soon
    as the transaction that queued them commits (tests marked integration send them to a real worker)."""
    if "settings" in request.fixturenames or "db" in request.fixturenames or _uses_django(request):
        settings = request.getfixturevalue("settings")
        settings.MEDIA_ROOT = tmp_path / "media"
        # a fast hash for the many test users (production keeps Django's PBKDF2); 4 users cost 2 s a test otherwise
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        if request.node.get_closest_marker("integration") is None:
            settings.ATLAS_JOB_ENQUEUE = "tests.annotation.loop.inline"
        _no_heartbeat_inside_a_transaction(request.getfixturevalue("monkeypatch"))
    yield


def _no_heartbeat_inside_a_transaction(monkeypatch) -> None:
    """A job run inside an open transaction (a test's own, never a worker's) beats no heartbeat here: the heartbeat
    thread's connection could not see the job's row before that transaction ends, and on PostgreSQL its update would
    wait on the row's lock, which the test holds while the job's end waits for the thread."""
    from django.db import connection

    from annotation.services import jobs

    beating = jobs._heartbeat
    monkeypatch.setattr(jobs, "_heartbeat", lambda job: contextlib.nullcontext() if connection.in_atomic_block
                        else beating(job))


@pytest.fixture(autouse=True)
def _reference_data(request):
    """Transactional tests flush every table after each test, data migrations' rows too: load them again."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and marker.kwargs.get("transaction"):
        request.getfixturevalue("transactional_db")
        from annotation.services.reference_data import sync_reference_data

        sync_reference_data()
    yield


@pytest.fixture(autouse=True)
def _fresh_cache(request):
    """Every test that touches the database starts with an empty cache: no sign-in failures or hashing slots counted
    by an earlier test. A plain test's writes to the database cache roll back with it, but a transactional test's
    flush leaves the cache table (not a model's) as it was, and a Redis cache (ATLAS_CACHE_URL) keeps everything."""
    marker = request.node.get_closest_marker("django_db")
    if (marker is not None and marker.kwargs.get("transaction")) or {"transactional_db", "live_server"} & set(
            request.fixturenames):
        request.getfixturevalue("transactional_db")
    elif marker is not None or "db" in request.fixturenames:
        request.getfixturevalue("db")
    else:
        yield
        return
    from django.core.cache import cache

    cache.clear()
    yield


def at_once(fn: Callable[[], object], n: int) -> list:
    """Call fn in n threads released together; returns what they returned, in the order they finished. Each thread
    closes its database connections; an exception raised in a thread is raised here once all have ended."""
    barrier, results, errors = threading.Barrier(n), [], []

    def run() -> None:
        from django.db import connections

        try:
            barrier.wait()
            results.append(fn())
        except BaseException as exc:  # noqa: BLE001 - raised below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _uses_django(request) -> bool:
    return any(m.name == "django_db" for m in request.node.iter_markers())


@pytest.fixture
def ct_example() -> Path:
    return require_ct_example("ct.nii.gz", "seg_model_a.nii.gz", "seg_model_b.nii.gz")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def affine_for(spacing=(1.5, 1.5, 2.5), origin=(-60.0, -50.0, -80.0), flip=(1, 1, 1)) -> np.ndarray:
    affine = np.diag([spacing[0] * flip[0], spacing[1] * flip[1], spacing[2] * flip[2], 1.0])
    affine[:3, 3] = origin
    return affine


def make_ct(shape=(24, 20, 12), seed=0) -> np.ndarray:
    """(x, y, z) int16 HU: a bright box in air, plus noise."""
    rng = np.random.default_rng(seed)
    ct = np.full(shape, -1000, dtype=np.int16)
    ct[3:-3, 3:-3, 2:-2] = 40
    ct += rng.integers(-20, 20, size=shape, dtype=np.int16)
    return ct


def make_labels(shape=(24, 20, 12), values=(1, 5)) -> np.ndarray:
    """(x, y, z) uint8 with a block for each value along x."""
    labels = np.zeros(shape, dtype=np.uint8)
    step = max(1, (shape[0] - 6) // max(1, len(values)))
    for i, value in enumerate(values):
        labels[3 + i * step: 3 + (i + 1) * step, 5:-5, 3:-3] = value
    return labels


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_dicom_series(folder: Path, ct: np.ndarray, spacing=(0.8, 0.8, 2.0), origin=(-100.0, -120.0, 50.0),
                       series_uid: str = "1.2.826.0.1.3680043.2.1125.1.42") -> Path:
    """Write ct (x, y, z int16 HU) as a DICOM CT series, one file per slice, in LPS with identity direction."""
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    volume = sitk.GetImageFromArray(ct.transpose(2, 1, 0))  # (z, y, x)
    volume.SetSpacing(spacing)
    volume.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(ct.shape[2]):
        image = volume[:, :, z]
        position = volume.TransformIndexToPhysicalPoint((0, 0, z))
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{z + 1}",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1.1",
            "0020|000e": series_uid,
            "0020|0052": "1.2.826.0.1.3680043.2.1125.1.7",  # frame of reference (a DICOM SEG needs it)
            "0010|0020": "PHANTOM-1",
            "0008|0020": "20260115",  # study date (DICOMweb queries by date)
            "0020|0013": str(z + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{spacing[2]:.6f}",
            "0028|0030": f"{spacing[1]:.6f}\\{spacing[0]:.6f}",
            "0010|0010": "Phantom^Test",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{z:03d}.dcm"))
        writer.Execute(image)
    return folder


def real_ct_as_dicom(ct_example, folder):
    """The real CT written as a DICOM series in DICOM's usual voxel order (x and y flipped against its NIfTI's RAS
    order: rows toward the patient's left, columns toward posterior); returns the folder and the RAS voxels."""
    image = nib.load(str(ct_example / "ct.nii.gz"))
    ras = np.asarray(image.dataobj).astype(np.int16)
    nx, ny, _ = ras.shape
    flip = np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    affine = image.affine @ flip  # the same grid, indexed from the right-posterior corner: identity in LPS
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    origin = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, 3]
    return write_dicom_series(folder, ras[::-1, ::-1, :], spacing=tuple(spacing), origin=tuple(origin)), ras
