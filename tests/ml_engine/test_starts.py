"""Starts from published weights (issue 28, item 1): each publisher's format, generated here (tests/published.py),
read by the real loading code: every key mapped, the head filled through the label map (re-initialised where no class
lands), a forward pass, a fine-tune step, and the start's weights reaching the network. Small patches, one thread."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ml_engine.io import CheckpointError
from ml_engine.labels import ABDOMENATLAS, LabelMap
from ml_engine.phantoms import ORGANS, make_phantom
from ml_engine.starts import convert_start
from ml_engine.starts.families import HEAD_KEYS
from ml_engine.train import TrainConfig, make_train_case, train
from ml_engine.train.checkpoint import load_checkpoint, save_checkpoint
from tests import published

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]
SUPREM_MAP = LabelMap.load("suprem", ABDOMENATLAS)
BTCV_MAP = LabelMap.load("btcv", ABDOMENATLAS)
PATCH = (32, 32, 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("published")
    return {"swin": published.suprem_swin_unetr(root / "supervised_suprem_swinunetr_2100.pth"),
            "unet": published.suprem_unet(root / "supervised_suprem_unet_2100.pth"),
            "segresnet": published.suprem_segresnet(root / "supervised_suprem_segresnet_2100.pth"),
            "root": root}


def raw_net(path):
    return {k.removeprefix("module."): v for k, v in torch.load(path, weights_only=True)["net"].items()}


def phantom_case():
    p = make_phantom(3, shape=(40, 40, 32), spacing=(3.0, 3.0, 3.0), troubles=())
    return make_train_case(p.name, p.ct, p.affine, {o: p.labels == i + 1 for i, o in enumerate(ORGANS)}, ORGANS,
                           (3.0, 3.0, 3.0))


def check_forward_and_step(checkpoint, step_patch=PATCH):
    """A forward pass and one fine-tune step at step_patch (Swin UNETR's instance norms need more than one voxel at
    its bottleneck: 64 along one axis)."""
    model = checkpoint.build()
    with torch.no_grad():
        out = model(torch.rand(1, 1, *step_patch))
    assert out.shape == (1, len(ORGANS), *step_patch) and torch.isfinite(out).all()
    tuned = train([phantom_case()], TrainConfig(arch=checkpoint.arch, organs=ORGANS, steps=1, batch=1, patch=step_patch,
                                                spacing=(3.0, 3.0, 3.0)), init=checkpoint)
    assert tuned.network == checkpoint.network and tuned.patch == step_patch and tuned.spacing == checkpoint.spacing
    assert np.isfinite(tuned.metrics["loss_last"])
    changed = [k for k, v in tuned.state.items() if v.is_floating_point() and not torch.equal(v, checkpoint.state[k])]
    assert changed  # the step moved the weights
    return model


def test_suprem_swin_unetr_every_key_mapped_and_the_head_through_the_label_map(files, tmp_path):
    ckpt, report = convert_start(files["swin"], arch="swin_unetr", format="suprem", organs=ABDOMENATLAS,
                                 label_map=SUPREM_MAP)
    source = raw_net(files["swin"])
    # every key of the network comes from the file, but the buffers Swin UNETR computes and the head
    assert len(report.copied) + len(report.computed) + len(HEAD_KEYS["suprem_swin_unetr"]) == report.target_keys
    assert all("relative_position_index" in k for k in report.computed)
    # the only weights left behind: the backbone's output layer, which SuPreM's forward never uses
    assert report.dropped == ["backbone.out.conv.conv.bias", "backbone.out.conv.conv.weight"]
    for key in report.copied:
        theirs = key.replace("backbone.net.", "backbone.", 1)
        assert torch.equal(ckpt.state[key], source[theirs]), key
    # the label map applied: organ k's class embedding is SuPreM's row of its class (aorta is channel 0, ...)
    channel = {"aorta": 0, "gallbladder": 1, "kidney_left": 2, "kidney_right": 3, "liver": 4, "pancreas": 5,
               "postcava": 6, "spleen": 7, "stomach": 8}
    for i, organ in enumerate(ckpt.organs):
        assert torch.equal(ckpt.state["organ_embedding"][i], source["organ_embedding"][channel[organ]]), organ
    assert report.organs_reinitialised == [] and report.head == "class rows"
    assert ckpt.spacing == (1.5, 1.5, 1.5) and ckpt.patch == (96, 96, 96) and ckpt.hu_window == (-175.0, 250.0)
    assert ckpt.network["family"] == "suprem_swin_unetr" and ckpt.network["feature_size"] == 48
    # the start's weights reach the network: same output as a direct load, not as a fresh network
    saved = load_checkpoint(save_checkpoint(tmp_path / "start.pt", ckpt))
    x = torch.rand(1, 1, 64, 32, 32)
    with torch.no_grad():
        direct, fresh = saved.build()(x), type(saved)(**{**saved.__dict__, "state": saved.make().state_dict()})
        assert torch.allclose(ckpt.build()(x), direct)
        assert not torch.allclose(fresh.build()(x), direct)
    check_forward_and_step(saved, (64, 32, 32))


def test_suprem_swin_unetr_head_reinitialised_for_organs_no_class_maps_to(files):
    values = {str(v): None for v in range(1, 26)} | {"5": "liver", "8": "spleen"}
    partial = LabelMap.parse({"labels": values, "unmapped": "background"}, ABDOMENATLAS, source="partial")
    ckpt, report = convert_start(files["swin"], arch="swin_unetr", format="suprem", organs=ABDOMENATLAS,
                                 label_map=partial)
    assert report.organs_from_classes == {"spleen": "spleen", "liver": "liver"}
    assert set(report.organs_reinitialised) == set(ORGANS) - {"liver", "spleen"}
    source = raw_net(files["swin"])["organ_embedding"]
    kidney = ckpt.organs.index("kidney_left")
    assert not any(torch.equal(ckpt.state["organ_embedding"][kidney], row) for row in source)


def test_suprem_unet_every_key_mapped(files):
    ckpt, report = convert_start(files["unet"], arch="unet", format="suprem", organs=ABDOMENATLAS,
                                 label_map=SUPREM_MAP)
    assert report.computed == [] and len(report.copied) + 1 == report.target_keys
    assert report.dropped == ["backbone.out_tr.final_conv.bias", "backbone.out_tr.final_conv.weight"]
    source = raw_net(files["unet"])
    assert all(torch.equal(ckpt.state[k], source[k]) for k in report.copied)
    assert ckpt.network["family"] == "suprem_unet3d"
    check_forward_and_step(ckpt)


def test_suprem_segresnet_takes_the_nnunet_slot_with_its_class_rows(files):
    ckpt, report = convert_start(files["segresnet"], arch="nnunet", format="suprem", organs=ABDOMENATLAS,
                                 label_map=SUPREM_MAP)
    source = raw_net(files["segresnet"])
    assert report.dropped == [] and len(report.copied) + 2 == report.target_keys
    liver = ckpt.organs.index("liver")
    assert torch.equal(ckpt.state["conv_final.2.conv.weight"][liver], source["conv_final.2.conv.weight"][4])
    check_forward_and_step(ckpt)


def test_monai_bundle_swin_unetr_softmax_head_becomes_odds_against_background(tmp_path):
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(4)
    net = SwinUNETR(in_channels=1, out_channels=14, feature_size=12)
    folder = published.bundle(tmp_path / "swin_unetr_btcv_segmentation", network=net, roi=32, network_def={
        "_target_": "SwinUNETR", "spatial_dims": 3, "in_channels": 1, "out_channels": 14, "feature_size": 12,
        "use_checkpoint": False})
    ckpt, report = convert_start(folder / "models" / "model.pt", arch="swin_unetr", format="monai-bundle",
                                 organs=ABDOMENATLAS, label_map=BTCV_MAP)
    source = net.state_dict()
    assert report.dropped == [] and report.head == "softmax rows minus background"
    assert ckpt.spacing == (1.5, 1.5, 2.0) and ckpt.patch == PATCH and ckpt.network["feature_size"] == 12
    w = source["out.conv.conv.weight"]
    liver = ckpt.organs.index("liver")  # BTCV channel 6
    assert torch.allclose(ckpt.state["out.conv.conv.weight"][liver], w[6] - w[0])
    # on one voxel, sigmoid of the new logit is the softmax's liver odds against background
    x = torch.rand(1, 1, 64, 32, 32)
    with torch.no_grad():
        theirs, ours = net(x), ckpt.build()(x)
    assert torch.allclose(ours[:, liver], theirs[:, 6] - theirs[:, 0], atol=1e-4)
    check_forward_and_step(ckpt, (64, 32, 32))


def test_bad_files_are_refused_naming_the_file(files, tmp_path):
    with pytest.raises(CheckpointError, match="supervised_suprem_segresnet_2100.pth.*cannot take the swin_unetr"):
        convert_start(files["segresnet"], arch="swin_unetr", format="suprem", organs=ABDOMENATLAS,
                      label_map=SUPREM_MAP)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"net": {"x": __import__("os").system}}))
    with pytest.raises(CheckpointError, match="evil.pth"):
        convert_start(evil, arch="unet", format="suprem", organs=ABDOMENATLAS, label_map=SUPREM_MAP)
    other = tmp_path / "other.pth"
    torch.save({"net": {"module.layer.weight": torch.zeros(2)}}, other)
    with pytest.raises(CheckpointError, match="other.pth: not a SuPreM checkpoint"):
        convert_start(other, arch="unet", format="suprem", organs=ABDOMENATLAS, label_map=SUPREM_MAP)
    cut = tmp_path / "cut.pth"
    state = torch.load(files["segresnet"], weights_only=True)
    del state["net"]["module.convInit.conv.weight"]
    state["net"]["module.convInit.conv.weight"] = torch.zeros(3)
    torch.save(state, cut)
    with pytest.raises(CheckpointError, match="cut.pth: convInit.conv.weight: shape"):
        convert_start(cut, arch="nnunet", format="suprem", organs=ABDOMENATLAS, label_map=SUPREM_MAP)


def test_monai_bundle_segresnet_and_an_atlas_checkpoint_as_starts(tmp_path):
    from monai.networks.nets import SegResNet

    torch.manual_seed(6)
    net = SegResNet(spatial_dims=3, in_channels=1, out_channels=14, init_filters=8)
    folder = published.bundle(tmp_path / "segresnet_bundle", network=net, roi=32, network_def={
        "_target_": "SegResNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 14, "init_filters": 8})
    ckpt, report = convert_start(folder, arch="nnunet", format="monai-bundle", organs=ABDOMENATLAS,
                                 label_map=BTCV_MAP)
    assert report.dropped == [] and ckpt.network == {"family": "segresnet", "init_filters": 8,
                                                     "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1]}
    spleen = ckpt.organs.index("spleen")
    w = net.state_dict()["conv_final.2.conv.weight"]
    assert torch.allclose(ckpt.state["conv_final.2.conv.weight"][spleen], w[1] - w[0])
    check_forward_and_step(ckpt)
    # an Atlas checkpoint (another group's, or this one saved) starts the same slot as it is
    saved = save_checkpoint(tmp_path / "atlas.pt", ckpt)
    again, report = convert_start(saved, arch="nnunet", format="atlas", organs=ABDOMENATLAS, label_map=None)
    assert report.format == "atlas" and all(torch.equal(again.state[k], v) for k, v in ckpt.state.items())
    with pytest.raises(CheckpointError, match="atlas.pt: an Atlas nnunet checkpoint cannot start unet"):
        convert_start(saved, arch="unet", format="atlas", organs=ABDOMENATLAS, label_map=None)
