"""DICOM imports with the decoder in its sandbox (ml_engine.io.sandbox): a series whose decoder crashes, or whose
headers promise a huge image, is one error line; the import goes on with the other series and exits 1. The
ATLAS_DECODE_* settings reach the decoder."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import ml_engine.io.dicom as dicom
from annotation.models import Case
from annotation.storage import read_voxels
from tests.annotation.test_import import run_command as run
from tests.conftest import make_ct, write_dicom_series
from tests.ml_engine.test_sandbox import huge_header_series

pytestmark = pytest.mark.django_db
UID = "1.2.826.0.1.3680043.2.1125.1.42"
SHAPE = (12, 10, 4)


def study(root, n: int = 3) -> dict[str, np.ndarray]:
    cts = {}
    for i in range(1, n + 1):
        cts[f"s{i}"] = make_ct(shape=SHAPE, seed=i)
        write_dicom_series(root / f"s{i}", cts[f"s{i}"], series_uid=f"{UID}.{i}")
    return cts


def test_a_decoder_that_crashes_on_one_series_fails_that_series_only(tmp_path, monkeypatch):
    """A test-only crash (SIGSEGV in the child) stands in for a GDCM crash on hostile bytes."""
    root = tmp_path / "study"
    cts = study(root)
    real = dicom.run_child

    def crash_on_the_second(op, folder, **kwargs):
        if op == "load" and kwargs["args"]["series_uid"] == f"{UID}.2":
            return real("test-segfault", folder, test_ops=True, **kwargs)
        return real(op, folder, **kwargs)

    monkeypatch.setattr(dicom, "run_child", crash_on_the_second)
    status, out, err = run(root, "--dataset", "d")
    assert status == 1
    assert f"error: {root / 's2'}: DICOM series {UID}.2: the decoder crashed (SIGSEGV, signal 11)" in err
    assert "1 of 3 sources failed" in err
    cases = {case.name: case for case in Case.objects.all()}
    assert set(cases) == {"s1_1", "s3_3"}
    assert np.array_equal(read_voxels(cases["s3_3"].ct_file.name), cts["s3"])


def test_a_series_whose_headers_promise_a_huge_image_is_refused_and_the_others_imported(tmp_path):
    root = tmp_path / "study"
    study(root, n=1)
    huge = huge_header_series(root / "huge", f"{UID}.9")
    tracemalloc.start()
    try:
        status, out, err = run(root, "--dataset", "h")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 1
    assert f"error: {huge}: DICOM series {UID}.9: its headers promise 65535 x 65535 x 1000 voxels" in err
    assert [case.name for case in Case.objects.all()] == ["s1_1"]
    assert peak < 64 * 1024**2  # nothing near the promised size was allocated here


def test_the_decode_settings_reach_the_decoder(tmp_path, settings):
    root = tmp_path / "study"
    study(root, n=1)
    settings.ATLAS_DECODE_MEMORY_BYTES = 100 * 1024**2  # less than the interpreter and SimpleITK need
    status, out, err = run(root, "--dataset", "m")
    assert status == 1 and f"error: {root}: DICOM series scan: the decoder ran out of its 100 MiB of memory" in err
    settings.ATLAS_DECODE_MEMORY_BYTES = None
    settings.ATLAS_DECODE_REQUIRE_CONFINEMENT = True
    settings.ATLAS_DECODE_SECONDS = 60
    from ml_engine.io.sandbox import landlock_abi

    status, out, err = run(root, "--dataset", "m")
    if landlock_abi() >= 1:
        assert status == 0, err
    else:
        assert status == 1 and "the decoder cannot be confined" in err


def test_a_scan_that_crashes_is_retried_folder_by_folder(tmp_path, monkeypatch):
    """The one child that scans the whole study crashes (a hostile file in s2, say): each folder is then scanned by a
    child of its own, s2's crash is its error line, and the other folders' series are imported."""
    root = tmp_path / "study"
    study(root)
    real = dicom.run_child
    scans = []

    def crash_on_s2(op, folder, **kwargs):
        if op == "scan":
            scans.append((folder, kwargs["args"]["recursive"]))
            if folder in (root, root / "s2") and kwargs["args"]["recursive"] == (folder == root):
                return real("test-segfault", folder, test_ops=True, **kwargs)
        return real(op, folder, **kwargs)

    monkeypatch.setattr(dicom, "run_child", crash_on_s2)
    status, out, err = run(root, "--dataset", "s")
    assert status == 1
    assert f"error: {root / 's2'}: DICOM series scan: the decoder crashed (SIGSEGV, signal 11)" in err
    assert f"error: {root}:" not in err
    assert sorted(case.name for case in Case.objects.all()) == ["s1_1", "s3_3"]
    assert scans == [(root, True), (root, False), (root / "s1", False), (root / "s2", False), (root / "s3", False)]
