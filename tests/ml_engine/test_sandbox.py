"""The DICOM decoder child (ml_engine.io.sandbox, _decode_child): the same volume as SimpleITK in-process; a crash, an
allocation bomb, an endless or spinning decoder and an unusable result each become an ImageError; no secret of the
parent in its environment; Landlock lets it read its input only (and write its output only, and no TCP)."""

from __future__ import annotations

import errno
import socket
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from ml_engine.io import DecodeLimits, ImageError, load_dicom_series, read_dicom_series
from ml_engine.io.sandbox import ChildResult, landlock_abi, read_volume, relative_paths, run_child
from tests.conftest import REPO, make_ct, write_dicom_series

UID = "1.2.826.0.1.3680043.2.1125.1.42"
ABI = landlock_abi()
needs_landlock = pytest.mark.skipif(ABI < 1, reason="this kernel has no Landlock (ENOSYS / EOPNOTSUPP)")


def child(op: str, folder: Path, **kwargs) -> ChildResult:
    """Run a test-only operation of the child on folder; return its result fields (the block ends at once)."""
    with run_child(op, folder, source=folder, what=f"test {op}", test_ops=True, **kwargs) as result:
        return result.fields


def huge_header_series(folder: Path, uid: str, *, files: int = 2) -> Path:
    """DICOM files whose headers promise 65535 x 65535 x 1000 int16 voxels each, holding 2 bytes of pixel data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = f"{uid}.{i + 1}"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CT", f"{uid}.0", uid
        ds.InstanceNumber, ds.ImagePositionPatient = i + 1, [0, 0, 2 * i]
        ds.ImageOrientationPatient, ds.PixelSpacing = [1, 0, 0, 0, 1, 0], [1, 1]
        ds.Rows = ds.Columns = 65535
        ds.NumberOfFrames = 1000
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = b"\0\0"
        ds.save_as(folder / f"huge{i}.dcm", enforce_file_format=True)
    return folder


def test_a_series_reads_as_simpleitk_reads_it_in_process(tmp_path):
    import SimpleITK as sitk

    ct = make_ct(shape=(20, 16, 8), seed=1)
    series = write_dicom_series(tmp_path / "series", ct)
    volume, files = load_dicom_series(series, UID, max_bytes=10**6)
    assert volume.data.dtype == np.int16 and volume.data.flags.f_contiguous  # as load_nifti gives voxels
    assert np.array_equal(volume.data, ct)
    assert files == [series / f"slice{z:03d}.dcm" for z in range(8)]
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series)))
    image = reader.Execute()
    lps = np.diag([-1.0, -1.0, 1.0])
    expected = np.eye(4)
    expected[:3, :3] = lps @ np.reshape(image.GetDirection(), (3, 3)) @ np.diag(image.GetSpacing())
    expected[:3, 3] = lps @ np.asarray(image.GetOrigin())
    assert np.allclose(volume.affine, expected)
    assert read_dicom_series(tmp_path) == [(UID, series)]
    assert read_dicom_series(series) == [(UID, series)]


def test_a_scan_of_many_series_is_one_child(tmp_path, monkeypatch):
    for i in range(3):
        write_dicom_series(tmp_path / f"s{i}", make_ct(shape=(8, 8, 3), seed=i), series_uid=f"{UID}.{i}")
    started = []
    real = subprocess.Popen

    def counting(*args, **kwargs):
        started.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    found = read_dicom_series(tmp_path)
    assert found == [(f"{UID}.{i}", tmp_path / f"s{i}") for i in range(3)]
    assert len(started) == 1


def test_a_crash_in_the_decoder_is_an_image_error(tmp_path):
    with pytest.raises(ImageError) as caught:
        child("test-segfault", tmp_path)
    assert str(caught.value) == f"{tmp_path}: test test-segfault: the decoder crashed (SIGSEGV, signal 11)"


def test_the_test_operations_need_a_tests_explicit_call(tmp_path):
    with pytest.raises(ImageError, match="the decoder failed .unknown operation 'test-segfault'"):
        with run_child("test-segfault", tmp_path, source=tmp_path, what="x"):
            pass


def test_an_allocation_bomb_hits_the_address_space_limit(tmp_path):
    limits = DecodeLimits(memory_bytes=1024**3)
    with pytest.raises(ImageError, match=r"test test-allocate: the decoder ran out of its 1024 MiB of memory"):
        child("test-allocate", tmp_path, args={"bytes": 4 * 1024**3}, limits=limits)
    assert child("test-allocate", tmp_path, args={"bytes": 64 * 1024**2}, limits=limits)["allocated"] == 64 * 1024**2


def test_a_header_promising_a_huge_image_is_refused_before_any_voxel(tmp_path):
    series = huge_header_series(tmp_path / "huge", f"{UID}.9")
    assert read_dicom_series(tmp_path) == [(f"{UID}.9", series)]
    tracemalloc.start()
    try:
        with pytest.raises(ImageError) as caught:
            load_dicom_series(series, f"{UID}.9", max_bytes=4 * 1024**3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{series}: DICOM series {UID}.9: its headers promise 65535 x 65535 x 1000 voxels in each of 2 files" \
        in str(caught.value) and "beyond the limit of 4294967296 bytes" in str(caught.value)
    assert peak < 4 * 1024**2  # the parent allocated nothing of the sort


@pytest.mark.slow
def test_an_endless_decoder_is_stopped_at_its_time_limit(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    start = time.monotonic()
    with pytest.raises(ImageError, match=r"test test-sleep: the decoder took longer than 2 s and was stopped"):
        child("test-sleep", tmp_path, limits=DecodeLimits(seconds=2), scratch=scratch)
    assert time.monotonic() - start < 10
    assert not any(scratch.iterdir())  # its private folder is gone with it


@pytest.mark.slow
def test_a_spinning_decoder_is_stopped_by_its_cpu_limit(tmp_path):
    with pytest.raises(ImageError, match=r"the decoder used up its 1 s of CPU time and was stopped \(SIGXCPU\)"):
        child("test-spin", tmp_path, limits=DecodeLimits(seconds=60, cpu_seconds=1))


def test_what_the_decoder_leaves_behind_dies_with_it(tmp_path):
    fields = child("test-fork", tmp_path)
    if fields["pid"] == 0:  # not root: RLIMIT_NPROC refused the fork
        assert fields["errno"] == errno.EAGAIN
        return
    status = Path(f"/proc/{fields['pid']}/status")
    deadline = time.monotonic() + 5
    while status.exists() and "zombie" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status.exists() or "zombie" in status.read_text()


def test_the_decoder_sees_no_secret_of_the_parent(tmp_path, monkeypatch):
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "CELERY_BROKER_URL", "ATLAS_S3_BUCKET", "PYTHONPATH", "LD_PRELOAD"):
        monkeypatch.setenv(name, "secret-value")
    fields = child("test-environ", tmp_path)
    environ = fields["environ"]
    assert set(environ) <= {"PATH", "HOME", "TMPDIR", "LANG", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                            "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "MALLOC_MMAP_THRESHOLD_"}
    assert "secret-value" not in environ.values()
    assert fields["cwd"] == environ["HOME"] and Path(fields["cwd"]).name.startswith("decode-")


@needs_landlock
def test_the_decoder_reads_only_its_input_and_writes_only_its_output(tmp_path):
    inside = tmp_path / "input"
    inside.mkdir()
    (inside / "slice.dcm").write_bytes(b"DICM")
    outside = tmp_path / "beside.txt"
    outside.write_text("not for the decoder")
    settings_file = REPO / "atlas" / "settings.py"
    paths = [[str(inside / "slice.dcm"), "r"], [str(outside), "r"], [str(settings_file), "r"], ["/etc/hostname", "r"],
             [str(inside / "new.dcm"), "w"], ["out/written.bin", "w"], ["beside-out.bin", "w"]]
    fields = child("test-open", inside, args={"paths": paths})
    assert fields["confined"] is True and fields["landlock_abi"] == ABI
    assert fields["errno"] == {
        str(inside / "slice.dcm"): 0, str(outside): errno.EACCES, str(settings_file): errno.EACCES,
        "/etc/hostname": errno.EACCES, str(inside / "new.dcm"): errno.EACCES, "out/written.bin": 0,
        "beside-out.bin": errno.EACCES,
    }
    assert not (inside / "new.dcm").exists()


@pytest.mark.skipif(ABI < 4, reason="Landlock restricts TCP from ABI 4 (Linux 6.7)")
def test_the_decoder_cannot_connect_over_tcp(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server:
        fields = child("test-connect", tmp_path, args={"port": server.getsockname()[1]})
    assert fields["errno"] == errno.EACCES


def test_without_landlock_the_decoder_goes_on_unconfined_unless_confinement_is_required(tmp_path):
    unconfined = {"test_without_landlock": True}
    fields = child("test-environ", tmp_path, test_request=unconfined)
    assert fields["confined"] is False
    with pytest.raises(ImageError, match="the decoder cannot be confined .Landlock is not available"):
        child("test-environ", tmp_path, test_request=unconfined, limits=DecodeLimits(require_confinement=True))
    if ABI >= 1:
        assert child("test-environ", tmp_path, limits=DecodeLimits(require_confinement=True))["confined"] is True


def fake_result(tmp_path: Path, fields: dict, raw: bytes | None = None) -> ChildResult:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    if raw is not None:
        (out / "volume.raw").write_bytes(raw)
    return ChildResult(fields=fields, out_dir=out, confined=True)


@pytest.mark.parametrize(("fields", "raw", "problem"), [
    ({"dtype": "|O", "shape": [2, 2, 2]}, b"", "voxels of type '|O', not a plain number"),
    ({"dtype": "<U4", "shape": [2, 2, 2]}, b"", "voxels of type '<U4', not a plain number"),
    ({"dtype": "<i2", "shape": [2, 2]}, b"", "the shape [2, 2], not three sizes >= 2"),
    ({"dtype": "<i2", "shape": [2, 2, True]}, b"", "not three sizes >= 2"),
    ({"dtype": "<i2", "shape": [65535, 65535, 65535]}, None, "volume of size (65535, 65535, 65535) exceeds the limit"),
    ({"dtype": "<i2", "shape": [2, 2, 2], "affine": np.eye(4).tolist()}, b"\0" * 15, "returned 15 bytes of voxels"),
    ({"dtype": "<i2", "shape": [2, 2, 2], "affine": [[float("nan")] * 4] * 4}, b"\0" * 16, "no usable geometry"),
    ({"dtype": "<i2", "shape": [2, 2, 2], "affine": np.zeros((4, 4)).tolist()}, b"\0" * 16, "no usable geometry"),
    ({"dtype": "<f4", "shape": [2, 2, 2], "affine": np.eye(4).tolist()},
     np.array([np.inf] + [0] * 7, "<f4").tobytes(), "NaN or infinite voxels"),
])
def test_the_parent_checks_what_the_decoder_returned(tmp_path, fields, raw, problem):
    with pytest.raises(ImageError, match=problem.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        read_volume(fake_result(tmp_path, fields, raw), source=tmp_path, max_bytes=10**6)


def test_the_parent_reads_back_exactly_what_the_decoder_wrote(tmp_path):
    data = np.arange(24, dtype="<i2").reshape(2, 3, 4)
    result = fake_result(tmp_path, {"dtype": "<i2", "shape": [2, 3, 4], "affine": np.eye(4).tolist()},
                         data.tobytes(order="F"))
    voxels, affine = read_volume(result, source=tmp_path, max_bytes=1000)
    assert np.array_equal(voxels, data) and np.array_equal(affine, np.eye(4))


def test_files_the_decoder_names_must_lie_in_its_folder(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "a.dcm").write_bytes(b"")
    (folder / "link.dcm").symlink_to(tmp_path / "elsewhere.dcm")
    assert relative_paths(["a.dcm", "."], folder, source=folder, kind="file") == [folder / "a.dcm", folder]
    for bad in ("../secret", "/etc/passwd", "link.dcm", "", 3):
        with pytest.raises(ImageError, match="the decoder returned file"):
            relative_paths([bad], folder, source=folder, kind="file")


def test_only_the_child_reads_dicom_with_simpleitk():
    """GDCM's series readers appear in the decoder child only: nothing else in the project hands it a user's file."""
    users = sorted(str(path.relative_to(REPO)) for package in ("annotation", "ml_engine", "atlas")
                   for path in (REPO / package).rglob("*.py")
                   if any(word in path.read_text() for word in ("ImageSeriesReader", "GetGDCMSeries", "GDCMImageIO")))
    assert users == ["ml_engine/io/_decode_child.py"]
