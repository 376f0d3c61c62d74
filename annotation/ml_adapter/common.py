"""What training and inference share: a case's CT, a stored label and the organs it covers, the shipped and
stored checkpoints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from annotation.models import Case, ModelVersion
from annotation.selectors.labels import LabelRef
from annotation.storage import local_copy, read_volume, read_voxels
from ml_engine.train.checkpoint import Checkpoint, load_checkpoint

SHIPPED_CHECKPOINTS = Path(settings.BASE_DIR) / "ml_engine" / "checkpoints"


def load_case_volume(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The case's CT (x, y, z) and affine (4, 4), read from storage."""
    volume = read_volume(case.ct_file.name)
    return np.asarray(volume.data), volume.affine


def read_label(ref: LabelRef, organs: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A stored label (selectors.labels.LabelRef) as (x, y, z) uint8 and the organs of `organs` it covers."""
    return read_voxels(ref.name), covered_organs(ref, organs)


def covered_organs(ref: LabelRef, organs: Sequence[str]) -> list[str]:
    """The organs of `organs` that a stored label covers."""
    return list(organs) if ref.organs is None else [o for o in organs if o in ref.organs]


def shipped_checkpoint(arch: str, size: str) -> Path | None:
    path = SHIPPED_CHECKPOINTS / f"{arch}_{size}.pt"
    return path if path.is_file() else None


def load_model(version: ModelVersion) -> Checkpoint:
    with local_copy(version.checkpoint.name) as path:
        return load_checkpoint(path)
