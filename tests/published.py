"""Checkpoints in the publishers' formats, generated here (the real weights cannot be downloaded): the same nesting,
key layout, `module.` prefixes and metadata as the publishers' code writes them, with random values.

- SuPreM: `supervised_pretraining/train.py` saves {"net": DDP model.state_dict(), "optimizer", "scheduler",
  "epoch"}; the Universal model holds `backbone` (MONAI's Swin UNETR v1 with feature size 48 and 25 outputs, or the
  3D U-Net), `precls_conv`, `GAP`, `controller`, the `organ_embedding` buffer (25 x 512 text encodings) and
  `text_to_vision`. Its SegResNet is MONAI's (init_filters 16), saved the same way. The modules here are built
  from torch and MONAI directly (the U-Net's keys and shapes from its channel rule), not from the engine's loader.
- MONAI bundle: made with MONAI's own bundle tooling (monai.bundle.init_bundle writes configs/, models/model.pt,
  LICENSE), with an inference.json in the Model Zoo's form and a metadata.json with channel_def.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

SUPREM_CLASSES = 25


class _DDP(nn.Module):
    """Stands for DistributedDataParallel: its state dict prefixes every key with `module.`."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module


def _universal(backbone: nn.Module, decoder: int, bottleneck: int) -> nn.Module:
    m = nn.Module()
    m.backbone = backbone
    m.precls_conv = nn.Sequential(nn.GroupNorm(16, decoder), nn.ReLU(inplace=True), nn.Conv3d(decoder, 8, 1))
    m.GAP = nn.Sequential(nn.GroupNorm(16, bottleneck), nn.ReLU(inplace=True), nn.AdaptiveAvgPool3d((1, 1, 1)),
                          nn.Conv3d(bottleneck, 256, 1))
    m.controller = nn.Conv3d(512, 8 * 8 + 8 * 8 + 8 + 8 + 8 + 1, 1)
    m.register_buffer("organ_embedding", torch.randn(SUPREM_CLASSES, 512))
    m.text_to_vision = nn.Linear(512, 256)
    return m


def _save_suprem(path: Path, model: nn.Module, epoch: int = 2100) -> Path:
    wrapped = _DDP(model)
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=1e-4, weight_decay=1e-5)
    scheduler = {"warmup_epochs": 20, "max_epochs": 2100, "base_lrs": [1e-4], "last_epoch": epoch,
                 "_step_count": epoch + 1, "_last_lr": [1e-6]}
    torch.save({"net": wrapped.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler,
                "epoch": epoch}, path)
    return path


def suprem_swin_unetr(path: Path) -> Path:
    from monai.networks.nets import SwinUNETR

    torch.manual_seed(1)
    backbone = SwinUNETR(in_channels=1, out_channels=SUPREM_CLASSES, feature_size=48)
    return _save_suprem(path, _universal(backbone, 48, 768))


def _unet3d_state() -> dict[str, torch.Tensor]:
    """SuPreM's 3D U-Net keys and shapes by its channel rule: level d's convs give 32 * 2**d then twice that going
    down; the up levels take the transposed convolution's output concatenated with the skip."""
    state: dict[str, torch.Tensor] = {}

    def block(prefix: str, c_in: int, c_out: int) -> None:
        state[f"{prefix}.conv1.weight"] = torch.randn(c_out, c_in, 3, 3, 3) * (2.0 / (27 * c_in)) ** 0.5
        state[f"{prefix}.conv1.bias"] = torch.zeros(c_out)
        state[f"{prefix}.bn1.weight"] = torch.ones(c_out)
        state[f"{prefix}.bn1.bias"] = torch.zeros(c_out)
        state[f"{prefix}.bn1.running_mean"] = torch.zeros(c_out)
        state[f"{prefix}.bn1.running_var"] = torch.ones(c_out)
        state[f"{prefix}.bn1.num_batches_tracked"] = torch.tensor(1000)

    c_in = 1
    for depth, name in enumerate(("down_tr64", "down_tr128", "down_tr256", "down_tr512")):
        width = 32 * 2 ** depth
        block(f"{name}.ops.0", c_in, width)
        block(f"{name}.ops.1", width, width * 2)
        c_in = width * 2
    for depth, name, up in ((2, "up_tr256", 512), (1, "up_tr128", 256), (0, "up_tr64", 128)):
        state[f"{name}.up_conv.weight"] = torch.randn(up, up, 2, 2, 2) * 0.02
        state[f"{name}.up_conv.bias"] = torch.zeros(up)
        width = 32 * 2 ** (depth + 1)
        block(f"{name}.ops.0", up + up // 2, width)
        block(f"{name}.ops.1", width, width)
    state["out_tr.final_conv.weight"] = torch.randn(1, 64, 1, 1, 1)
    state["out_tr.final_conv.bias"] = torch.zeros(1)
    return state


class _StateHolder(nn.Module):
    def __init__(self, state: dict[str, torch.Tensor]):
        super().__init__()
        self._state = state

    def state_dict(self, *args, destination=None, prefix="", keep_vars=False):  # noqa: D102
        out = {} if destination is None else destination
        out.update({prefix + k: v for k, v in self._state.items()})
        return out


def suprem_unet(path: Path) -> Path:
    torch.manual_seed(2)
    return _save_suprem(path, _universal(_StateHolder(_unet3d_state()), 64, 512))


def suprem_segresnet(path: Path) -> Path:
    from monai.networks.nets import SegResNet

    torch.manual_seed(3)
    net = SegResNet(blocks_down=[1, 2, 2, 4], blocks_up=[1, 1, 1], init_filters=16, in_channels=1,
                    out_channels=SUPREM_CLASSES, dropout_prob=0.0)
    return _save_suprem(path, net)


BTCV_CHANNELS = {"0": "background", "1": "spleen", "2": "Right Kidney", "3": "Left Kideny", "4": "Gallbladder",
                 "5": "Esophagus", "6": "Liver", "7": "Stomach", "8": "Aorta", "9": "IVC",
                 "10": "Portal and Splenic Veins", "11": "Pancreas", "12": "Right adrenal gland",
                 "13": "Left adrenal gland"}


def bundle(folder: Path, *, network_def: dict, network: nn.Module, roi: int = 96, pixdim=(1.5, 1.5, 2.0),
           channels: dict[str, str] = BTCV_CHANNELS, name: str = "test_bundle") -> Path:
    """A bundle folder as MONAI's bundle tooling lays it out, with a Model Zoo style inference.json."""
    from monai.bundle import init_bundle

    inference = {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".", "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "network_def": network_def, "network": "$@network_def.to(@device)",
        "preprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
            {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
            {"_target_": "Spacingd", "keys": "image", "pixdim": list(pixdim), "mode": "bilinear"},
            {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": -175, "a_max": 250, "b_min": 0.0,
             "b_max": 1.0, "clip": True},
            {"_target_": "EnsureTyped", "keys": "image"}]},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [roi] * 3, "sw_batch_size": 1, "overlap": 0.25},
        "postprocessing": {"_target_": "Compose", "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
             "nearest_interp": False, "to_tensor": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True}]},
    }
    metadata = {
        "version": "0.1.0", "name": name, "task": "abdominal organ segmentation (test)", "authors": "Atlas tests",
        "copyright": "Copyright (c) Atlas tests", "data_source": "phantoms",
        "references": ["A test bundle, not a published model."],
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1}},
            "outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": len(channels),
                                 "channel_def": channels}}},
    }
    ckpt = folder.parent / f"{folder.name}-weights.pt"
    torch.save(network.state_dict(), ckpt)
    init_bundle(str(folder), ckpt_file=str(ckpt), network=None, metadata_str=json.dumps(metadata),
                inference_str=json.dumps(inference))
    ckpt.unlink()
    (folder / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")  # as Model Zoo bundles ship
    return folder
