"""What the simulated annotator perceives: a rater's view of the anatomy, never the truth itself, read one displayed
slice at a time; and the judge, which alone holds the truth (the stopping rule and the score)."""

from __future__ import annotations

import numpy as np

RATER_SHIFT = 0.4  # in-plane standard deviation of the rater's boundary displacement, in voxels (half of it along z)
RATER_SMOOTH = 3.0  # its smoothness (Gaussian sigma, voxels): the boundary moves in patches, not voxel by voxel


def rater_view(truth: np.ndarray, seed: int, shift: float = RATER_SHIFT) -> np.ndarray:
    """A second, independent label of the same anatomy: the truth warped by a smooth random displacement field
    (nearest neighbour), so that each boundary lies up to about a voxel off, in patches, as a second reader's would.
    The same seed gives the same view."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    grid = np.indices(truth.shape, dtype=np.float32)
    for axis in range(3):
        noise = ndimage.gaussian_filter(rng.standard_normal(truth.shape).astype(np.float32), RATER_SMOOTH)
        noise *= (shift if axis < 2 else shift / 2) / max(float(noise.std()), 1e-6)
        grid[axis] += noise
    return ndimage.map_coordinates(truth, grid, order=0, mode="nearest").astype(truth.dtype)


class Rater:
    """The rater's view, inside the case's box, handed out one slice at a time, and only the slice on display:
    `slice(z, displayed)` refuses any other. `reads` lists the slices read, in order."""

    def __init__(self, view: np.ndarray, box: tuple[slice, slice, slice]):
        self._view = view[box]
        self.z0 = box[2].start
        self.reads: list[int] = []

    def slice(self, z: int, displayed: int) -> np.ndarray:
        """The rater's labels (x, y) on slice z inside the box; z must be the slice on display."""
        if z != displayed:
            raise AssertionError(f"the annotator looked at slice {z} while slice {displayed} was displayed")
        self.reads.append(z)
        return self._view[:, :, z - self.z0]


class Judge:
    """The truth, kept from the annotator: Dice of the case's organs (their mean) inside its region. The stopping
    rule (>= 0.95) and the score."""

    def __init__(self, truth: np.ndarray, organs: tuple[int, ...], box: tuple[slice, slice, slice], region: np.ndarray):
        self._truth = truth[box]
        self.organs, self.region = organs, region

    def dice(self, label: np.ndarray) -> float:
        scores = []
        for organ in self.organs:
            a = (label == organ) & self.region
            t = (self._truth == organ) & self.region
            total = int(a.sum()) + int(t.sum())
            scores.append(1.0 if total == 0 else 2 * float((a & t).sum()) / total)
        return float(np.mean(scores))
