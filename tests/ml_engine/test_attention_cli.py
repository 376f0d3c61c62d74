"""The attention, priority and evaluate commands: files in the AbdomenAtlas layout, messages, exit status."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ml_engine.__main__ import main
from ml_engine.attention import AttentionSettings, case_attention
from ml_engine.attention.simulate import simulate_ensemble
from ml_engine.io import load_nifti, load_on_grid, write_nifti
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case

REPO = Path(__file__).resolve().parents[2]
ARCHS = ("swin_unetr", "nnunet", "unet")


def write_case(root: Path, seed: int, *, errors=("stomach_cavity_missed", "boundary_shift", "liver_bite"),
               shape=(48, 48, 32)) -> tuple[Path, object]:
    phantom = make_phantom(seed, shape=shape, troubles=[], name=f"case_{seed}")
    case = write_phantom_case(phantom, root)
    ensemble = simulate_ensemble(phantom.labels, spacing=phantom.spacing, seed=seed, errors=errors)
    for organ, maps in ensemble.probs.items():
        for arch, data in zip(ARCHS, maps, strict=True):
            write_nifti(case / "backbones" / arch / "soft_pred" / f"{organ}.nii.gz", data, phantom.affine,
                        dtype=np.uint8)
    return case, ensemble


@pytest.fixture
def cases(tmp_path):
    root = tmp_path / "atlas"
    made = [write_case(root, 0), write_case(root, 1, errors=())]
    return root, made


def test_attention_writes_heatmaps_and_json(cases, capsys):
    root, made = cases
    case, ensemble = made[0]
    assert main(["attention", str(case)]) == 0
    out = capsys.readouterr().out
    assert str(case) in out and "mL" in out and "3 models" in out
    folder = case / "average" / "attention"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{o}.nii.gz" for o in ORGANS)
    data = json.loads((case / "average" / "attention.json").read_text())
    assert data["models"] == sorted(ARCHS) and data["settings"] == AttentionSettings().to_dict()
    assert data["opening_radius_voxels"] == [2, 2, 2] and data["spacing_mm"] == pytest.approx([1.5, 1.5, 2.5])
    expected = case_attention(ensemble.probs, spacing=(1.5, 1.5, 2.5))
    ct = load_nifti(case / "ct.nii.gz")
    for organ in ORGANS:
        image = nib.load(str(folder / f"{organ}.nii.gz"))
        box = data["organs"][organ]["heatmap_box"]
        assert image.get_data_dtype() == np.uint8 and list(image.shape) == box["shape"]
        # cropped to the attention's box, its voxel (0, 0, 0) placed at the box's start on the CT's grid
        assert np.allclose(image.affine[:3, 3], (ct.affine @ [*box["start"], 1])[:3], atol=1e-4)
        assert np.allclose(image.affine[:3, :3], ct.affine[:3, :3])
        heat = load_on_grid(folder / f"{organ}.nii.gz", ct.shape, ct.affine)
        assert np.array_equal(heat, expected.organs[organ].full_heatmap()), organ
        if heat.any():  # the crop holds every attention voxel and nothing more than its box
            assert np.prod(image.shape) < heat.size and (heat > 0).sum() == (np.asarray(image.dataobj) > 0).sum()
        summary = data["organs"][organ]
        assert summary["voxels"] == int((heat > 0).sum())
        assert summary["volume_ml"] == pytest.approx(summary["voxels"] * 1.5 * 1.5 * 2.5 / 1000)
        assert summary["hotspot_count"] == len(expected.organs[organ].hotspots) >= len(summary["hotspots"])
        for spot in summary["hotspots"]:
            assert set(spot) == {"voxels", "ml", "centroid", "centroid_mm", "bbox"}  # the platform's format
            start, stop = spot["bbox"]
            assert heat[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))].any()
            assert len(spot["centroid_mm"]) == 3
    assert data["total"]["voxels"] == expected.total_voxels > 0
    assert data["organ_order"][0] == max(data["organs"], key=lambda o: data["organs"][o]["voxels"])
    assert not [p for p in (case / "average").rglob("*") if p.name.startswith(".")]


def test_full_maps_keep_the_cts_grid(cases):
    root, made = cases
    case, ensemble = made[0]
    assert main(["attention", str(case), "--full-maps"]) == 0
    ct = load_nifti(case / "ct.nii.gz")
    expected = case_attention(ensemble.probs, spacing=(1.5, 1.5, 2.5))
    for organ in ("liver", "stomach"):
        image = nib.load(str(case / "average" / "attention" / f"{organ}.nii.gz"))
        assert image.shape == ct.shape and np.allclose(image.affine, ct.affine)
        assert np.array_equal(np.asarray(image.dataobj), expected.organs[organ].full_heatmap())


def test_attention_settings_from_the_command_line(cases):
    root, made = cases
    case = made[0][0]
    assert main(["attention", str(case), "--opening-mm", "5", "--entropy", "binary", "--std-threshold", "0.2",
                 "--max-hotspots", "1"]) == 0
    data = json.loads((case / "average" / "attention.json").read_text())
    assert data["opening_radius_voxels"] == [3, 3, 2]
    assert data["settings"]["entropy"] == "binary" and data["settings"]["std_threshold"] == 0.2
    assert all(len(o["hotspots"]) <= 1 for o in data["organs"].values())
    assert main(["attention", str(case), "--std-threshold", "-1"]) == 2


def test_rerun_replaces_the_old_maps_whole(cases):
    root, made = cases
    case = made[0][0]
    assert main(["attention", str(case)]) == 0
    stale = case / "average" / "attention" / "old_organ.nii.gz"
    stale.write_bytes(b"stale")
    assert main(["attention", str(case)]) == 0
    assert not stale.exists() and len(list((case / "average" / "attention").iterdir())) == len(ORGANS)


@pytest.mark.parametrize(("damage", "message"), [
    ("no_backbones", "backbones: missing"),
    ("missing_organ", "unet/soft_pred/liver.nii.gz: missing"),
    ("shape", "unet/soft_pred/spleen.nii.gz: shape"),
    ("affine", "unet/soft_pred/spleen.nii.gz: affine differs"),
    ("dtype", "found int16"),
    ("range", "outside [0, 1]"),
    ("corrupt", "unet/soft_pred/spleen.nii.gz: "),
    ("empty", "no soft predictions"),
])
def test_attention_refuses_bad_input_naming_the_file(tmp_path, capsys, damage, message):
    case, _ = write_case(tmp_path, 3, errors=())
    soft = case / "backbones" / "unet" / "soft_pred"
    affine = load_nifti(soft / "spleen.nii.gz").affine
    if damage == "no_backbones":
        import shutil

        shutil.rmtree(case / "backbones")
    elif damage == "missing_organ":
        (soft / "liver.nii.gz").unlink()
    elif damage == "shape":
        write_nifti(soft / "spleen.nii.gz", np.zeros((48, 48, 31), np.uint8), affine)
    elif damage == "affine":
        shifted = affine.copy()
        shifted[0, 3] += 5
        write_nifti(soft / "spleen.nii.gz", np.zeros((48, 48, 32), np.uint8), shifted)
    elif damage == "dtype":
        write_nifti(soft / "spleen.nii.gz", np.zeros((48, 48, 32), np.int16), affine)
    elif damage == "range":
        write_nifti(soft / "spleen.nii.gz", np.full((48, 48, 32), 2.0, np.float32), affine)
    elif damage == "corrupt":
        (soft / "spleen.nii.gz").write_bytes((soft / "spleen.nii.gz").read_bytes()[:100])
    elif damage == "empty":
        for arch in ARCHS:
            for f in (case / "backbones" / arch / "soft_pred").iterdir():
                f.unlink()
    assert main(["attention", str(case)]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (case / "average" / "attention").exists() and not (case / "average" / "attention.json").exists()
    assert not (case / "average").exists() or not list((case / "average").rglob("*"))  # no leftovers


def test_a_bad_case_does_not_stop_the_others(cases, capsys):
    root, made = cases
    assert main(["attention", str(root / "nope"), str(made[1][0])]) == 1
    assert "nope: no such case folder" in capsys.readouterr().err
    assert (made[1][0] / "average" / "attention.json").is_file()


def test_priority_ranks_cases_and_organs(cases, capsys, tmp_path):
    root, made = cases
    assert main(["priority", str(root), "--out", str(tmp_path / "p.csv")]) == 1
    assert "no average/attention.json" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()
    for case, _ in made:
        assert main(["attention", str(case)]) == 0
    capsys.readouterr()
    assert main(["priority", str(root), "--out", str(tmp_path / "p.csv")]) == 0
    assert "ranked 2 cases" in capsys.readouterr().out
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0][:3] == ["case", "total_ml", "organ_1"]
    assert [r[0] for r in rows[1:]] == ["case_0", "case_1"]  # injected errors: more attention
    data = json.loads((root / "case_0" / "average" / "attention.json").read_text())
    sizes = {o: v["volume_ml"] for o, v in data["organs"].items()}
    assert float(rows[1][1]) == pytest.approx(sum(sizes.values()))
    listed = [o for o in rows[1][2:] if o]
    assert listed == sorted((o for o in sizes if sizes[o] > 0), key=lambda o: -sizes[o])
    assert main(["priority", str(root), "--out", str(tmp_path / "v.csv"), "--by", "voxels"]) == 0
    rows = list(csv.reader((tmp_path / "v.csv").open()))
    assert rows[0][1] == "total_voxels" and int(rows[1][1]) == data["total"]["voxels"]


def test_priority_refuses_bad_roots(tmp_path, capsys):
    assert main(["priority", str(tmp_path / "missing"), "--out", str(tmp_path / "p.csv")]) == 1
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["priority", str(tmp_path / "empty"), "--out", str(tmp_path / "p.csv")]) == 1
    assert "no case folders" in capsys.readouterr().err
    bad = tmp_path / "bad" / "case" / "average"
    bad.mkdir(parents=True)
    (bad / "attention.json").write_text("{not json")
    assert main(["priority", str(tmp_path / "bad"), "--out", str(tmp_path / "p.csv")]) == 1
    assert "attention.json: not a readable" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_evaluate_with_attention_on_a_phantom(cases, capsys, tmp_path):
    root, made = cases
    case, ensemble = made[0]
    assert main(["attention", str(case)]) == 0
    pseudo = tmp_path / "pseudo"
    result = case_attention(ensemble.probs, spacing=(1.5, 1.5, 2.5))
    affine = load_nifti(case / "ct.nii.gz").affine
    for organ, r in result.organs.items():
        write_nifti(pseudo / f"{organ}.nii.gz", r.full(r.pseudo), affine, dtype=np.uint8)
    out_json = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["evaluate", "--pred", str(pseudo), "--ref", str(case / "segmentations"), "--attention",
                 str(case / "average" / "attention"), "--out", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "att_sens" in out and "stomach" in out and out.strip().splitlines()[-2].startswith("mean")
    data = json.loads(out_json.read_text())
    assert data["organs"]["liver"]["attention"]["detected_errors"] >= 1  # the bite
    assert data["organs"]["spleen"]["attention"]["sensitivity"] == 1.0  # the shifted boundary
    assert data["organs"]["stomach"]["tolerance_mm"] == 5.0 and data["organs"]["aorta"]["tolerance_mm"] == 2.0
    assert 0 < data["mean"]["dice"] < 1 and data["attention_mean"]["precision"] is not None


def test_evaluate_real_segmentations_through_a_label_map(ct_example, capsys, tmp_path):
    out_json = tmp_path / "eval.json"
    assert main(["evaluate", "--pred", str(ct_example / "seg_model_b.nii.gz"), "--ref",
                 str(ct_example / "seg_model_a.nii.gz"), "--label-map", "totalsegmentator",
                 "--tolerance", "liver=2", "--out", str(out_json)]) == 0
    data = json.loads(out_json.read_text())
    readme = {"spleen": 0.977, "kidney_right": 0.964, "kidney_left": 0.973, "gallbladder": 0.920, "liver": 0.981,
              "stomach": 0.954, "pancreas": 0.809, "aorta": 0.918, "postcava": 0.942}
    for organ, value in readme.items():
        assert data["organs"][organ]["dice"] == pytest.approx(value, abs=0.0006), organ
    assert data["organs"]["liver"]["tolerance_mm"] == 2.0 and data["spacing_mm"] == pytest.approx([3, 3, 3])
    fixture_map = REPO / "fixtures" / "label_maps" / "totalsegmentator.json"
    assert main(["evaluate", "--pred", str(ct_example / "seg_model_b.nii.gz"), "--ref",
                 str(ct_example / "seg_model_a.nii.gz"), "--label-map", str(fixture_map), "--organs", "pancreas",
                 "--out", str(out_json)]) == 0
    assert list(json.loads(out_json.read_text())["organs"]) == ["pancreas"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--tolerance", "liver"], "ORGAN=MM"),
    (["--organs", "heart"], "not in both"),
    (["--label-map", "missing.json"], "missing.json: not a readable JSON label map"),
])
def test_evaluate_refuses_bad_input(cases, capsys, tmp_path, extra, message):
    root, made = cases
    seg = made[0][0] / "segmentations"
    assert main(["evaluate", "--pred", str(seg), "--ref", str(seg), "--out", str(tmp_path / "e.json"), *extra]) == 1
    err = capsys.readouterr().err
    assert message in err and not (tmp_path / "e.json").exists()


def test_evaluate_refuses_mismatched_grids(tmp_path, capsys):
    a = tmp_path / "a.nii.gz"
    b = tmp_path / "b.nii.gz"
    write_nifti(a, np.ones((8, 8, 8), np.uint8), np.eye(4))
    write_nifti(b, np.ones((8, 8, 9), np.uint8), np.eye(4))
    assert main(["evaluate", "--pred", str(a), "--ref", str(b), "--out", str(tmp_path / "e.json")]) == 1
    assert "a.nii.gz: grid" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path / "none"), "--ref", str(b), "--out", str(tmp_path / "e.json")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_shows_progress_and_stays_free_of_the_web_stack(cases):
    root, made = cases
    result = subprocess.run([sys.executable, "-m", "ml_engine", "attention", str(made[1][0])], cwd=REPO,
                            capture_output=True, text=True, encoding="utf-8", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "attention case_1" in result.stderr  # the tqdm bar
    code = ("import sys, ml_engine.attention, ml_engine.metrics, ml_engine.attention.simulate; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "{'django', 'celery', 'rest_framework', 'annotation', 'atlas', 'torch'}]; print(bad)")
    check = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, encoding="utf-8",
                           timeout=60)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "[]"
