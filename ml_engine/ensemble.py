"""How members combine into a pseudo-label: the one rule, used by the `infer` and `external` commands and by the
platform (annotation.ml_adapter). NumPy only.

A member is a network (its sigmoid probabilities quantised to uint8, p x 255) or another tool's hard label map (its
votes, 0 or 255 per organ: `member_votes`). Each organ is averaged over the members that predict it, so organs may
have different member counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MAX_MEMBERS = 256  # a uint16 sum of uint8 predictions, and its rounding, stay below 2^16


@dataclass
class OrganOutput:
    """One organ on the CT grid (x, y, z): soft {member: uint8 p x 255}, mean uint8 p x 255 (rounded, halves up), mask
    bool (exact mean > 0.5); value: the organ's voxel value in the pseudo-label."""

    organ: str
    value: int
    soft: dict[str, np.ndarray]
    mean: np.ndarray
    mask: np.ndarray


class EnsembleAverage:
    """How members combine into a pseudo-label: the one rule, fed organ by organ so that memory holds one organ's
    members at a time.

    shape: (x, y, z) of the CT grid; values: {organ: voxel value in the pseudo-label}. For each organ, add() takes the
    soft predictions of the members that predict it ({member: (x, y, z) uint8 p x 255}; organs may have different
    member counts, e.g. an external tool that covers some organs) and returns its OrganOutput:
    - mean = total / n, exact; mask = mean > 0.5, i.e. total * 2 > 255 * n in integers;
    - the multi-label pseudo-label (`label`, (x, y, z) uint8) gives a voxel inside several masks to the organ with the
      highest exact mean probability; an exact tie goes to the organ with the smaller value (the earlier one in the
      label set's order), whatever order the organs are added in.
    The exact mean is total / n in float32: both are integers below 2^24 and division is correctly rounded, so equal
    fractions compare equal and different ones stay apart (with n <= 256 they differ by 1 / n^2 at least).
    """

    def __init__(self, shape: Sequence[int], values: Mapping[str, int]):
        self.values = dict(values)
        self.label = np.zeros(tuple(shape), dtype=np.uint8)
        self._best = np.zeros(tuple(shape), dtype=np.float32)  # exact mean x 255 of the label's organ, 0 elsewhere

    def add(self, organ: str, soft: Mapping[str, np.ndarray]) -> OrganOutput:
        """Average one organ's members, update the pseudo-label, return the organ's mean and mask."""
        if not 0 < len(soft) <= MAX_MEMBERS:
            raise ValueError(f"{organ}: {len(soft)} members predict it; 1 to {MAX_MEMBERS} can be averaged")
        if not 0 < self.values[organ] < 256:
            raise ValueError(f"{organ}: value {self.values[organ]} does not fit a uint8 label map")
        total = np.zeros(self.label.shape, dtype=np.uint16)
        for member, array in soft.items():
            if array.shape != self.label.shape or array.dtype != np.uint8:
                raise ValueError(f"{organ}: member {member}: expected uint8 {self.label.shape}, got {array.dtype} "
                                 f"{array.shape}")
            total += array
        n = len(soft)
        mask = total > (255 * n) // 2  # total * 2 > 255 * n, for integers, without overflowing uint16
        mean = ((total + np.uint16(n // 2)) // np.uint16(n)).astype(np.uint8)
        inside = np.flatnonzero(mask)  # the comparison runs on this organ's voxels only
        exact = total.ravel()[inside].astype(np.float32) / np.float32(n)
        best, current = self._best.ravel()[inside], self.label.ravel()[inside]
        value = self.values[organ]
        wins = (exact > best) | ((exact == best) & (value < current))
        self.label.ravel()[inside[wins]] = value
        self._best.ravel()[inside[wins]] = exact[wins]
        return OrganOutput(organ=organ, value=value, soft=dict(soft), mean=mean, mask=mask)


def member_votes(label: np.ndarray, values: Mapping[str, int], organs: Iterable[str]) -> dict[str, np.ndarray]:
    """A hard label map (x, y, z) in the label set's values -> {organ: (x, y, z) uint8 0 or 255}: another tool's votes
    as an ensemble member, for the organs it covers (an organ it covers but never labels gets all zeros)."""
    return {organ: (label == values[organ]).astype(np.uint8) * np.uint8(255) for organ in organs}
