"""AbdomenAtlas case folders and ensemble outputs (used by ml_engine.train / predict and the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml_engine.io.errors import ImageError
from ml_engine.io.nifti import Volume, load_nifti, nifti_stem, same_geometry


@dataclass
class AtlasCase:
    """One case of an AbdomenAtlas folder: the CT and the organ masks it has files for (x, y, z bool each)."""

    name: str
    folder: Path
    ct: Volume
    masks: dict[str, np.ndarray]


def find_atlas_cases(root: str | os.PathLike) -> list[Path]:
    """Case folders (holding ct.nii.gz) directly under root, sorted; [root] when root itself is a case."""
    root = Path(root)
    if not root.is_dir():
        raise ImageError(root, "no such folder")
    if (root / "ct.nii.gz").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "ct.nii.gz").is_file())


def load_atlas_case(folder: str | os.PathLike, organs: tuple[str, ...] | list[str]) -> AtlasCase:
    """Read folder/ct.nii.gz and folder/segmentations/<organ>.nii.gz for the organs that have a file.

    A mask must share the CT's shape and affine; ImageError naming the file otherwise. Files of organs outside
    organs are ignored.
    """
    folder = Path(folder)
    ct = load_nifti(folder / "ct.nii.gz")
    masks: dict[str, np.ndarray] = {}
    for organ in organs:
        path = folder / "segmentations" / f"{organ}.nii.gz"
        if not path.is_file():
            continue
        mask = load_nifti(path, allow_float=True)
        if mask.shape != ct.shape:
            raise ImageError(path, f"shape {mask.shape} differs from the CT's {ct.shape}")
        if not same_geometry(mask.affine, ct.affine):
            raise ImageError(path, "affine differs from the CT's")
        masks[organ] = np.asarray(mask.data) > 0.5
    return AtlasCase(name=folder.name, folder=folder, ct=ct, masks=masks)


def soft_pred_path(case_dir: str | os.PathLike, member: str, organ: str) -> Path:
    """CASE/backbones/<member>/soft_pred/<organ>.nii.gz (uint8, p x 255)."""
    return Path(case_dir) / "backbones" / member / "soft_pred" / f"{organ}.nii.gz"


def average_mask_path(case_dir: str | os.PathLike, organ: str) -> Path:
    """CASE/average/segmentations/<organ>.nii.gz (uint8 0/1, ensemble mean probability > 0.5)."""
    return Path(case_dir) / "average" / "segmentations" / f"{organ}.nii.gz"


def pseudo_label_path(case_dir: str | os.PathLike) -> Path:
    """CASE/average/pseudo_label.nii.gz (uint8 multi-label map, values 1..n in the model's organ order)."""
    return Path(case_dir) / "average" / "pseudo_label.nii.gz"


def list_soft_preds(case_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """{member: {organ: path}} of the soft predictions under CASE/backbones/."""
    found: dict[str, dict[str, Path]] = {}
    base = Path(case_dir) / "backbones"
    if not base.is_dir():
        return found
    for member in sorted(p for p in base.iterdir() if (p / "soft_pred").is_dir()):
        files = {nifti_stem(f): f for f in sorted((member / "soft_pred").glob("*.nii.gz"))}
        if files:
            found[member.name] = files
    return found
