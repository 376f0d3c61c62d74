"""Predictor and ensemble on the real CT example, the AbdomenAtlas output layout, external members, the CLI."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from ml_engine.__main__ import main
from ml_engine.ensemble import member_votes
from ml_engine.labels import ABDOMENATLAS, LabelMap, translate
from ml_engine.networks import ARCHITECTURES, build_network
from ml_engine.phantoms import ORGANS, generate_dataset
from ml_engine.predict import Predictor
from ml_engine.train import Checkpoint, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # runs the ensemble

SHIPPED = Path(__file__).resolve().parents[2] / "ml_engine" / "checkpoints"
SPACING = (4.5, 4.5, 4.5)


def _checkpoint(arch: str, organs=ORGANS) -> Checkpoint:
    torch.manual_seed(1)
    model = build_network(arch, len(organs), "tiny")
    patch = (64, 64, 32) if arch == "swin_unetr" else (32, 32, 32)
    return Checkpoint(arch=arch, size="tiny", organs=tuple(organs), spacing=SPACING, hu_window=(-175.0, 250.0),
                      patch=patch, state=model.state_dict())


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    """Three untrained tiny checkpoints, one per architecture."""
    folder = tmp_path_factory.mktemp("models")
    return [save_checkpoint(folder / f"{arch}.pt", _checkpoint(arch)) for arch in ARCHITECTURES]


def test_predictor_on_real_ct_returns_maps_on_its_grid(ct_example, models):
    ct = nib.load(str(ct_example / "ct.nii.gz"))
    data = np.asarray(ct.dataobj)
    predictor = Predictor([load_checkpoint(p) for p in models])
    stages = []
    result = predictor.predict(data, ct.affine, progress=lambda stage, done, total: stages.append(stage))
    assert stages[:3] == list(ARCHITECTURES) and stages[-1] == "done"
    assert all(p.dtype == np.uint8 and p.shape[0] == len(ORGANS) for p in result.probabilities)
    # the network grid is small: coarse spacing, cropped to the body
    assert np.prod(result.probabilities[0].shape[1:]) < np.prod(data.shape)
    organs = list(result.iter_organs())
    assert [o.organ for o in organs] == list(ORGANS)
    for out in organs:
        assert set(out.soft) == set(ARCHITECTURES)
        for soft in out.soft.values():
            assert soft.shape == data.shape and soft.dtype == np.uint8
        assert out.mean.shape == data.shape and out.mask.dtype == bool
    assert result.pseudo_label.shape == data.shape and result.pseudo_label.dtype == np.uint8
    assert result.pseudo_label.max() <= len(ORGANS)


def test_predictor_refuses_mixed_organ_lists():
    with pytest.raises(ValueError, match="differ"):
        Predictor([_checkpoint("unet"), _checkpoint("unet", organs=("liver",))])


def test_external_predictions_from_real_segmentations(ct_example):
    seg = np.asarray(nib.load(str(ct_example / "seg_model_a.nii.gz")).dataobj)
    totalseg = LabelMap.load("totalsegmentator", ABDOMENATLAS)
    label, present = translate(seg, ABDOMENATLAS, totalseg)
    assert present == set(ORGANS)
    soft = member_votes(label, ABDOMENATLAS.values, ORGANS)
    for foreign, value in totalseg.values.items():
        organ = ABDOMENATLAS.organ_of(value)
        assert set(np.unique(soft[organ])) <= {0, 255}
        np.testing.assert_array_equal(soft[organ] == 255, seg == foreign)
    assert (soft["postcava"] == 255).sum() == (seg == 63).sum() > 0


def test_cli_infer_and_external_members(ct_example, models, tmp_path):
    out = tmp_path / "case"
    ct_path = ct_example / "ct.nii.gz"
    ct = nib.load(str(ct_path))
    assert main(["infer", "--ct", str(ct_path), "--models", *map(str, models), "--out", str(out)]) == 0
    for arch in ARCHITECTURES:
        for organ in ORGANS:
            image = nib.load(str(out / "backbones" / arch / "soft_pred" / f"{organ}.nii.gz"))
            assert image.shape == ct.shape and image.get_data_dtype() == np.uint8
            np.testing.assert_allclose(image.affine, ct.affine, atol=1e-5)
    label = nib.load(str(out / "average" / "pseudo_label.nii.gz"))
    assert label.shape == ct.shape and label.get_data_dtype() == np.uint8
    assert len(list((out / "average" / "segmentations").glob("*.nii.gz"))) == len(ORGANS)
    # the two real models join as members; the average is recomputed over all five
    for name in ("model_a", "model_b"):
        assert main(["external", "--seg", str(ct_example / f"seg_{name}.nii.gz"), "--name", f"totalseg_{name}",
                     "--label-map", "totalsegmentator", "--ct", str(ct_path), "--out", str(out)]) == 0
    members = sorted(p.name for p in (out / "backbones").iterdir())
    assert members == sorted([*ARCHITECTURES, "totalseg_model_a", "totalseg_model_b"])
    spleen = np.asarray(nib.load(str(out / "backbones" / "totalseg_model_b" / "soft_pred" / "spleen.nii.gz")).dataobj)
    assert set(np.unique(spleen)) == {0, 255}


def test_cli_external_alone_averages_the_two_real_models(ct_example, tmp_path):
    out = tmp_path / "case"
    for name in ("model_a", "model_b"):
        assert main(["external", "--seg", str(ct_example / f"seg_{name}.nii.gz"), "--name", name,
                     "--out", str(out)]) == 0
    a = np.asarray(nib.load(str(ct_example / "seg_model_a.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(ct_example / "seg_model_b.nii.gz")).dataobj)
    liver = np.asarray(nib.load(str(out / "average" / "segmentations" / "liver.nii.gz")).dataobj)
    # two members: mean > 0.5 where both say liver
    np.testing.assert_array_equal(liver.astype(bool), (a == 5) & (b == 5))


def test_cli_errors_name_the_file(ct_example, models, tmp_path, capsys):
    assert main(["infer", "--ct", str(tmp_path / "absent.nii.gz"), "--models", str(models[0]),
                 "--out", str(tmp_path / "o")]) == 1
    assert "absent.nii.gz: no such file" in capsys.readouterr().err
    other = save_checkpoint(tmp_path / "liver_only.pt", _checkpoint("unet", organs=("liver",)))
    assert main(["infer", "--ct", str(ct_example / "ct.nii.gz"), "--models", str(models[0]), str(other),
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "liver_only.pt: organs liver differ" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    assert main(["external", "--seg", str(ct_example / "seg_model_a.nii.gz"), "--name", "x",
                 "--label-map", str(tmp_path / "nope.json"), "--out", str(tmp_path / "o")]) == 1
    assert "nope.json" in capsys.readouterr().err
    liver_only = tmp_path / "liver_only.json"
    liver_only.write_text('{"labels": {"5": "liver"}}')  # "unmapped": "error" by default
    assert main(["external", "--seg", str(ct_example / "seg_model_a.nii.gz"), "--name", "x",
                 "--label-map", str(liver_only), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "seg_model_a.nii.gz: label values 1, 2, 3" in err and "are not in" in err and "liver_only.json" in err
    assert not (tmp_path / "o").exists()


def test_cli_train_and_fine_tune_on_partial_labels(tmp_path, capsys):
    data = tmp_path / "data"
    generate_dataset(data, n=2, seed=3, shape=(32, 32, 32), spacing=SPACING, organs=["liver", "spleen"])
    model = tmp_path / "m0.pt"
    assert main(["train", "--data", str(data), "--arch", "unet", "--out", str(model), "--steps", "2"]) == 0
    m0 = load_checkpoint(model)
    assert m0.arch == "unet" and m0.organs == ORGANS and len(m0.training_cases) == 2 and m0.parent is None
    child = tmp_path / "m1.pt"
    assert main(["train", "--data", str(data), "--init", str(model), "--out", str(child), "--epochs", "1"]) == 0
    m1 = load_checkpoint(child)
    assert m1.parent == "m0.pt" and m1.metrics["steps"] == 1
    capsys.readouterr()
    assert main(["train", "--data", str(tmp_path / "none"), "--arch", "unet", "--out", str(tmp_path / "x.pt")]) == 1
    assert "none: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


def test_shipped_checkpoints_load_with_metadata():
    for arch in ARCHITECTURES:
        path = SHIPPED / f"{arch}_tiny.pt"
        assert path.stat().st_size < 12 * 2**20
        ckpt = load_checkpoint(path, organs=ORGANS)
        assert ckpt.arch == arch and ckpt.size == "tiny" and len(ckpt.training_cases) >= 20
        assert ckpt.metrics["loss_last"] < ckpt.metrics["loss_first"]
