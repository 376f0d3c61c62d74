"""Label files checked against their CT, and translated through ml_engine.labels (the one label vocabulary: label
sets, aliases, the label map format and its parser).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ml_engine import labels as vocabulary
from ml_engine.io import ImageError, Volume, same_geometry
from ml_engine.labels import LabelMap, LabelMapError, OrganIndex, listing, present_values

__all__ = ["LabelMap", "LabelMapError", "OrganIndex", "binary_mask", "check_same_grid", "convert_multilabel",
           "integer_labels", "present_values"]


def check_same_grid(label: Volume, ct: Volume, path: Path) -> None:
    """A label must lie on its CT's grid: same shape and the same affine (within 1e-3 mm)."""
    if label.shape != ct.shape:
        raise ImageError(path, f"label shape {label.shape} differs from the CT's {ct.shape}")
    if not same_geometry(label.affine, ct.affine):
        worst = float(np.abs(label.affine - ct.affine).max())
        raise ImageError(path, f"label affine differs from the CT's (by up to {worst:.4g} mm)")


def integer_labels(label: Volume, path: Path) -> np.ndarray:
    """The label's voxels as a non-negative integer array (ml_engine.labels.integer_labels); ImageError naming path."""
    try:
        return vocabulary.integer_labels(label.data)
    except LabelMapError as exc:
        raise ImageError(path, str(exc)) from exc


def convert_multilabel(label: Volume, ct: Volume, path: Path, *, organs: OrganIndex,
                       label_map: LabelMap | None) -> tuple[np.ndarray, set[str]]:
    """A multi-label segmentation -> (x, y, z) uint8 map in the label set's values, and the organs present.

    Without a label map its values must already be the label set's; with one, they are translated and
    unlisted non-zero values are an error unless the map says "unmapped": "background".
    """
    check_same_grid(label, ct, path)
    try:
        return vocabulary.translate(label.data, organs, label_map)
    except LabelMapError as exc:
        raise ImageError(path, str(exc)) from exc


def binary_mask(label: Volume, ct: Volume, path: Path) -> np.ndarray:
    """A per-organ mask file (AbdomenAtlas segmentations/<organ>.nii.gz) -> (x, y, z) uint8 of 0 and 1."""
    check_same_grid(label, ct, path)
    data = integer_labels(label, path)
    if data.size and data.max() > 1:
        extra = [int(v) for v in present_values(data) if v != 1]
        raise ImageError(path, f"expected a binary mask of 0 and 1, found values {listing(extra)}")
    return data.astype(np.uint8, copy=False)
