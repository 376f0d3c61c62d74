"""import_cases: every format, the real CT, re-import, and every bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from django.core.management import CommandError, call_command
from django.core.management.base import OutputWrapper

from annotation.models import Case, SourceLabel
from annotation.services.imports import ImportSetupError, import_cases
from tests.conftest import REPO, affine_for, make_ct, make_labels, save_nifti, write_dicom_series

pytestmark = pytest.mark.django_db


def media_files(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def stored_names() -> set[str]:
    names = {c.ct_file.name for c in Case.objects.all()} | {c.dicom_headers.name for c in Case.objects.all()
                                                             if c.dicom_headers}
    return names | {s.label_file.name for s in SourceLabel.objects.all()}


def assert_rows_match_files(settings):
    """No Case row without its file, no file without its row."""
    assert media_files(settings) == stored_names()


def organs_of(case: Case) -> set[str]:
    return {o.name for label in case.source_labels.all() for o in label.organs.all()}


def run_command(*args) -> tuple[int, str, str]:
    """call_command with captured output; returns (exit status, stdout, stderr)."""
    import io

    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_cases", *[str(a) for a in args], stdout=OutputWrapper(out), stderr=OutputWrapper(err))
        status = 0
    except CommandError as exc:
        err.write(str(exc))
        status = exc.returncode
    return status, out.getvalue(), err.getvalue()


# --- formats --------------------------------------------------------------------------------------


def test_nifti_file_with_labels(tmp_path, settings):
    ct = make_ct()
    affine = affine_for()
    src = save_nifti(tmp_path / "in" / "patient1.nii.gz", ct, affine)
    lab = save_nifti(tmp_path / "in" / "patient1_seg.nii.gz", make_labels(values=(1, 5)), affine)
    status, out, err = run_command(src, "--dataset", "d1", "--labels", lab)
    assert status == 0, err
    assert "imported 1" in out
    case = Case.objects.get()
    assert case.name == "patient1" and case.source_format == "nifti"
    assert case.shape == [24, 20, 12]
    assert case.spacing == pytest.approx([1.5, 1.5, 2.5])
    assert np.allclose(case.affine, affine)
    stored = Path(settings.MEDIA_ROOT) / case.ct_file.name
    assert stored.read_bytes() == src.read_bytes()  # byte for byte
    assert organs_of(case) == {"spleen", "liver"}
    label = nib.load(Path(settings.MEDIA_ROOT) / case.source_labels.get().label_file.name)
    assert label.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(label.dataobj), make_labels(values=(1, 5)))
    assert_rows_match_files(settings)


def test_plain_nii_non_ras_keeps_geometry_and_values(tmp_path, settings):
    """A .nii (gzipped on import) with an LPS-flipped, oblique affine: SimpleITK reads the same image back."""
    ct = make_ct(seed=3)
    affine = affine_for(spacing=(0.7, 0.9, 3.0), flip=(-1, -1, 1))
    rotation = np.array([[np.cos(0.2), -np.sin(0.2), 0], [np.sin(0.2), np.cos(0.2), 0], [0, 0, 1]])
    affine[:3, :3] = rotation @ affine[:3, :3]
    src = save_nifti(tmp_path / "oblique.nii", ct, affine)
    report = import_cases(src, dataset="d1")
    assert report.imported == ["oblique"] and report.ok
    case = Case.objects.get()
    stored = Path(settings.MEDIA_ROOT) / case.ct_file.name
    assert stored.name == "ct.nii.gz"
    assert gzip.decompress(stored.read_bytes()) == src.read_bytes()
    a, b = sitk.ReadImage(str(src)), sitk.ReadImage(str(stored))
    assert a.GetOrigin() == b.GetOrigin() and a.GetSpacing() == b.GetSpacing()
    assert a.GetDirection() == b.GetDirection()
    assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert case.spacing == pytest.approx([0.7, 0.9, 3.0])


def test_folder_of_nifti_with_label_folder(tmp_path, settings):
    affine = affine_for()
    for i in range(3):
        save_nifti(tmp_path / "images" / f"c{i}.nii.gz", make_ct(seed=i), affine)
    save_nifti(tmp_path / "labels" / "c1.nii.gz", make_labels(values=(2, 3)), affine)
    (tmp_path / "images" / "README.txt").write_text("not an image, ignored in a folder")
    report = import_cases(tmp_path / "images", dataset="folder", labels=tmp_path / "labels")
    assert sorted(report.imported) == ["c0", "c1", "c2"] and report.ok
    assert organs_of(Case.objects.get(name="c1")) == {"kidney_right", "kidney_left"}
    assert not Case.objects.get(name="c0").source_labels.exists()
    assert_rows_match_files(settings)


def test_abdomenatlas_layout_partial_labels(tmp_path, settings):
    affine = affine_for()
    labels = make_labels(values=(5, 1))
    for name, organs in (("BDMAP_001", ["liver", "spleen"]), ("BDMAP_002", ["liver"]), ("BDMAP_003", [])):
        save_nifti(tmp_path / name / "ct.nii.gz", make_ct(seed=len(name) + len(organs)), affine)
        for organ in organs:
            value = {"liver": 5, "spleen": 1}[organ]
            save_nifti(tmp_path / name / "segmentations" / f"{organ}.nii.gz", (labels == value).astype(np.uint8),
                       affine)
    report = import_cases(tmp_path, dataset="atlas")
    assert sorted(report.imported) == ["BDMAP_001", "BDMAP_002", "BDMAP_003"], report.errors
    assert organs_of(Case.objects.get(name="BDMAP_001")) == {"liver", "spleen"}
    assert organs_of(Case.objects.get(name="BDMAP_002")) == {"liver"}
    assert organs_of(Case.objects.get(name="BDMAP_003")) == set()
    one = Case.objects.get(name="BDMAP_001")
    stored = np.asarray(nib.load(Path(settings.MEDIA_ROOT) / one.source_labels.get().label_file.name).dataobj)
    assert np.array_equal(stored, labels)
    assert Case.objects.get(name="BDMAP_002").source_format == "abdomenatlas"
    assert_rows_match_files(settings)


def test_abdomenatlas_alias_names(tmp_path):
    """A file named by an alias (inferior_vena_cava) lands on the canonical organ (postcava)."""
    affine = affine_for()
    save_nifti(tmp_path / "case" / "ct.nii.gz", make_ct(), affine)
    save_nifti(tmp_path / "case" / "segmentations" / "inferior_vena_cava.nii.gz",
               (make_labels(values=(1,)) > 0).astype(np.uint8), affine)
    report = import_cases(tmp_path / "case", dataset="alias")
    assert report.ok, report.errors
    assert organs_of(Case.objects.get()) == {"postcava"}


def test_nnunet_v2_layout(tmp_path, settings):
    affine = affine_for()
    root = tmp_path / "Dataset042_Abdomen"
    meta = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "spleen": 1, "liver": 2, "pancreas": 3},
            "numTraining": 2, "file_ending": ".nii.gz"}
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps(meta))
    for i in range(2):
        save_nifti(root / "imagesTr" / f"abd_{i:03d}_0000.nii.gz", make_ct(seed=i), affine)
        save_nifti(root / "labelsTr" / f"abd_{i:03d}.nii.gz", make_labels(values=(1, 2)), affine)
    save_nifti(root / "imagesTs" / "abd_100_0000.nii.gz", make_ct(seed=9), affine)
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"1": "spleen", "2": "liver", "3": "pancreas", "liver": "liver"}))
    report = import_cases(root, dataset="nnunet", label_map=label_map)
    assert sorted(report.imported) == ["abd_000", "abd_001", "abd_100"], report.errors
    case = Case.objects.get(name="abd_000")
    assert case.source_format == "nnunet"
    # dataset.json declares three organs: pancreas is covered (known absent) though no voxel has it
    assert organs_of(case) == {"spleen", "liver", "pancreas"}
    stored = np.asarray(nib.load(Path(settings.MEDIA_ROOT) / case.source_labels.get().label_file.name).dataobj)
    assert set(np.unique(stored)) == {0, 1, 5}  # nnU-Net's 2 (liver) became the label set's 5
    assert not Case.objects.get(name="abd_100").source_labels.exists()


def test_msd_layout_without_label_map(tmp_path):
    """MSD dataset.json ("1": "spleen"), names mapped by the label set's organ names and aliases."""
    affine = affine_for()
    root = tmp_path / "Task09_Spleen"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "CT"}, "labels": {"0": "background",
                                                                                      "1": "spleen"}}))
    save_nifti(root / "imagesTr" / "spleen_2.nii.gz", make_ct(), affine)
    save_nifti(root / "labelsTr" / "spleen_2.nii.gz", make_labels(values=(1,)), affine)
    report = import_cases(root, dataset="msd")
    assert report.imported == ["spleen_2"], report.errors
    assert organs_of(Case.objects.get()) == {"spleen"}


def _check_dicom_case(case: Case, settings, ct: np.ndarray, series_dir: Path):
    stored = sitk.ReadImage(str(Path(settings.MEDIA_ROOT) / case.ct_file.name))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(series_dir)))
    reference = reader.Execute()
    assert np.allclose(stored.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    assert np.allclose(stored.GetSpacing(), reference.GetSpacing(), atol=1e-5)
    assert np.allclose(stored.GetDirection(), reference.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(stored), sitk.GetArrayFromImage(reference))
    assert np.array_equal(sitk.GetArrayFromImage(stored).transpose(2, 1, 0), ct)
    assert case.shape == list(ct.shape)
    assert case.spacing == pytest.approx([0.8, 0.8, 2.0])


def test_dicom_folder(tmp_path, settings):
    ct = make_ct(shape=(16, 14, 6), seed=4)
    series = write_dicom_series(tmp_path / "study1", ct)
    report = import_cases(series, dataset="dicom")
    assert report.imported == ["study1"], report.errors
    case = Case.objects.get()
    assert case.source_format == "dicom"
    _check_dicom_case(case, settings, ct, series)
    assert import_cases(series, dataset="dicom").skipped == ["study1"]


def test_dicom_zip(tmp_path, settings):
    ct = make_ct(shape=(16, 14, 6), seed=5)
    series = write_dicom_series(tmp_path / "series", ct)
    archive = tmp_path / "scan42.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(series.iterdir()):
            zf.write(path, f"DICOM/{path.name}")
    report = import_cases(archive, dataset="dicomzip")
    assert report.imported == ["scan42"], report.errors
    case = Case.objects.get()
    assert case.source_format == "dicom-zip"
    _check_dicom_case(case, settings, ct, series)
    assert_rows_match_files(settings)


def test_real_ct_with_totalsegmentator_label_map(ct_example, settings):
    src, seg = ct_example / "ct.nii.gz", ct_example / "seg_model_a.nii.gz"
    status, out, err = run_command(src, "--dataset", "real", "--labels", seg,
                                   "--label-map", REPO / "fixtures" / "label_maps" / "totalsegmentator.json")
    assert status == 0, err
    case = Case.objects.get()
    stored = Path(settings.MEDIA_ROOT) / case.ct_file.name
    a, b = sitk.ReadImage(str(src)), sitk.ReadImage(str(stored))
    assert a.GetOrigin() == b.GetOrigin() and a.GetSpacing() == b.GetSpacing()
    assert a.GetDirection() == b.GetDirection() and a.GetPixelID() == b.GetPixelID()
    assert np.array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    assert case.shape == [122, 101, 30] and case.spacing == pytest.approx([3.0, 3.0, 3.0])
    original = np.asarray(nib.load(seg).dataobj)
    mapped = np.asarray(nib.load(Path(settings.MEDIA_ROOT) / case.source_labels.get().label_file.name).dataobj)
    ts = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 9, 52: 7, 63: 8}  # TotalSegmentator -> abdomenatlas
    for foreign, value in ts.items():
        assert np.array_equal(original == foreign, mapped == value), (foreign, value)
    assert np.count_nonzero(mapped) == sum(np.count_nonzero(original == f) for f in ts)
    assert organs_of(case) == {"spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach",
                               "aorta", "postcava", "pancreas"}


def test_reimport_is_noop(tmp_path, settings):
    src = save_nifti(tmp_path / "a.nii.gz", make_ct(), affine_for())
    assert import_cases(src, dataset="d").imported == ["a"]
    before = {p: p.stat().st_mtime_ns for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()}
    report = import_cases(src, dataset="d")
    assert report.imported == [] and report.skipped == ["a"] and report.ok
    assert Case.objects.count() == 1
    assert {p: p.stat().st_mtime_ns for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()} == before


def test_same_name_other_content_is_refused(tmp_path, settings):
    import_cases(save_nifti(tmp_path / "x" / "a.nii.gz", make_ct(seed=1), affine_for()), dataset="d")
    report = import_cases(save_nifti(tmp_path / "y" / "a.nii.gz", make_ct(seed=2), affine_for()), dataset="d")
    assert len(report.errors) == 1 and "already has a case named 'a'" in report.errors[0]
    assert Case.objects.count() == 1
    assert_rows_match_files(settings)


def test_unknown_label_set_and_bad_label_map(tmp_path):
    src = save_nifti(tmp_path / "a.nii.gz", make_ct(), affine_for())
    with pytest.raises(ImportSetupError, match="'nope' does not exist"):
        import_cases(src, dataset="d", label_set="nope")
    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps({"1": "appendix"}))
    with pytest.raises(ImportSetupError, match=r"map.json: key '1' maps to 'appendix'"):
        import_cases(src, dataset="d", label_map=bad_map)
    bad_map.write_text("{not json")
    with pytest.raises(ImportSetupError, match="map.json: not valid JSON"):
        import_cases(src, dataset="d", label_map=bad_map)
    assert Case.objects.count() == 0


def test_setup_and_source_errors_are_refusals_and_the_command_says_them_in_one_line(tmp_path):
    from annotation.errors import Invalid
    from annotation.services.imports.sources import SourceError

    assert issubclass(ImportSetupError, Invalid) and issubclass(SourceError, Invalid)  # 4xx over the API, not 500
    src = save_nifti(tmp_path / "a.nii.gz", make_ct(), affine_for())
    status, _, err = run_command(src, "--dataset", "d", "--label-set", "nope")
    assert status == 1 and err.startswith("--label-set 'nope' does not exist (known: ") and "\n" not in err.strip()
    bad_map = tmp_path / "map.json"
    bad_map.write_text("{not json")
    status, _, err = run_command(src, "--dataset", "d", "--label-map", bad_map)
    assert status == 1 and err.strip().startswith(f"{bad_map}: not valid JSON") and "\n" not in err.strip()
    assert Case.objects.count() == 0


def test_other_label_sets_load(tmp_path):
    from annotation.models import LabelSet

    assert {ls.name: ls.organs.count() for ls in LabelSet.objects.all()} == {
        "abdomenatlas": 9, "word": 16, "btcv": 13, "flare": 13}
    src = save_nifti(tmp_path / "w.nii.gz", make_ct(), affine_for())
    lab = save_nifti(tmp_path / "w_seg.nii.gz", make_labels(values=(16, 12)), affine_for())
    report = import_cases(src, dataset="word-data", label_set="word", labels=lab)
    assert report.ok, report.errors
    assert organs_of(Case.objects.get()) == {"femur_head_right", "adrenal"}


# --- bad input ------------------------------------------------------------------------------------


@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, tuple[Path, Path | None, str]]:
    """name -> (CT path, label path or None, the problem the message must state)."""
    affine = affine_for()
    good = save_nifti(tmp_path / "good.nii.gz", make_ct(), affine)
    cases: dict[str, tuple[Path, Path | None, str]] = {}

    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    cases["truncated"] = (truncated, None, "truncated or corrupt")

    corrupt = bytearray(good.read_bytes())
    corrupt[len(corrupt) // 2: len(corrupt) // 2 + 64] = os.urandom(64)
    (tmp_path / "corrupt.nii.gz").write_bytes(bytes(corrupt))
    cases["corrupt"] = (tmp_path / "corrupt.nii.gz", None, "corrupt")

    text = tmp_path / "notes.nii.gz"
    text.write_text("this is not an image\n")
    cases["not_an_image"] = (text, None, "not")

    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4 not a volume")
    cases["not_nifti"] = (pdf, None, "not a NIfTI file")

    flat = save_nifti(tmp_path / "flat.nii.gz", make_ct()[:, :, 0], affine)
    cases["2d"] = (flat, None, "expected a 3D volume")

    nan = make_ct().astype(np.float32)
    nan[3, 4, 5] = np.nan
    cases["nan"] = (save_nifti(tmp_path / "nan.nii.gz", nan, affine), None, "1 voxels are NaN")

    shaped = save_nifti(tmp_path / "shape_seg.nii.gz", make_labels(shape=(24, 20, 10)), affine)
    cases["label_shape"] = (save_nifti(tmp_path / "shape.nii.gz", make_ct(seed=11), affine), shaped,
                            "label shape (24, 20, 10) differs")

    moved = affine.copy()
    moved[0, 3] += 2.0
    cases["label_affine"] = (save_nifti(tmp_path / "moved.nii.gz", make_ct(seed=12), affine),
                             save_nifti(tmp_path / "moved_seg.nii.gz", make_labels(), moved),
                             "label affine differs")

    cases["label_values"] = (save_nifti(tmp_path / "values.nii.gz", make_ct(seed=13), affine),
                             save_nifti(tmp_path / "values_seg.nii.gz", make_labels(values=(1, 42)), affine),
                             "label values 42 are not in")
    return cases


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "not_an_image", "not_nifti", "2d", "nan",
                                  "label_shape", "label_affine", "label_values"])
def test_bad_input_one_line_and_nothing_written(kind, bad_inputs, settings):
    src, labels, problem = bad_inputs[kind]
    args = [src, "--dataset", "bad"] + (["--labels", labels] if labels else [])
    status, out, err = run_command(*args)
    assert status == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    named = labels if kind.startswith("label") else src
    assert str(named) in lines[0] and problem in lines[0], lines[0]
    assert Case.objects.count() == 0
    assert media_files(settings) == set()


def test_bad_files_do_not_stop_good_ones(tmp_path, settings):
    affine = affine_for()
    folder = tmp_path / "mixed"
    save_nifti(folder / "good1.nii.gz", make_ct(seed=1), affine)
    save_nifti(folder / "good2.nii", make_ct(seed=2), affine)
    (folder / "broken.nii.gz").write_bytes((folder / "good1.nii.gz").read_bytes()[:200])
    nan = make_ct(seed=3).astype(np.float32)
    nan[0, 0, 0] = np.nan
    save_nifti(folder / "nan.nii.gz", nan, affine)
    status, out, err = run_command(folder, "--dataset", "mixed")
    assert status == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 2
    assert any("broken.nii.gz" in line for line in errors) and any("nan.nii.gz" in line for line in errors)
    assert "imported 2" in out and "failed 2" in out
    assert set(Case.objects.values_list("name", flat=True)) == {"good1", "good2"}
    assert_rows_match_files(settings)


def test_zip_slip_is_refused(tmp_path, settings):
    series = write_dicom_series(tmp_path / "series", make_ct(shape=(12, 12, 4)))
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(series.iterdir()):
            zf.write(path, f"ok/{path.name}")
        zf.writestr("../../escaped.txt", "outside")
    status, out, err = run_command(archive, "--dataset", "evil")
    assert status == 1
    assert f"{archive}: member '../../escaped.txt' escapes the target folder" in err
    assert Case.objects.count() == 0 and media_files(settings) == set()
    assert not (tmp_path.parent / "escaped.txt").exists()
    absolute = tmp_path / "abs.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr("/etc/evil", "x")
    assert "escapes the target folder" in run_command(absolute, "--dataset", "evil")[2]


def test_missing_source(tmp_path):
    status, _, err = run_command(tmp_path / "nowhere", "--dataset", "d")
    assert status == 1 and f"{tmp_path / 'nowhere'}: no such file or folder" in err


def test_failure_while_writing_leaves_nothing(tmp_path, settings, monkeypatch):
    """A storage failure after the CT was stored: the transaction rolls back and the CT file is removed."""
    import annotation.services.imports as service

    calls = []
    real_store = service.store_file

    def failing_store(name, path):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_store(name, path)

    monkeypatch.setattr(service, "store_file", failing_store)
    src = save_nifti(tmp_path / "a.nii.gz", make_ct(), affine_for())
    lab = save_nifti(tmp_path / "a_seg.nii.gz", make_labels(), affine_for())
    with pytest.raises(OSError, match="disk full"):
        import_cases(src, dataset="d", labels=lab)
    assert Case.objects.count() == 0 and SourceLabel.objects.count() == 0
    assert media_files(settings) == set()


@pytest.mark.slow
def test_command_exit_status_in_a_real_process(tmp_path):
    """manage.py exits non-zero with the one-line message when a file is bad."""
    bad = tmp_path / "bad.nii.gz"
    bad.write_text("garbage")
    env = {**os.environ, "ATLAS_VAR_DIR": str(tmp_path / "var"),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'db.sqlite3'}"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True)
    result = subprocess.run([sys.executable, "manage.py", "import_cases", str(bad), "--dataset", "x"],
                            cwd=REPO, env=env, capture_output=True, text=True, encoding="utf-8")
    assert result.returncode == 1
    assert f"error: {bad}: not a gzip file, though its name ends in .gz" in result.stderr, result.stderr
