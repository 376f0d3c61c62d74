"""A preprocessed training case: the CT resampled and windowed, one mask per organ, and which organs it labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ml_engine.networks import HU_WINDOW
from ml_engine.preprocess import prepare_image, prepare_masks


@dataclass
class TrainCase:
    """A preprocessed case. image: (x, y, z) float32 in [0, 1]; labels: (C, x, y, z) uint8 0/1;
    labelled: (C,) bool, the organs this case's labels cover (an unlabelled organ's channel is all zero and unused).
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    labelled: np.ndarray
    _fg: list[np.ndarray | None] = field(default_factory=list, repr=False)

    def foreground(self, channel: int) -> np.ndarray | None:
        """Flat indices of the voxels of organ channel (computed once), None when unlabelled or empty."""
        if not self._fg:
            self._fg = [np.flatnonzero(self.labels[c]) if self.labelled[c] else None
                        for c in range(self.labels.shape[0])]
            self._fg = [f if f is not None and f.size else None for f in self._fg]
        return self._fg[channel]


def make_train_case(name: str, ct: np.ndarray, affine: np.ndarray, masks: dict[str, np.ndarray],
                    organs: Sequence[str], spacing: Sequence[float], *,
                    hu_window: Sequence[float] = HU_WINDOW) -> TrainCase:
    """Preprocess one case: ct (x, y, z) HU with affine (4, 4), masks {organ: (x, y, z) bool} for the organs it labels.

    Organs of masks outside organs are ignored; organs without a mask are unlabelled for this case.
    """
    image, spec = prepare_image(ct, affine, spacing, hu_window=hu_window)
    labelled = np.array([organ in masks for organ in organs], dtype=bool)
    stack = np.zeros((len(organs), *ct.shape), dtype=np.uint8)
    for c, organ in enumerate(organs):
        if organ in masks:
            if masks[organ].shape != ct.shape:
                raise ValueError(f"{name}: mask of {organ} has shape {masks[organ].shape}, the CT {ct.shape}")
            stack[c] = masks[organ]
    labels = prepare_masks(stack, spec)
    return TrainCase(name=name, image=image, labels=labels, labelled=labelled)


def _pad_to(case: TrainCase, patch: Sequence[int]) -> TrainCase:
    """Pad image and labels (centred, with zeros) so that every side is at least the patch's."""
    pad = [max(0, int(p) - s) for p, s in zip(patch, case.image.shape, strict=True)]
    if not any(pad):
        return case
    widths = [(p // 2, p - p // 2) for p in pad]
    image = np.pad(case.image, widths)
    labels = np.pad(case.labels, [(0, 0), *widths])
    return TrainCase(name=case.name, image=image, labels=labels, labelled=case.labelled)
