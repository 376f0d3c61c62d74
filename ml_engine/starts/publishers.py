"""What each publisher's checkpoint is: how its file nests the weights, which network and hyper-parameters go with
it, and its output classes. Read from the publishers' own code and configs (search tool), recorded here as data:

- SuPreM (MrGiovanni/SuPreM, Li, Yuille, Zhou, ICLR 2024): `supervised_pretraining/train.py` saves
  {"net": model.state_dict(), "optimizer", "scheduler", "epoch"} of a DistributedDataParallel model, so every key
  starts with `module.`; the Universal model nests its backbone under `backbone.` beside the dynamic head
  (`precls_conv`, `GAP`, `controller`, `text_to_vision`, `organ_embedding`). Its fine-tuning code
  (`target_applications/*/train.py`) strips `module.` (and `backbone.`), drops the output layers and builds
  Swin UNETR with feature size 48 or its 3D U-Net; SegResNet is MONAI's with init_filters 16, blocks_down
  (1, 2, 2, 4), blocks_up (1, 1, 1), under `module.`. Training: 96^3 patches at 1.5 mm, window -175..250 HU scaled
  to 0..1, RAS, AdamW lr 1e-4, sigmoid per class (BCE + Dice); the 25 classes of AbdomenAtlas 1.1 in the order of
  `dataset/dataloader_bdmap.py` (channel k = class k + 1 here: aorta, gall_bladder, kidney_left, ...).
- MONAI Model Zoo bundles (Project-MONAI/model-zoo): `configs/inference.json` names the network (`network_def`),
  its preprocessing (`Spacingd` pixdim, `ScaleIntensityRanged` window), the sliding window (`inferer.roi_size`) and
  the output activation (`Activationsd` softmax); `configs/metadata.json` lists the output channels
  (`network_data_format.outputs.pred.channel_def`, 0 = background), the references and the copyright; the weights
  are `models/model.pt`, a state dict (or {"model": state dict} as MONAI's CheckpointSaver writes several objects).
  Read here as data only: no `_target_` is instantiated, no expression evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ml_engine.io import CheckpointError, load_checkpoint_payload

FORMATS = ("suprem", "monai-bundle", "atlas")
MAX_CONFIG_BYTES = 1 << 20  # a bundle's inference config or metadata: JSON, at most 1 MiB
SUPREM_CLASSES = ("aorta", "gall_bladder", "kidney_left", "kidney_right", "liver", "pancreas", "postcava", "spleen",
                  "stomach", "adrenal_gland_left", "adrenal_gland_right", "bladder", "celiac_trunk", "colon",
                  "duodenum", "esophagus", "femur_left", "femur_right", "hepatic_vessel", "intestine", "lung_left",
                  "lung_right", "portal_vein_and_splenic_vein", "prostate", "rectum")
SUPREM_SWIN = {"family": "suprem_swin_unetr", "feature_size": 48, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24],
               "window_size": 7, "use_v2": False, "lr": 1e-4}
SUPREM_UNET = {"family": "suprem_unet3d", "lr": 1e-4}
SUPREM_SEGRESNET = {"family": "segresnet", "init_filters": 16, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1],
                    "lr": 1e-4}
SUPREM_PROVENANCE = {
    "source": "SuPreM, supervised pre-training on AbdomenAtlas 1.1 (9,262 CTs, 25 classes), "
              "https://github.com/MrGiovanni/SuPreM",
    "licence": "MIT (the SuPreM repository's LICENSE, Copyright (c) 2023 Zongwei Zhou); the weights were trained on "
               "AbdomenAtlas 1.1, whose data terms apply: check them before use",
    "citation": "Li W, Yuille A, Zhou Z. How Well Do Supervised 3D Models Transfer to Medical Imaging Tasks? "
                "ICLR 2024.",
}


@dataclass
class Published:
    """A published checkpoint read from its file: flat weights (prefixes stripped), the network and preprocessing
    its publisher used, its classes {value: name} (background left out) and how its outputs are activated."""

    format: str
    state: dict
    network: dict
    patch: tuple[int, int, int]
    spacing: tuple[float, float, float]
    hu_window: tuple[float, float]
    classes: dict[int, str]
    activation: str  # "sigmoid" (one output per class) or "softmax" (channel 0 background)
    channel_offset: int = 0  # output channel of class value v: v - channel_offset
    provenance: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def strip_prefix(state: dict, prefix: str = "module.") -> dict:
    """Keys without a leading prefix (DistributedDataParallel's `module.`), when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def _tensors(raw: object, path: Path, *, keys: tuple[str, ...]) -> dict:
    import torch

    for key in keys:
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            raw = raw[key]
            break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise CheckpointError(path, f"no state dict of tensors found (looked under {', '.join(keys)} and the top)")
    return raw


def read_suprem(path: Path) -> Published:
    """A SuPreM checkpoint: {"net" (or "state_dict"): weights with `module.` prefixes, ...}."""
    state = strip_prefix(_tensors(load_checkpoint_payload(path), path, keys=("net", "state_dict", "model")))
    if any(k.startswith("backbone.swinViT.") for k in state):
        network = dict(SUPREM_SWIN)
    elif any(k.startswith("backbone.down_tr64.") for k in state):
        network = dict(SUPREM_UNET)
    elif "convInit.conv.weight" in state:
        network = dict(SUPREM_SEGRESNET)
    else:
        raise CheckpointError(path, "not a SuPreM checkpoint: no Universal model backbone (backbone.swinViT., "
                                    "backbone.down_tr64.) and no SegResNet (convInit) keys")
    return Published(format="suprem", state=state, network=network, patch=(96, 96, 96), spacing=(1.5, 1.5, 1.5),
                     hu_window=(-175.0, 250.0), classes={k + 1: n for k, n in enumerate(SUPREM_CLASSES)},
                     activation="sigmoid", channel_offset=1, provenance=dict(SUPREM_PROVENANCE))


def read_json(path: Path) -> dict:
    """A bundle's JSON config under MAX_CONFIG_BYTES; CheckpointError naming the file otherwise."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CheckpointError(path, "missing; a MONAI bundle holds configs/inference.json, configs/metadata.json "
                                    "and models/model.pt") from exc
    if size > MAX_CONFIG_BYTES:
        raise CheckpointError(path, f"{size} bytes: larger than the {MAX_CONFIG_BYTES} a config may have")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(path, f"not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(path, "expected a JSON object")
    return raw


def bundle_folder(path: Path) -> Path:
    """The bundle folder for a folder or its models/model.pt."""
    path = Path(path)
    if path.is_file() and path.parent.name == "models":
        return path.parent.parent
    return path


def _transform(config: dict, target: str) -> dict:
    pre = config.get("preprocessing") or {}
    for t in pre.get("transforms", []) if isinstance(pre, dict) else []:
        if isinstance(t, dict) and str(t.get("_target_", "")).split(".")[-1] == target:
            return t
    return {}


def bundle_classes(metadata: dict, source: Path) -> tuple[dict[int, str], bool]:
    """({channel: name} without background, whether channel 0 is background) from metadata.json's output."""
    try:
        channels = metadata["network_data_format"]["outputs"]["pred"]["channel_def"]
        classes = {int(k): str(v) for k, v in channels.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(source, "no network_data_format.outputs.pred.channel_def {channel: name}") from exc
    background = str(classes.get(0, "")).strip().lower() in ("background", "bg")
    return {k: v for k, v in classes.items() if not (k == 0 and background)}, background


def bundle_provenance(folder: Path, metadata: dict) -> dict:
    """Source, licence and citation a bundle says about itself: metadata.json (name, version, authors, copyright,
    references, data_source) and the first line of its LICENSE file."""
    licence = ""
    for name in ("LICENSE", "LICENSE.txt", "docs/LICENSE"):
        path = folder / name
        if path.is_file():
            with open(path, encoding="utf-8", errors="replace") as handle:
                licence = next((line.strip() for line in handle.read(4096).splitlines() if line.strip()), "")
            break
    refs = metadata.get("references") or []
    title = metadata.get("name") or metadata.get("task") or folder.name
    return {"source": f"MONAI bundle {title} {metadata.get('version', '')}".strip()
            + (f" ({metadata.get('authors')}; data: {metadata.get('data_source')})" if metadata.get("authors") else ""),
            "licence": licence or str(metadata.get("copyright") or ""),
            "citation": "; ".join(str(r) for r in refs) if isinstance(refs, list) else str(refs)}


def read_bundle(path: Path) -> Published:
    """A MONAI bundle (its folder, or its models/model.pt): weights, network and preprocessing from its configs."""
    folder = bundle_folder(path)
    config = read_json(folder / "configs" / "inference.json")
    metadata = read_json(folder / "configs" / "metadata.json")
    weights = folder / "models" / "model.pt"
    state = strip_prefix(_tensors(load_checkpoint_payload(weights), weights, keys=("model", "state_dict", "net")))
    net = config.get("network_def") or {}
    target = str(net.get("_target_", "")).split(".")[-1] if isinstance(net, dict) else ""
    if target == "SwinUNETR":
        network = {"family": "swin_unetr", "feature_size": int(net.get("feature_size", 24)),
                   "depths": list(net.get("depths", (2, 2, 2, 2))), "num_heads": list(net.get("num_heads",
                                                                                             (3, 6, 12, 24))),
                   "window_size": int(net.get("window_size", 7)), "use_v2": bool(net.get("use_v2", False))}
    elif target == "SegResNet":
        network = {"family": "segresnet", "init_filters": int(net.get("init_filters", 8)),
                   "blocks_down": list(net.get("blocks_down", (1, 2, 2, 4))),
                   "blocks_up": list(net.get("blocks_up", (1, 1, 1)))}
    else:
        raise CheckpointError(folder / "configs" / "inference.json",
                              f"network_def {target or '?'}: a start takes a SwinUNETR or SegResNet bundle (other "
                              "bundles can join as members: register_member --kind monai-bundle)")
    spacing = _transform(config, "Spacingd").get("pixdim") or [1.5, 1.5, 1.5]
    scale = _transform(config, "ScaleIntensityRanged")
    roi = (config.get("inferer") or {}).get("roi_size") or [96, 96, 96]
    classes, background = bundle_classes(metadata, folder / "configs" / "metadata.json")
    try:
        return Published(format="monai-bundle", state=state, network=network,
                         patch=tuple(int(v) for v in roi), spacing=tuple(float(v) for v in spacing),
                         hu_window=(float(scale.get("a_min", -175)), float(scale.get("a_max", 250))),
                         classes=classes, activation="softmax" if background else "sigmoid",
                         provenance=bundle_provenance(folder, metadata))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(folder / "configs" / "inference.json",
                              f"roi_size, pixdim or the intensity window is not numeric ({exc})") from exc
