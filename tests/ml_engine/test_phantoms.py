"""Synthetic abdominal CT phantoms: determinism, anatomy, troubles, files and the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from ml_engine.io import load_nifti, same_geometry
from ml_engine.phantoms import (
    ORGANS,
    TROUBLES,
    Phantom,
    case_parameters,
    generate_dataset,
    make_phantom,
    write_phantom_case,
)

REPO = Path(__file__).resolve().parents[2]
SMALL = (32, 32, 32)


def centroid_world(phantom: Phantom, organ: str) -> np.ndarray:
    """RAS+ world centroid (mm) of one organ."""
    index = np.argwhere(phantom.organ_mask(organ)).mean(axis=0)
    return phantom.affine[:3, :3] @ index + phantom.affine[:3, 3]


def mean_hu(phantom: Phantom, mask: np.ndarray) -> float:
    return float(phantom.ct[mask].mean())


@pytest.fixture(scope="module")
def default_phantoms() -> list[Phantom]:
    return [make_phantom(seed, troubles=[]) for seed in range(4)]


def test_label_set_and_troubles_are_exported():
    assert ORGANS == ("spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta",
                      "postcava", "pancreas")
    assert TROUBLES == ("stomach_air_cavity", "enlarged_pancreas_tail")


def test_same_seed_same_phantom_and_different_seed_different():
    a = make_phantom(7)
    b = make_phantom(7)
    c = make_phantom(8)
    assert np.array_equal(a.ct, b.ct) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.affine, b.affine) and a.troubles == b.troubles and a.name == b.name
    assert not np.array_equal(a.ct, c.ct)
    assert not np.array_equal(a.labels, c.labels)


def test_arrays_geometry_and_types(default_phantoms):
    phantom = default_phantoms[0]
    assert phantom.ct.shape == phantom.labels.shape == (96, 96, 64)
    assert phantom.ct.dtype == np.int16 and phantom.labels.dtype == np.uint8
    assert set(np.unique(phantom.labels)) == set(range(10))
    assert phantom.affine.dtype == np.float64 and phantom.affine.shape == (4, 4)
    assert np.allclose(np.diag(phantom.affine)[:3], (1.5, 1.5, 2.5)) and phantom.spacing == (1.5, 1.5, 2.5)
    assert np.count_nonzero(phantom.affine[:3, :3] - np.diag(np.diag(phantom.affine)[:3])) == 0
    assert phantom.ct.min() >= -1024 and phantom.ct.max() < 3072
    assert phantom.ct[0, 0, 0] < -900  # air in the corner
    with pytest.raises(ValueError, match="valid organs"):
        phantom.organ_mask("heart")


def test_every_organ_present_with_plausible_size(default_phantoms):
    for phantom in default_phantoms:
        counts = {organ: int(phantom.organ_mask(organ).sum()) for organ in ORGANS}
        assert min(counts.values()) >= 300, counts
        assert max(counts, key=counts.get) == "liver"
        assert counts["liver"] > 4 * counts["spleen"]
        assert counts["gallbladder"] < counts["kidney_left"]
        assert sum(counts.values()) < 0.2 * phantom.labels.size


def test_mean_hounsfield_units_are_ordered(default_phantoms):
    for phantom in default_phantoms:
        hu = {organ: mean_hu(phantom, phantom.organ_mask(organ)) for organ in ORGANS}
        fat = mean_hu(phantom, (phantom.labels == 0) & (phantom.ct > -250) & (phantom.ct < -30))
        assert -140 < fat < -60
        assert hu["aorta"] > hu["liver"] > fat
        assert hu["aorta"] > hu["postcava"] > hu["pancreas"]
        assert hu["kidney_left"] > hu["liver"] and hu["kidney_right"] > hu["liver"]
        assert hu["liver"] > hu["gallbladder"]
        assert 30 < hu["liver"] < 90 and 100 < hu["aorta"] < 260


def test_organ_positions_in_ras_world(default_phantoms):
    for phantom in default_phantoms:
        c = {organ: centroid_world(phantom, organ) for organ in ORGANS}
        half_width = phantom.shape[0] * phantom.spacing[0] / 2
        assert c["liver"][0] > 0 > c["spleen"][0]  # liver on the patient's right: larger x in RAS+
        assert c["kidney_right"][0] > 0 > c["kidney_left"][0]
        assert c["postcava"][0] > c["aorta"][0]
        assert abs(c["aorta"][0]) < 0.15 * half_width  # near the midline
        assert c["kidney_right"][2] < c["kidney_left"][2]  # right kidney lower
        for kidney in ("kidney_right", "kidney_left"):
            assert c[kidney][1] < c["pancreas"][1]  # posterior = smaller y
        assert c["gallbladder"][1] > c["aorta"][1]
        assert c["liver"][2] > c["pancreas"][2] > c["kidney_right"][2]
        assert c["stomach"][0] < 0 and c["stomach"][2] > c["pancreas"][2]


def test_labels_do_not_depend_on_spacing_only_scale():
    a = make_phantom(11, spacing=(1.0, 1.0, 2.0))
    b = make_phantom(11, spacing=(2.0, 2.0, 4.0))
    assert np.array_equal(a.labels, b.labels)
    assert np.allclose(b.affine[:3, :3], 2 * a.affine[:3, :3])


@pytest.mark.parametrize(("shape", "spacing"), [(SMALL, (1.5, 1.5, 2.5)), ((40, 56, 16), (0.7, 1.2, 5.0)),
                                                 ((48, 48, 120), (2.0, 2.0, 0.8))])
def test_small_and_anisotropic_volumes_hold_every_organ(shape, spacing):
    phantom = make_phantom(3, shape=shape, spacing=spacing, troubles=list(TROUBLES))
    assert phantom.ct.shape == phantom.labels.shape == shape
    assert np.allclose(phantom.spacing, spacing)
    for organ in ORGANS:
        assert phantom.organ_mask(organ).sum() >= 10, organ
    c = {organ: centroid_world(phantom, organ) for organ in ("liver", "spleen")}
    assert c["liver"][0] > c["spleen"][0]


def test_stomach_air_cavity_is_labelled_stomach():
    plain = make_phantom(21, troubles=[])
    air = make_phantom(21, troubles=["stomach_air_cavity"])
    assert air.troubles == ["stomach_air_cavity"] and plain.troubles == []
    assert np.array_equal(plain.labels, air.labels)  # the anatomy depends on the seed only
    stomach = air.organ_mask("stomach")
    assert np.count_nonzero(air.ct[stomach] < -500) > 100
    assert np.count_nonzero(plain.ct[stomach] < -500) < 5
    assert mean_hu(air, stomach) < mean_hu(plain, stomach) - 100


def test_enlarged_pancreas_tail_is_bigger_and_darker():
    plain = make_phantom(21, troubles=[])
    swollen = make_phantom(21, troubles=["enlarged_pancreas_tail"])
    x = np.arange(plain.shape[0]).reshape(-1, 1, 1) * plain.spacing[0] + plain.affine[0, 3]
    head_x = centroid_world(plain, "pancreas")[0]
    tail_plain = plain.organ_mask("pancreas") & (x < head_x)  # the tail lies on the patient's left: smaller x
    tail_swollen = swollen.organ_mask("pancreas") & (x < head_x)
    assert tail_swollen.sum() > 1.5 * tail_plain.sum()
    # Tumour-like and hypodense: compare voxels at least 2 voxels deep, away from partial volume with fat.
    tail_core = tail_swollen & (ndimage.distance_transform_edt(swollen.organ_mask("pancreas")) >= 2)
    plain_core = ndimage.distance_transform_edt(plain.organ_mask("pancreas")) >= 2
    assert tail_core.sum() > 50 and plain_core.sum() > 50
    assert mean_hu(swollen, tail_core) < mean_hu(plain, plain_core) - 5
    for organ in ("liver", "aorta", "kidney_right"):  # elsewhere the anatomy is the same
        assert np.array_equal(plain.organ_mask(organ), swollen.organ_mask(organ))


def test_troubles_drawn_from_the_seed_when_not_given():
    drawn = [tuple(make_phantom(seed, shape=SMALL).troubles) for seed in range(24)]
    assert () in drawn and any(drawn)
    assert all(set(t) <= set(TROUBLES) for t in drawn)
    with pytest.raises(ValueError, match="unknown trouble"):
        make_phantom(0, troubles=["broken_leg"])


@pytest.mark.parametrize("kwargs", [{"shape": (8, 32, 32)}, {"shape": (32, 32)}, {"spacing": (1.0, 0.0, 1.0)},
                                    {"spacing": (1.0, float("nan"), 1.0)}])
def test_bad_geometry_is_refused(kwargs):
    with pytest.raises(ValueError):
        make_phantom(0, **kwargs)


def test_negative_seed_is_refused():
    with pytest.raises(ValueError, match="seed"):
        make_phantom(-1)


def test_write_phantom_case_layout(tmp_path):
    phantom = make_phantom(5, shape=SMALL, name="case_a")
    case = write_phantom_case(phantom, tmp_path)
    assert case == tmp_path / "case_a"
    ct = load_nifti(case / "ct.nii.gz")
    assert ct.data.dtype == np.int16 and np.array_equal(ct.data, phantom.ct)
    assert same_geometry(ct.affine, phantom.affine)
    assert sorted(p.name for p in (case / "segmentations").iterdir()) == sorted(f"{o}.nii.gz" for o in ORGANS)
    for organ in ORGANS:
        image = nib.load(str(case / "segmentations" / f"{organ}.nii.gz"))
        mask = np.asarray(image.dataobj)
        assert image.get_data_dtype() == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert np.array_equal(mask == 1, phantom.organ_mask(organ))
        assert same_geometry(image.affine, phantom.affine)

    write_phantom_case(phantom, tmp_path, organs=["liver", "pancreas"])  # rewrite: stale masks go
    assert sorted(p.name for p in (case / "segmentations").iterdir()) == ["liver.nii.gz", "pancreas.nii.gz"]
    write_phantom_case(phantom, tmp_path, organs=[])
    assert not (case / "segmentations").exists() and (case / "ct.nii.gz").is_file()
    assert not [p for p in case.rglob("*") if ".tmp" in p.name]
    with pytest.raises(ValueError, match="valid organs"):
        write_phantom_case(phantom, tmp_path, organs=["liverr"])


def test_generate_dataset_names_seeds_and_jitter(tmp_path):
    calls: list[tuple[int, int]] = []
    cases = generate_dataset(tmp_path / "a", n=3, seed=9, shape=SMALL, organs=["spleen"],
                             progress=lambda done, total: calls.append((done, total)))
    assert [c.name for c in cases] == ["phantom_0000", "phantom_0001", "phantom_0002"]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    spacings = []
    for index, case in enumerate(cases):
        assert [p.name for p in (case / "segmentations").iterdir()] == ["spleen.nii.gz"]
        ct = load_nifti(case / "ct.nii.gz")
        assert ct.shape == SMALL
        spacings.append(ct.spacing)
        case_seed, spacing = case_parameters(9, index)
        assert np.allclose(ct.spacing, spacing, atol=1e-4)
        assert np.allclose(spacing, (1.5, 1.5, 2.5), rtol=0.1001)
        assert np.array_equal(ct.data, make_phantom(case_seed, shape=SMALL, spacing=spacing).ct)
    assert len({s for s in spacings}) == 3
    again = generate_dataset(tmp_path / "b", n=1, seed=9, shape=SMALL)
    first = load_nifti(cases[0] / "ct.nii.gz").data
    assert np.array_equal(load_nifti(again[0] / "ct.nii.gz").data, first)
    with pytest.raises(ValueError, match="n must be"):
        generate_dataset(tmp_path / "c", n=0, seed=1)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ml_engine", *args], cwd=REPO, capture_output=True, text=True,
                          encoding="utf-8", timeout=120)


@pytest.mark.slow
def test_cli_writes_the_abdomenatlas_layout(tmp_path):
    out = tmp_path / "phantoms"
    result = run_cli("phantoms", str(out), "--n", "2", "--seed", "3", "--shape", "32", "32", "24",
                     "--spacing", "2", "2", "3")
    assert result.returncode == 0, result.stderr
    assert "2 phantom cases" in result.stdout and str(out) in result.stdout
    for name in ("phantom_0000", "phantom_0001"):
        ct = nib.load(str(out / name / "ct.nii.gz"))
        assert ct.shape == (32, 32, 24) and ct.get_data_dtype() == np.int16
        assert np.allclose(np.diag(ct.affine)[:3], (2, 2, 3), rtol=0.1001)
        assert {p.name for p in (out / name / "segmentations").iterdir()} == {f"{o}.nii.gz" for o in ORGANS}
        liver = nib.load(str(out / name / "segmentations" / "liver.nii.gz"))
        assert np.allclose(liver.affine, ct.affine) and np.asarray(liver.dataobj).sum() > 0


@pytest.mark.slow
def test_cli_partial_and_unlabelled(tmp_path):
    result = run_cli("phantoms", str(tmp_path / "p"), "--n", "1", "--seed", "1", "--shape", "32", "32", "32",
                     "--organs", "liver", "spleen", "--troubles", "stomach_air_cavity")
    assert result.returncode == 0, result.stderr
    seg = tmp_path / "p" / "phantom_0000" / "segmentations"
    assert sorted(p.name for p in seg.iterdir()) == ["liver.nii.gz", "spleen.nii.gz"]
    result = run_cli("phantoms", str(tmp_path / "u"), "--n", "1", "--seed", "1", "--shape", "32", "32", "32",
                     "--organs")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "u" / "phantom_0000" / "segmentations").exists()
    assert (tmp_path / "u" / "phantom_0000" / "ct.nii.gz").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--n", "1", "--seed", "1", "--organs", "liver", "livr"], "livr"),
    (["--n", "0", "--seed", "1"], "--n"),
    (["--n", "1", "--seed", "1", "--shape", "8", "32", "32"], "--shape"),
    (["--n", "1", "--seed", "1", "--spacing", "1", "-1", "1"], "--spacing"),
    (["--n", "1", "--seed", "1", "--troubles", "flu"], "flu"),
])
@pytest.mark.slow
def test_cli_refuses_bad_input(tmp_path, args, message):
    result = run_cli("phantoms", str(tmp_path / "bad"), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_unknown_organ_message_lists_valid_organs(tmp_path):
    result = run_cli("phantoms", str(tmp_path / "bad"), "--n", "1", "--seed", "1", "--organs", "heart")
    assert result.returncode == 2
    assert "heart" in result.stderr and "pancreas" in result.stderr and "kidney_left" in result.stderr


@pytest.mark.slow
def test_ml_engine_stays_free_of_the_web_stack():
    code = ("import sys, ml_engine.phantoms, ml_engine.__main__; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "{'django', 'celery', 'rest_framework', 'annotation', 'atlas'}]; print(bad)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                            encoding="utf-8", timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
