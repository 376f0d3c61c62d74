"""Partial-label loss, checkpoints (round trip, refusal of pickled objects), a short training run, fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ml_engine.io import CheckpointError
from ml_engine.networks import build_network
from ml_engine.phantoms import ORGANS, make_phantom
from ml_engine.predict import Predictor
from ml_engine.train import (
    Checkpoint,
    TrainConfig,
    load_checkpoint,
    make_train_case,
    masked_dice_bce_loss,
    sample_patch,
    save_checkpoint,
    train,
)

pytestmark = pytest.mark.slow  # trains networks

SHAPE = (32, 32, 32)
SPACING = (4.5, 4.5, 4.5)  # the phantom's anatomy fills the field of view; 32^3 at 4.5 mm
PATCH = (32, 32, 32)
LIVER = ORGANS.index("liver")


def _cases(n: int, seed: int = 0, organs=ORGANS):
    out = []
    for i in range(n):
        p = make_phantom(seed + i, shape=SHAPE, spacing=SPACING, troubles=())
        masks = {o: p.labels == ORGANS.index(o) + 1 for o in organs}
        out.append(make_train_case(p.name, p.ct, p.affine, masks, ORGANS, SPACING))
    return out


def _checkpoint(arch="unet", organs=ORGANS) -> Checkpoint:
    torch.manual_seed(0)
    model = build_network(arch, len(organs), "tiny")
    return Checkpoint(arch=arch, size="tiny", organs=tuple(organs), spacing=SPACING, hu_window=(-175.0, 250.0),
                      patch=PATCH if arch != "swin_unetr" else (64, 64, 32), state=model.state_dict(),
                      training_cases=["a", "b"], metrics={"loss_last": 0.5})


def test_liver_only_case_leaves_other_organs_gradients_at_zero():
    torch.manual_seed(0)
    model = build_network("unet", len(ORGANS), "tiny")
    x = torch.rand(2, 1, *PATCH)
    target = (torch.rand(2, len(ORGANS), *PATCH) > 0.5).float()
    labelled = torch.zeros(2, len(ORGANS), dtype=torch.bool)
    labelled[:, LIVER] = True
    logits = model(x)
    logits.retain_grad()
    masked_dice_bce_loss(logits, target, labelled).backward()
    others = [c for c in range(len(ORGANS)) if c != LIVER]
    assert torch.count_nonzero(logits.grad[:, others]) == 0
    assert torch.count_nonzero(logits.grad[:, LIVER]) > 0
    # the output convolution's weights and biases of every other organ get no gradient either
    last = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    assert last.out_channels == len(ORGANS)
    assert torch.count_nonzero(last.weight.grad[others]) == 0 and torch.count_nonzero(last.bias.grad[others]) == 0
    assert torch.count_nonzero(last.weight.grad[LIVER]) > 0


def test_loss_mixes_cases_by_their_own_organs():
    logits = torch.zeros(2, 3, 4, 4, 4, requires_grad=True)
    target = torch.zeros(2, 3, 4, 4, 4)
    labelled = torch.tensor([[True, False, False], [False, False, True]])
    masked_dice_bce_loss(logits, target, labelled).backward()
    grad = logits.grad.abs().sum(dim=(2, 3, 4))
    assert (grad[labelled] > 0).all() and (grad[~labelled] == 0).all()
    assert masked_dice_bce_loss(logits, target, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_partial_case_records_its_organs():
    case = _cases(1, organs=["liver", "spleen"])[0]
    assert case.labelled.tolist() == [o in ("liver", "spleen") for o in ORGANS]
    assert case.labels[ORGANS.index("aorta")].max() == 0 and case.labels[LIVER].max() == 1
    rng = np.random.default_rng(0)
    image, labels = sample_patch(case, (16, 16, 16), rng, fg_probability=1.0)
    assert image.shape == (16, 16, 16) and labels.shape == (9, 16, 16, 16)
    assert labels[[LIVER, 0]].any()  # centred on an organ it labels


def test_checkpoint_round_trip(tmp_path):
    ckpt = _checkpoint()
    path = save_checkpoint(tmp_path / "m.pt", ckpt)
    back = load_checkpoint(path)
    assert (back.arch, back.size, back.organs, back.spacing, back.patch) == ("unet", "tiny", ORGANS, SPACING, PATCH)
    assert back.training_cases == ["a", "b"] and back.metrics == {"loss_last": 0.5} and back.hu_window == (-175, 250)
    for key, value in ckpt.state.items():
        assert torch.equal(back.state[key], value)
    half = load_checkpoint(save_checkpoint(tmp_path / "h.pt", ckpt, half=True))
    assert half.state["model.0.conv.unit0.conv.weight"].dtype == torch.float16
    assert half.build().training is False


def test_checkpoint_of_another_organ_list_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "liver.pt", _checkpoint(organs=("liver", "spleen")))
    with pytest.raises(CheckpointError, match=r"liver\.pt: organs liver, spleen differ"):
        load_checkpoint(path, organs=ORGANS)


class Exploit:
    """An object whose unpickling would run code (writes a file)."""

    marker = None

    def __reduce__(self):
        return (open, (str(Exploit.marker), "w"))


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    Exploit.marker = tmp_path / "pwned"
    payload = _checkpoint().to_payload()
    payload["metrics"] = Exploit()
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused"):
        load_checkpoint(path)
    assert not Exploit.marker.exists()


def test_bad_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="not an Atlas checkpoint"):
        load_checkpoint(other)
    wrong = _checkpoint().to_payload()
    wrong["arch"] = "nnunet"
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(tmp_path / "wrong.pt")


@pytest.fixture(scope="module")
def trained():
    cases = _cases(3)
    config = TrainConfig(arch="unet", size="tiny", organs=ORGANS, patch=PATCH, spacing=SPACING, batch=2, lr=5e-3,
                         steps=60, seed=0, progress_seconds=0)
    seen = []
    ckpt = train(cases, config, progress=lambda done, total, loss: seen.append((done, total, loss)))
    return cases, ckpt, seen


def test_short_training_learns(trained):
    _, ckpt, seen = trained
    assert [s[0] for s in seen] == list(range(1, 61)) and seen[-1][1] == 60
    assert ckpt.metrics["loss_last"] < 0.8 * ckpt.metrics["loss_first"]
    assert ckpt.training_cases == ["phantom_00000", "phantom_00001", "phantom_00002"] or len(ckpt.training_cases) == 3
    # a held-out phantom: prediction overlaps the organs better than chance (the same masks shuffled)
    p = make_phantom(99, shape=SHAPE, spacing=SPACING, troubles=())
    label, masks = Predictor([ckpt]).predict_masks(p.ct, p.affine)
    assert label.shape == p.ct.shape
    rng = np.random.default_rng(0)
    real, chance = [], []
    for c, organ in enumerate(ORGANS):
        truth = p.labels == c + 1
        for pred, out in ((masks[organ], real), (rng.permutation(masks[organ].ravel()).reshape(SHAPE), chance)):
            total = pred.sum() + truth.sum()
            out.append(2 * np.logical_and(pred, truth).sum() / total if total else 1.0)
    assert np.mean(real) > np.mean(chance) + 0.1
    assert real[LIVER] > 0.6


def test_same_seed_same_weights():
    cases = _cases(1)
    config = TrainConfig(arch="unet", organs=ORGANS, patch=(16, 16, 16), spacing=SPACING, batch=1, steps=3, seed=5)
    a, b = train(cases, config), train(cases, config)
    for key in a.state:
        assert torch.equal(a.state[key], b.state[key])


def test_fine_tuning_keeps_the_parent_and_records_it(trained):
    cases, parent, _ = trained
    parent.name = "m0.pt"
    child = train(cases[:1], TrainConfig(arch="nnunet", steps=2, batch=1, lr=1e-3), init=parent)
    assert (child.arch, child.organs, child.spacing, child.patch) == ("unet", ORGANS, SPACING, PATCH)
    assert child.parent == "m0.pt" and child.training_cases == [cases[0].name]


def test_training_refuses_unlabelled_data():
    cases = _cases(1, organs=[])
    with pytest.raises(ValueError, match="none of the cases"):
        train(cases, TrainConfig(arch="unet", organs=ORGANS, patch=PATCH, spacing=SPACING, steps=1))
