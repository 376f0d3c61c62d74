"""A MONAI bundle (a MONAI Model Zoo folder, or a group's own) as an ensemble member, run by its own inference
config through MONAI's ConfigParser: its `network_def`, `preprocessing` and `inferer`, the weights of
`models/model.pt` (torch.load(weights_only=True)), then its probabilities (softmax when channel 0 is background,
else sigmoid) inverted onto the CT's grid by MONAI's Invertd over the same preprocessing. The output channels and
their names come from `configs/metadata.json` (network_data_format.outputs.pred.channel_def); a label map sends them
to organs, as for an nnU-Net v2 member.

A bundle's config may instantiate any Python object (`_target_`) and evaluate expressions (`$...`): a registered
bundle is trusted code, chosen by the operator; only the admin's command `register_member` registers one. Nothing is
downloaded: the folder is the one the group downloaded, at the same path on every worker.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ml_engine.io import CheckpointError, load_checkpoint_payload, write_nifti
from ml_engine.labels import LabelMap, OrganIndex
from ml_engine.members.common import MemberError, MemberInfo, MemberSpec, map_classes, organ_votes
from ml_engine.starts.publishers import bundle_classes, bundle_provenance, read_json, strip_prefix


def _configs(folder: Path) -> tuple[dict, dict, Path]:
    if not folder.is_dir():
        raise MemberError(f"{folder}: no such folder")
    try:
        config = read_json(folder / "configs" / "inference.json")
        metadata = read_json(folder / "configs" / "metadata.json")
    except CheckpointError as exc:
        raise MemberError(str(exc)) from exc
    weights = folder / "models" / "model.pt"
    if not weights.is_file():
        raise MemberError(f"{weights}: missing; a MONAI bundle keeps its weights in models/model.pt")
    for key in ("network_def", "preprocessing", "inferer"):
        if key not in config:
            raise MemberError(f"{folder / 'configs' / 'inference.json'}: no {key!r}; Atlas runs a bundle's "
                              "network_def, preprocessing and inferer")
    return config, metadata, weights


def inspect(spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None) -> MemberInfo:
    folder = Path(spec.folder)
    config, metadata, _ = _configs(folder)
    try:
        classes, background = bundle_classes(metadata, folder / "configs" / "metadata.json")
    except CheckpointError as exc:
        raise MemberError(str(exc)) from exc
    organ_of = map_classes(classes, organs, label_map, source=str(folder))
    net = config.get("network_def") or {}
    return MemberInfo(classes=classes, organ_of=organ_of, detail={
        "bundle": metadata.get("name") or folder.name, "version": str(metadata.get("version", "")),
        "network": str(net.get("_target_", "")) if isinstance(net, dict) else "",
        "activation": "softmax" if background else "sigmoid",
        "provenance": bundle_provenance(folder, metadata)})


class BundleMember:
    """A bundle loaded once: votes(ct (x, y, z), affine (4, 4)) -> {organ: (x, y, z) uint8 p x 255}."""

    def __init__(self, spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None, *,
                 device: str | None = None):
        import torch
        from monai.bundle import ConfigParser

        self.info = inspect(spec, organs, label_map)
        folder = Path(spec.folder)
        _, _, weights = _configs(folder)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        parser = ConfigParser()
        parser.read_config(str(folder / "configs" / "inference.json"))
        parser.read_meta(str(folder / "configs" / "metadata.json"))
        parser["bundle_root"] = str(folder)
        parser["device"] = f"$torch.device('{self.device}')"
        try:
            network = parser.get_parsed_content("network_def", instantiate=True)
            self.preprocessing = parser.get_parsed_content("preprocessing", instantiate=True)
            self.inferer = parser.get_parsed_content("inferer", instantiate=True)
        except Exception as exc:  # noqa: BLE001 - a bundle's config fails in its own ways
            raise MemberError(f"{folder}: its inference config does not run here ({str(exc).splitlines()[0][:200]})"
                              ) from exc
        raw = load_checkpoint_payload(weights)
        state = raw.get("model") if isinstance(raw.get("model"), dict) else raw
        try:
            network.load_state_dict(strip_prefix(state))
        except RuntimeError as exc:
            raise MemberError(f"{weights}: the weights do not fit the bundle's network_def "
                              f"({str(exc).splitlines()[0][:200]})") from exc
        self.network = network.to(self.device).eval()
        self.softmax = self.info.detail["activation"] == "softmax"

    def probabilities(self, ct: np.ndarray, affine: np.ndarray) -> dict[int, np.ndarray]:
        """{channel: (x, y, z) float32} on the CT's grid, for the channels the bundle names (background left out)."""
        import torch
        from monai.transforms import Invertd

        with tempfile.TemporaryDirectory(prefix="atlas-bundle-") as tmp:
            path = write_nifti(Path(tmp) / "ct.nii.gz", np.asarray(ct, dtype=np.float32), affine)
            data = self.preprocessing({"image": str(path)})
            with torch.no_grad():
                logits = self.inferer(data["image"][None].to(self.device), self.network)
            probs = torch.softmax(logits, 1) if self.softmax else torch.sigmoid(logits)
            data["pred"] = probs[0].float().cpu()
            restored = Invertd(keys="pred", transform=self.preprocessing, orig_keys="image",
                               nearest_interp=False)(data)["pred"]
        out = np.asarray(restored, dtype=np.float32)
        if out.shape[1:] != tuple(ct.shape):
            raise MemberError(f"the bundle returned probabilities of shape {out.shape[1:]} for a CT of {ct.shape}")
        return {c: out[c] for c in self.info.classes if c < out.shape[0]}

    def votes(self, ct: np.ndarray, affine: np.ndarray) -> dict[str, np.ndarray]:
        return organ_votes(self.probabilities(ct, affine), self.info.organ_of)
