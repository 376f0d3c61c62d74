"""TotalSegmentator as an ensemble member, through its Python API, where the package and its weights are installed.

TotalSegmentator gives a hard multi-label map (the `total` task's class values), translated to organs by the shipped
`totalsegmentator` label map: its votes are 0 or 255, like imported predictions, but Atlas runs it on every case of
a round itself. Its weights cannot be downloaded by Atlas (workers may have no internet): an admin installs them
with TotalSegmentator's own `totalseg_download_weights -t total` (or `-t total_fast`) or `totalseg_import_weights`;
until then the member is refused with a message that says so.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ml_engine.ensemble import member_votes
from ml_engine.labels import LabelMap, OrganIndex, translate
from ml_engine.members.common import MemberError, MemberInfo, MemberSpec

# the nnU-Net datasets whose weights each task needs (TotalSegmentator's python_api fetches every one of them, and a
# missing one would be downloaded; no roi_subset, which would need the 6 mm model 298 as well)
TASKS = {"total": (291, 292, 293, 294, 295), "fast": (297,)}


def weights_dir() -> Path:
    """Where TotalSegmentator looks for its weights (its own rule: TOTALSEG_WEIGHTS_PATH, else
    TOTALSEG_HOME_DIR or ~/.totalsegmentator, then nnunet/results)."""
    if "TOTALSEG_WEIGHTS_PATH" in os.environ:
        return Path(os.environ["TOTALSEG_WEIGHTS_PATH"])
    home = Path(os.environ["TOTALSEG_HOME_DIR"]) if "TOTALSEG_HOME_DIR" in os.environ else (
        Path("/tmp") if str(Path.home()) == "/" else Path.home()) / ".totalsegmentator"
    return home / "nnunet" / "results"


def inspect(spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None) -> MemberInfo:
    if spec.task not in TASKS:
        raise MemberError(f"TotalSegmentator task {spec.task!r}: choose from {', '.join(TASKS)}")
    if importlib.util.find_spec("totalsegmentator") is None:
        raise MemberError("the TotalSegmentator package is not installed on this machine (pip install "
                          "TotalSegmentator, then its weights); a TotalSegmentator member runs only where both are")
    folder = weights_dir()
    missing = [d for d in TASKS[spec.task] if not folder.is_dir() or not any(folder.glob(f"Dataset{d}_*"))]
    if missing:
        names = ", ".join(f"Dataset{d}_*" for d in missing)
        raise MemberError(f"TotalSegmentator's weights for task {spec.task!r} ({names}) are not in {folder}; install "
                          f"them with `totalseg_download_weights -t {'total_fast' if spec.task == 'fast' else 'total'}`"
                          " where there is internet, or "
                          "`totalseg_import_weights`, then register again (Atlas never downloads weights)")
    mapping = label_map or LabelMap.load("totalsegmentator", organs)
    covered = {value: organs.organ_of(target) for value, target in mapping.values.items() if target}
    if not covered:
        raise MemberError(f"{mapping.source}: maps no TotalSegmentator class to an organ of the label set")
    return MemberInfo(classes={v: organs.organ_of(t) for v, t in mapping.values.items() if t}, organ_of=covered,
                      detail={"task": spec.task, "weights": str(folder)})


class TotalSegmentatorMember:
    """TotalSegmentator loaded on this machine: votes(ct, affine) -> {organ: (x, y, z) uint8 0 or 255}."""

    def __init__(self, spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None, *,
                 device: str | None = None):
        self.info = inspect(spec, organs, label_map)
        import torch

        self.spec, self.organs = spec, organs
        self.mapping = label_map or LabelMap.load("totalsegmentator", organs)
        self.device = device or ("gpu" if torch.cuda.is_available() else "cpu")

    def votes(self, ct: np.ndarray, affine: np.ndarray) -> dict[str, np.ndarray]:
        import nibabel as nib
        from totalsegmentator.python_api import totalsegmentator

        image = totalsegmentator(nib.Nifti1Image(np.asarray(ct), affine), None, ml=True,
                                 fast=self.spec.task == "fast", task="total", device=self.device, quiet=True)
        label = np.asarray(image.dataobj)
        if label.shape != tuple(ct.shape):
            raise MemberError(f"TotalSegmentator returned a label of shape {label.shape} for a CT of {ct.shape}")
        converted, _ = translate(label, self.organs, self.mapping)
        return member_votes(converted, self.organs.values, self.info.organs)
