"""An nnU-Net v2 trained model folder as an ensemble member, run by nnunetv2's own predictor (nnUNetPredictor:
its preprocessing, sliding window, Gaussian weighting and mirroring TTA), returning per-class probabilities.

The folder is the one nnUNetv2_train writes: nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION with
dataset.json, plans.json and fold_N/checkpoint_final.pth. Checkpoints are read with torch.load(weights_only=True),
allowing only the NumPy scalar types nnU-Net stores beside the weights (no arbitrary objects are unpickled).

Arrays: the CT (x, y, z) in NIfTI voxel order with its affine; nnU-Net works on (c, z, y, x) with spacing (z, y, x),
which is what its SimpleITK reader makes of the same file, so the probabilities come back on the CT's own grid.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np

from ml_engine.io import spacing_from_affine
from ml_engine.labels import LabelMap, OrganIndex
from ml_engine.members.common import MemberError, MemberInfo, MemberSpec, map_classes, organ_votes

_FOLD = re.compile(r"^fold_(\d+|all)$")


def _require_package() -> None:
    if importlib.util.find_spec("nnunetv2") is None:
        raise MemberError("nnunetv2 is not installed on this machine (pip install nnunetv2); an nnU-Net v2 member "
                          "runs where it is")


def _read_json(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MemberError(f"{path}: missing; an nnU-Net v2 trained model folder holds dataset.json, plans.json and "
                          "fold_N/checkpoint_final.pth") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MemberError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise MemberError(f"{path}: expected a JSON object")
    return raw


def model_classes(dataset: dict, source: Path) -> tuple[dict[int, str], bool]:
    """({class value: name}, region based) from an nnU-Net v2 dataset.json's labels {name: value or [values]}.

    Background (value 0) is left out. For region-based models (a label given as a list of values) the classes are
    the regions, numbered 1, 2, ... in the file's order: the sigmoid output channels.
    """
    labels = dataset.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise MemberError(f"{source}: no 'labels' object")
    regions = any(isinstance(v, list | tuple) for v in labels.values())
    classes: dict[int, str] = {}
    if regions:
        foreground = [name for name, v in labels.items() if not (isinstance(v, int) and v == 0)]
        return {k + 1: str(name) for k, name in enumerate(foreground)}, True
    for name, value in labels.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MemberError(f"{source}: label {name!r} has value {value!r}; nnU-Net v2 gives name: integer")
        if value > 0:
            classes[value] = str(name)
    return classes, False


def _folds(folder: Path, spec: MemberSpec) -> list[str]:
    found = sorted((m.group(1) for p in folder.iterdir() if p.is_dir() and (m := _FOLD.match(p.name))
                    and (p / spec.checkpoint).is_file()), key=lambda f: (f == "all", f.zfill(4)))
    if spec.folds:
        missing = [f for f in spec.folds if f not in found]
        if missing:
            raise MemberError(f"{folder}: no {spec.checkpoint} for fold {', '.join(missing)} (found: "
                              f"{', '.join(found) or 'none'})")
        return list(spec.folds)
    numbered = [f for f in found if f != "all"]
    if numbered:  # nnU-Net's own default: every numbered fold, as an ensemble
        return numbered
    if found:
        return found
    raise MemberError(f"{folder}: no fold_N/{spec.checkpoint}; is this an nnU-Net v2 trained model folder "
                      "(nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIGURATION)?")


def inspect(spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None) -> MemberInfo:
    _require_package()
    folder = Path(spec.folder)
    if not folder.is_dir():
        raise MemberError(f"{folder}: no such folder")
    dataset = _read_json(folder / "dataset.json")
    plans = _read_json(folder / "plans.json")
    folds = _folds(folder, spec)
    channels = dataset.get("channel_names") or dataset.get("modality") or {}
    if len(channels) != 1:
        raise MemberError(f"{folder / 'dataset.json'}: the model takes {len(channels)} input channels; Atlas runs "
                          "single-channel CT models")
    classes, regions = model_classes(dataset, folder / "dataset.json")
    organ_of = map_classes(classes, organs, label_map, source=str(folder))
    parts = folder.name.split("__")
    return MemberInfo(classes=classes, organ_of=organ_of, detail={
        "dataset": plans.get("dataset_name") or folder.parent.name, "trainer": parts[0],
        "plans": parts[1] if len(parts) == 3 else plans.get("plans_name"),
        "configuration": parts[2] if len(parts) == 3 else None, "folds": folds, "regions": regions,
        "channel": str(next(iter(channels.values())))})


def _load_checkpoint(path: Path) -> dict:
    """An nnU-Net checkpoint without unpickling arbitrary objects: only NumPy scalars are allowed beside tensors."""
    import torch

    allowed = [np.dtype, np._core.multiarray.scalar, *(getattr(np.dtypes, n) for n in dir(np.dtypes)
                                                         if n.endswith("DType"))]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises plain RuntimeError / UnpicklingError
        raise MemberError(f"{path}: not a loadable nnU-Net checkpoint ({str(exc).splitlines()[0]})") from exc


class NnUNetMember:
    """An nnU-Net v2 model loaded once: votes(ct, affine) -> {organ: (x, y, z) uint8 p x 255}."""

    def __init__(self, spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None, *,
                 device: str | None = None):
        self.info = inspect(spec, organs, label_map)
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        folder = Path(spec.folder)
        chosen = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dataset = _read_json(folder / "dataset.json")
        plans = PlansManager(_read_json(folder / "plans.json"))
        checkpoints = [_load_checkpoint(folder / f"fold_{f}" / spec.checkpoint) for f in self.info.detail["folds"]]
        first = checkpoints[0]
        configuration = plans.get_configuration(first["init_args"]["configuration"])
        trainer = _trainer_class(first["trainer_name"], nnUNetTrainer)
        network = trainer.build_network_architecture(
            plans, configuration, determine_num_input_channels(plans, configuration, dataset),
            plans.get_label_manager(dataset).num_segmentation_heads, enable_deep_supervision=False)
        try:
            network.load_state_dict(first["network_weights"])
        except RuntimeError as exc:
            raise MemberError(f"{folder}: the weights do not fit the network its plans describe "
                              f"({str(exc).splitlines()[0]})") from exc
        self.predictor = nnUNetPredictor(tile_step_size=spec.tile_step_size, use_gaussian=True,
                                         use_mirroring=spec.use_mirroring,
                                         perform_everything_on_device=chosen.type == "cuda", device=chosen,
                                         verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        self.predictor.manual_initialization(network, plans, configuration,
                                             [c["network_weights"] for c in checkpoints], dataset,
                                             first["trainer_name"], first.get("inference_allowed_mirroring_axes"))
        self.regions = bool(self.info.detail["regions"])

    def probabilities(self, ct: np.ndarray, affine: np.ndarray) -> dict[int, np.ndarray]:
        """{class value: (x, y, z) float32 probability} on the CT's grid (background left out)."""
        spacing = list(spacing_from_affine(affine))
        image = np.ascontiguousarray(np.asarray(ct, dtype=np.float32).transpose(2, 1, 0)[None])
        _, probs = self.predictor.predict_single_npy_array(image, {"spacing": spacing[::-1]}, None, None, True)
        probs = np.asarray(probs, dtype=np.float32).transpose(0, 3, 2, 1)
        if probs.shape[1:] != tuple(ct.shape):
            raise MemberError(f"nnU-Net returned probabilities of shape {probs.shape[1:]} for a CT of {ct.shape}")
        offset = 1 if self.regions else 0  # softmax: channel = class value; regions: channel k = region k + 1
        return {c + offset: probs[c] for c in range(probs.shape[0]) if c + offset in self.info.classes}

    def votes(self, ct: np.ndarray, affine: np.ndarray) -> dict[str, np.ndarray]:
        return organ_votes(self.probabilities(ct, affine), self.info.organ_of)


def _trainer_class(name: str, default):
    """The checkpoint's trainer class (it builds the network), found as nnU-Net finds it; when it cannot be found
    or imported here, nnUNetTrainer's network (what every trainer variant that keeps the architecture builds):
    load_state_dict then checks that the weights fit it."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    if name == default.__name__:
        return default
    try:
        return recursive_find_trainer_class_by_name(name)
    except Exception:  # noqa: BLE001 - not installed here, or an unrelated trainer module fails to import
        return default
