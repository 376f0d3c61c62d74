"""Labels for DICOM series (a file for one series, a folder for several), options a source cannot use, and labels
on the CT's grid in another voxel order (written by another converter), all through `import_cases`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from annotation.models import Case, SourceLabel
from annotation.storage import read_voxels
from tests.annotation.test_import import run_command as run
from tests.conftest import REPO, affine_for, make_ct, make_labels, real_ct_as_dicom, save_nifti, write_dicom_series

pytestmark = pytest.mark.django_db
SHAPE = (20, 16, 8)
UID = "1.2.826.0.1.3680043.2.1125.1.42"


def itk_label(series, labels: np.ndarray, path):
    """A label written as ITK writes NIfTI from the DICOM series (dcm2niix-like tools differ: see canonical())."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    ct = reader.Execute()
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(path))
    return path


def canonical(path, out):
    """The same label as a converter that stores RAS+ voxel order writes it: x and y flipped, the same grid."""
    nib.save(nib.as_closest_canonical(nib.load(str(path))), str(out))
    return out


def organ_labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[2:7, 3:12, 1:6] = 5
    labels[12:17, 4:9, 2:7] = 1
    return labels


def test_a_dicom_series_takes_labels_in_its_own_or_another_voxel_order(tmp_path, settings):
    ct = make_ct(shape=SHAPE, seed=1)
    series = write_dicom_series(tmp_path / "series", ct)
    labels = organ_labels()
    same = itk_label(series, labels, tmp_path / "seg_itk.nii.gz")
    flipped = canonical(same, tmp_path / "seg_ras.nii.gz")
    assert nib.aff2axcodes(nib.load(str(flipped)).affine) != nib.aff2axcodes(nib.load(str(same)).affine)

    status, out, err = run(series, "--dataset", "a", "--labels", flipped)
    assert status == 0, err
    assert f"note: {flipped}: same grid as the CT in another voxel order" in out and "reoriented" in out
    case = Case.objects.get(dataset__name="a")
    stored = read_voxels(SourceLabel.objects.get(case=case).label_file.name)
    assert np.array_equal(stored, labels)  # the CT's voxel order (as the DICOM series reads)
    assert np.array_equal(read_voxels(case.ct_file.name), ct)

    status, out, err = run(series, "--dataset", "b", "--labels", same)
    assert status == 0, err
    assert "note:" not in out
    assert np.array_equal(read_voxels(SourceLabel.objects.get(case__dataset__name="b").label_file.name), labels)


def test_a_label_on_another_grid_is_refused(tmp_path):
    series = write_dicom_series(tmp_path / "series", make_ct(shape=SHAPE, seed=2))
    wrong = itk_label(series, organ_labels(), tmp_path / "seg.nii.gz")
    image = nib.load(str(wrong))
    moved = image.affine.copy()
    moved[:3, :3] *= 1.25  # same voxels, another spacing: a different grid
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), moved), str(wrong))
    status, out, err = run(series, "--dataset", "c", "--labels", wrong)
    assert status == 1
    assert f"error: {wrong}: label affine differs from the CT's" in err and "a different grid" in err
    assert not Case.objects.exists()

    short = save_nifti(tmp_path / "short.nii.gz", organ_labels()[:, :, :5], np.eye(4))
    status, out, err = run(series, "--dataset", "c", "--labels", short)
    assert status == 1 and f"error: {short}: label shape (20, 16, 5) differs from the CT's (20, 16, 8)" in err


def test_several_series_take_a_folder_of_labels_named_by_uid_or_case(tmp_path):
    root = tmp_path / "study"
    first = write_dicom_series(root / "s1", make_ct(shape=SHAPE, seed=3), series_uid=UID + ".1")
    second = write_dicom_series(root / "s2", make_ct(shape=SHAPE, seed=4), series_uid=UID + ".2")
    folder = tmp_path / "labels"
    folder.mkdir()
    itk_label(first, organ_labels(), folder / f"{UID}.1.nrrd")  # by series UID, as 3D Slicer saves a label map
    itk_label(second, organ_labels() * (organ_labels() == 5), folder / "s2_2.nii.gz")  # by case name
    status, out, err = run(root, "--dataset", "d", "--labels", folder)
    assert status == 0, err
    by_name = {case.name: case for case in Case.objects.all()}
    assert set(by_name) == {"s1_1", "s2_2"} and by_name["s1_1"].series_uid == UID + ".1"
    assert {o.name for o in SourceLabel.objects.get(case=by_name["s2_2"]).organs.all()} == {"liver"}
    assert np.array_equal(read_voxels(SourceLabel.objects.get(case=by_name["s1_1"]).label_file.name), organ_labels())

    (folder / "notes.txt").write_text("which label is which")
    status, out, err = run(root, "--dataset", "e", "--labels", folder)
    assert status == 1 and "notes.txt: not a label file" in err
    (folder / "notes.txt").unlink()
    itk_label(first, organ_labels(), folder / "nobody.nii.gz")
    status, out, err = run(root, "--dataset", "e", "--labels", folder)
    assert status == 1 and "nobody.nii.gz name no series" in err
    status, out, err = run(root, "--dataset", "e", "--labels", folder / "s2_2.nii.gz")
    assert status == 1 and "one label file for 2 DICOM series" in err


def test_a_zip_takes_a_label_file(tmp_path):
    ct = make_ct(shape=SHAPE, seed=5)
    series = write_dicom_series(tmp_path / "series", ct)
    archive = tmp_path / "scan.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(series.iterdir()):
            zf.write(path, f"DICOM/{path.name}")
    label = itk_label(series, organ_labels(), tmp_path / "seg.nii.gz")
    status, out, err = run(archive, "--dataset", "z", "--labels", label)
    assert status == 0, err
    assert np.array_equal(read_voxels(SourceLabel.objects.get().label_file.name), organ_labels())


def test_options_a_source_cannot_use_are_refused(tmp_path):
    affine = affine_for()
    save_nifti(tmp_path / "atlas" / "c1" / "ct.nii.gz", make_ct(), affine)
    seg = save_nifti(tmp_path / "seg.nii.gz", make_labels(), affine)
    status, out, err = run(tmp_path / "atlas", "--dataset", "f", "--labels", seg)
    assert status == 1 and "--labels cannot be used with an AbdomenAtlas folder" in err
    assert not Case.objects.exists()


def test_a_real_ct_as_dicom_with_a_totalsegmentator_label_in_ras_order(ct_example, tmp_path):
    """The real CT written as a DICOM series in DICOM's usual voxel order (rows toward the patient's left, columns
    toward posterior: x and y flipped against the NIfTI's RAS order), with TotalSegmentator's segmentation as it
    ships (RAS order, from a NIfTI converter): the same grid in another voxel order, reoriented and said."""
    series, ras = real_ct_as_dicom(ct_example, tmp_path / "dicom")
    seg = ct_example / "seg_model_a.nii.gz"
    status, out, err = run(series, "--dataset", "real", "--labels", seg, "--label-map",
                           REPO / "fixtures" / "label_maps" / "totalsegmentator.json")
    assert status == 0, err
    assert f"note: {seg}: same grid as the CT in another voxel order (axes RAS vs the CT's LPS)" in out
    case = Case.objects.get()
    assert np.array_equal(read_voxels(case.ct_file.name), ras[::-1, ::-1, :])
    stored = read_voxels(SourceLabel.objects.get(case=case).label_file.name)
    source = np.asarray(nib.load(str(seg)).dataobj)[::-1, ::-1, :]
    assert np.array_equal(stored == 5, source == 5) and np.array_equal(stored == 1, source == 1)  # liver, spleen
    assert np.array_equal(stored == 8, source == 63)  # inferior vena cava -> postcava


def test_a_label_map_without_labels_is_refused(tmp_path):
    series = write_dicom_series(tmp_path / "series", make_ct(shape=SHAPE, seed=6))
    status, out, err = run(series, "--dataset", "g", "--label-map", REPO / "fixtures" / "label_maps" /
                           "totalsegmentator.json")
    assert status == 1 and "--label-map given, but no label was found to translate" in err
    assert not Case.objects.exists()


def test_a_folder_above_the_series_imports_without_itk_warnings(tmp_path, monkeypatch, capfd):
    """The folders above a series hold no series: ITK's GDCMSeriesFileNames warns "No Series were found" for each
    unless its warnings are off, which the decoder child does (the import reports the outcome itself). Neither the
    command's output nor the child's own (its log, read before the sandbox removes it) carries an ITK warning."""
    from types import SimpleNamespace

    from ml_engine.io import sandbox

    write_dicom_series(tmp_path / "patient" / "study" / "series", make_ct(shape=SHAPE, seed=5))
    child_logs: list[str] = []
    rmtree = sandbox.shutil.rmtree

    def keep_log(path, *args, **kwargs):
        log = Path(path) / "child.log"
        if log.is_file():
            child_logs.append(log.read_text(errors="replace"))
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(sandbox, "shutil", SimpleNamespace(rmtree=keep_log))
    status, out, err = run(tmp_path / "patient", "--dataset", "a")
    assert status == 0, err
    assert "imported 1" in out
    captured = capfd.readouterr()
    assert len(child_logs) >= 2  # the scan, then the series' load
    for text in (out, err, captured.out, captured.err, *child_logs):
        assert "No Series were found" not in text and "WARNING: In" not in text, text
