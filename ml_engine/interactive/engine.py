"""The interactive engine interface, and the engine of Atlas's click model.

An engine is stateless between calls: each call gets a crop (CT in HU on the case's grid, the crop's affine, the
active organ's current label in the crop, the prompts in crop voxel indices) and returns the organ's new mask in
that crop. What an engine keeps warm (its network, a case's CT) is the caller's pool's business (sessions.py).

`ClickModelEngine` reorients the crop to RAS (as the members' preprocessing does), resamples it to the click
model's grid (1.5 mm; coarser when the crop would exceed MAX_SIDE voxels a side), runs the network on
(CT, label, positive clicks, negative clicks), model.PASSES times (each pass's answer the next one's label), and brings
its probability back to the crop (trilinear), where > 0.5 is the mask. A box prompt also keeps the mask, on its
slice, inside the box. Then the answer is confined to where the prompts were made (`local_edit`): the network
redraws the whole organ in the crop, a person asked for one place.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from ml_engine.interactive.model import DIVISOR, ClickCheckpoint, answer, load_click_checkpoint, version_of
from ml_engine.interactive.prompts import Prompts, click_map
from ml_engine.io import spacing_from_affine
from ml_engine.preprocess import from_ras, resample, to_ras, window
from ml_engine.train.device import pick_device

CROP_MM = 72.0  # the side of the cube a click sends (the page, Slicer's points' margin, the benchmark): the
# training patch (48 voxels of 1.5 mm)
MAX_SIDE = 128  # voxels a side of the click model's grid: a larger crop is resampled coarser
MIN_SIDE = 2 * DIVISOR  # and at least this: the bottleneck keeps 2 voxels a side (instance norm needs more than 1)
MAX_CROP_VOXELS = 16_000_000  # of the case's grid, in one request (a 250^3 crop)
ATLAS_LICENCE = "Atlas's own weights, trained on this group's data (the group's licence)"


class EngineError(ValueError):
    """Input an engine cannot use (names the field)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Crop:
    """ct: (x, y, z) HU; affine: (4, 4) voxel-to-RAS+ of the crop (only its axes and spacing matter); label:
    (x, y, z) bool, the active organ's current label; prompts in voxel indices of the crop. key: what identifies
    this crop's CT (the case and the box), for an engine that keeps a session per crop (None: nothing is kept)."""

    ct: np.ndarray
    affine: np.ndarray
    label: np.ndarray
    prompts: Prompts
    key: Hashable | None = None

    def checked(self) -> Crop:
        if self.ct.ndim != 3 or self.label.shape != self.ct.shape:
            raise EngineError(f"the label's shape {self.label.shape} differs from the crop's {self.ct.shape}",
                              field="label")
        if self.ct.size > MAX_CROP_VOXELS:
            raise EngineError(f"a crop of {self.ct.size} voxels: at most {MAX_CROP_VOXELS}", field="box")
        self.prompts.checked(self.ct.shape)
        return self


class InteractiveEngine(Protocol):
    name: str  # "atlas-click" or "nninteractive"
    version: str
    licence: str

    def segment(self, crop: Crop) -> np.ndarray:
        """The organ's new mask (x, y, z) bool in the crop."""


def ras_index(points: Sequence[Sequence[int]], shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    """(n, 3) voxel indices of points (indices of an (x, y, z) array of `shape` with `affine`) in `to_ras`'s array."""
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(np.asarray(affine, float)),
                                                nib.orientations.axcodes2ornt("RAS"))
    out = np.zeros((len(points), 3), dtype=np.float64)
    for n, point in enumerate(points):
        for axis in range(3):
            value = float(point[axis])
            if transform[axis, 1] < 0:
                value = shape[axis] - 1 - value
            out[n, int(transform[axis, 0])] = value
    return out


def local_edit(current: np.ndarray, proposed: np.ndarray, positive: Sequence[Sequence[int]],
               negative: Sequence[Sequence[int]], reach: int = 1) -> np.ndarray:
    """The current mask changed only where the prompts ask: of the voxels `proposed` adds, the connected pieces
    (6-connected) that hold a positive prompt (or a voxel within `reach` of one); of those it removes, the pieces that
    hold a negative one. The click model redraws the organ across its whole crop, boundaries a voxel off here and
    there far from the click: a person who clicked one place asked for that place (the effort benchmark's policy (c)
    undid its own clicks without this: docs/benchmarks.md)."""
    out = current.copy()
    for change, points, value in ((proposed & ~current, positive, True), (current & ~proposed, negative, False)):
        if not len(points) or not change.any():
            continue
        parts, _ = ndimage.label(change)
        ids: set[int] = set()
        for point in points:
            near = tuple(slice(max(0, int(c) - reach), int(c) + reach + 1) for c in point)
            ids.update(int(v) for v in np.unique(parts[near]) if v)
        if ids:
            out[np.isin(parts, sorted(ids))] = value
    return out


class ClickModelEngine:
    """Atlas's click model (one network, loaded once; calls are serialised on its lock)."""

    name = "atlas-click"
    licence = ATLAS_LICENCE

    def __init__(self, checkpoint: ClickCheckpoint | None = None, *, device: str | None = None,
                 threads: int | None = None) -> None:
        self.checkpoint = checkpoint or load_click_checkpoint()
        self.version = version_of(self.checkpoint)
        self.device = pick_device(device)
        if threads and self.device.type == "cpu":
            # on 2 shared cores a 48^3 pass took 65 ms with one thread and 0.8 to 1.2 s with two under load (OpenMP's
            # threads waiting on each other): docs/benchmarks.md, "Click to correct"
            torch.set_num_threads(threads)
        self.model = self.checkpoint.build(self.device)
        self.lock = threading.Lock()
        self.last_seconds = 0.0  # the network's own time (with resampling) of the last call

    def grid(self, shape: Sequence[int], spacing: Sequence[float]) -> tuple[tuple[int, int, int], float]:
        """The click model's grid for a crop of shape x spacing mm: each side the nearest multiple of DIVISOR to the
        crop at the model's spacing (voxels a few per cent off 1.5 mm, never padding: padding costs network time),
        at most MAX_SIDE; and the scale of its voxels over the model's spacing (for the clicks' radius)."""
        exact = np.asarray(shape, float) * np.asarray(spacing, float) / np.asarray(self.checkpoint.spacing, float)
        scale = max(1.0, float(exact.max()) / MAX_SIDE)
        sides = [int(max(MIN_SIDE, round(e / scale / DIVISOR) * DIVISOR)) for e in exact]
        return tuple(sides), scale  # type: ignore[return-value]

    def segment(self, crop: Crop) -> np.ndarray:
        crop.checked()
        started = time.perf_counter()
        ct, ras_affine, original = to_ras(crop.ct, crop.affine)
        label = to_ras(crop.label.astype(np.float32), crop.affine)[0]
        shape, scale = self.grid(ct.shape, spacing_from_affine(ras_affine))
        image = resample(window(ct, self.checkpoint.hu_window), shape)
        current = (resample(label, shape) >= 0.5).astype(np.float32)
        positive, negative = crop.prompts.signed_points()
        ratio = np.asarray(shape, float) / np.asarray(ct.shape, float)

        def model_points(points: list) -> np.ndarray:
            if not points:
                return np.zeros((0, 3))
            return (ras_index(points, crop.ct.shape, crop.affine) + 0.5) * ratio - 0.5

        radius = self.checkpoint.click_radius / scale
        maps = [click_map(model_points(p), shape, max(1.0, radius)) for p in (positive, negative)]
        inputs = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None].to(self.device)
                  for a in (image, current, *maps)]
        with self.lock, torch.inference_mode():
            logits = answer(self.model, *inputs)
        probability = torch.sigmoid(logits[0, 0].float()).cpu().numpy()
        mask = from_ras(resample(probability, ct.shape) > 0.5, original)
        if crop.prompts.box is not None:
            lo, hi = crop.prompts.box
            plane = mask[:, :, lo[2]]
            keep = np.zeros_like(plane)
            keep[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1] = True
            plane &= keep
        mask = local_edit(crop.label.astype(bool), mask, *crop.prompts.signed_points())
        self.last_seconds = time.perf_counter() - started
        return np.ascontiguousarray(mask)
