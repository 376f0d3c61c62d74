"""The settings of the attention map: every threshold, with the published AbdomenAtlas defaults."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

EntropyForm = Literal["term", "binary"]


@dataclass(frozen=True, kw_only=True)
class AttentionSettings:
    """Every threshold of the attention map. The defaults reproduce the published AbdomenAtlas method.

    std_threshold: inconsistency kept where the std of the models' probabilities is > this.
    entropy_threshold: uncertainty kept where the entropy is > this.
    entropy: "term" = mean over models of -p ln p (published); "binary" = binary entropy of the mean p.
    pseudo_threshold: the pseudo-label is mean p > this (used for the overlap criterion).
    opening_voxels: half-width of the opening box in voxels (= erosions, then as many dilations, with the
        26-connected 3 x 3 x 3 cube); 0 disables the opening.
    opening_mm: if set, the half-width in mm instead, rounded to whole voxels on each axis (6 mm is the
        published 2 voxels at 3 mm, and 4 voxels at 1.5 mm).
    connectivity: 6, 18 or 26, for the hotspots (connected components of the attention).
    margin_voxels: extra voxels kept around each organ's support box.
    """

    std_threshold: float = 0.1
    entropy_threshold: float = 0.05
    entropy: EntropyForm = "term"
    pseudo_threshold: float = 0.5
    opening_voxels: int = 2
    opening_mm: float | None = None
    connectivity: int = 26
    margin_voxels: int = 1

    def __post_init__(self) -> None:
        for name in ("std_threshold", "entropy_threshold"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.pseudo_threshold < 1.0:
            raise ValueError(f"pseudo_threshold must be in [0, 1), got {self.pseudo_threshold}")
        if self.entropy not in ("term", "binary"):
            raise ValueError(f"entropy must be 'term' or 'binary', got {self.entropy!r}")
        if int(self.opening_voxels) != self.opening_voxels or self.opening_voxels < 0:
            raise ValueError(f"opening_voxels must be a whole number >= 0, got {self.opening_voxels}")
        if self.opening_mm is not None and (not math.isfinite(self.opening_mm) or self.opening_mm < 0):
            raise ValueError(f"opening_mm must be a finite number of mm >= 0, got {self.opening_mm}")
        if self.connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26, got {self.connectivity}")
        if int(self.margin_voxels) != self.margin_voxels or self.margin_voxels < 0:
            raise ValueError(f"margin_voxels must be a whole number >= 0, got {self.margin_voxels}")

    def opening_radius(self, spacing: Sequence[float]) -> tuple[int, int, int]:
        """Half-width of the opening box in voxels along x, y, z for this voxel spacing (mm)."""
        if self.opening_mm is None:
            n = int(self.opening_voxels)
            return (n, n, n)
        return tuple(int(math.floor(self.opening_mm / float(s) + 0.5)) for s in spacing)  # type: ignore[return-value]

    def to_dict(self) -> dict:
        return asdict(self)
