"""Ensemble inference: a Predictor loaded once and used for many cases.

Each member network runs MONAI sliding-window inference with Gaussian blending on its own preprocessed grid (RAS,
body crop, its spacing and window); on CUDA under float16 autocast, on CPU otherwise. Its sigmoid probabilities are
quantised to uint8 (p x 255) at once, on the small network grid, so that memory holds members x organs x the
network grid in uint8, never members x organs x the full CT in float32.

`EnsembleResult.iter_organs()` then streams organ by organ back to the CT grid: for each organ the members' soft
predictions (uint8, p x 255, (x, y, z) on the CT grid), their mean and the mask mean > 0.5; while streaming it
builds the multi-label pseudo-label (overlaps resolved by the highest mean probability). External hard label maps
from other tools join the ensemble as members with probability 0 or 255 (`external_soft_preds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ml_engine.preprocess import GridSpec, prepare_image, restore_uint8
from ml_engine.train import Checkpoint, pick_device

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class OrganOutput:
    """One organ on the CT grid (x, y, z): soft {member: uint8 p x 255}, mean uint8 p x 255, mask bool (mean > 0.5)."""

    organ: str
    index: int
    soft: dict[str, np.ndarray]
    mean: np.ndarray
    mask: np.ndarray


@dataclass
class EnsembleResult:
    """Per-member probabilities on their network grids, and how to put them back on the CT grid.

    members: names (architecture, made unique); probabilities[i]: (C, x', y', z') uint8 on specs[i]'s grid;
    organs: the C organ names; original_shape (x, y, z). pseudo_label: (x, y, z) uint8, filled by iter_organs.
    """

    organs: tuple[str, ...]
    members: list[str]
    specs: list[GridSpec]
    probabilities: list[np.ndarray]
    original_shape: tuple[int, int, int]
    seconds: dict[str, float] = field(default_factory=dict)
    pseudo_label: np.ndarray | None = None

    def iter_organs(self, extra: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> Iterator[OrganOutput]:
        """Organ by organ on the CT grid; sets self.pseudo_label once exhausted.

        extra: {member: {organ: (x, y, z) uint8 p x 255}} of further members (external predictions) to average in.
        """
        label = np.zeros(self.original_shape, dtype=np.uint8)
        best = np.zeros(self.original_shape, dtype=np.uint16)
        for c, organ in enumerate(self.organs):
            soft = {name: restore_uint8(prob[c], spec)
                    for name, spec, prob in zip(self.members, self.specs, self.probabilities, strict=True)}
            for name, maps in (extra or {}).items():
                if organ in maps:
                    soft[name] = maps[organ]
            mean, mask, total = average_soft(list(soft.values()))
            update = mask & (total > best)
            label[update] = c + 1
            best[update] = total[update]
            del total, update
            yield OrganOutput(organ=organ, index=c + 1, soft=soft, mean=mean, mask=mask)
        self.pseudo_label = label


def average_soft(soft: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of uint8 soft predictions (each (x, y, z), p x 255).

    Returns (mean uint8 rounded, mask bool where the exact mean probability > 0.5, sum uint16 for tie-breaking
    between organs, comparable because every organ has the same member count).
    """
    if not soft:
        raise ValueError("no soft predictions to average")
    total = np.zeros(soft[0].shape, dtype=np.uint16)
    for s in soft:
        total += s
    n = len(soft)
    mask = total.astype(np.uint32) * 2 > 255 * n
    mean = ((total.astype(np.uint32) + n // 2) // n).astype(np.uint8)
    return mean, mask, total


def external_soft_preds(label_map: np.ndarray, labels: Mapping[str, int | Sequence[int]],
                        organs: Sequence[str]) -> dict[str, np.ndarray]:
    """Hard multi-label map (x, y, z) of another tool -> {organ: (x, y, z) uint8 0 or 255} for the organs listed.

    labels: {organ: value or values} (e.g. ml_engine.labels.TOTALSEGMENTATOR_LABELS). An organ absent from labels
    is left out; an organ listed but absent from the map gets an all-zero prediction (the tool says: not there).
    """
    if label_map.ndim != 3:
        raise ValueError(f"expected a 3D label map, got shape {label_map.shape}")
    if label_map.dtype.kind == "f":
        label_map = np.rint(label_map).astype(np.int64)
    out = {}
    for organ in organs:
        if organ not in labels:
            continue
        values = labels[organ]
        values = [values] if isinstance(values, int | np.integer) else list(values)
        out[organ] = np.isin(label_map, values).astype(np.uint8) * np.uint8(255)
    return out


def pseudo_label_from_soft(soft: Mapping[str, Mapping[str, np.ndarray]], organs: Sequence[str]
                           ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Average already written members {member: {organ: uint8 (x, y, z)}} -> (pseudo-label uint8, {organ: mask}).

    Each organ is averaged over the members that have it; overlaps go to the highest mean probability.
    """
    label = None
    best = None
    masks = {}
    for c, organ in enumerate(organs):
        maps = [m[organ] for m in soft.values() if organ in m]
        if not maps:
            continue
        mean, mask, _ = average_soft(maps)
        if label is None:
            label = np.zeros(mean.shape, dtype=np.uint8)
            best = np.zeros(mean.shape, dtype=np.uint8)
        update = mask & (mean > best)
        label[update] = c + 1
        best[update] = mean[update]
        masks[organ] = mask
    if label is None:
        raise ValueError("no member predicts any of the organs")
    return label, masks


class Predictor:
    """Load the ensemble's checkpoints once; predict many cases.

    checkpoints: Checkpoints of one organ list (ValueError naming the odd one otherwise). device: None picks CUDA when
    available (with float16 autocast), else CPU. overlap: sliding-window overlap; sw_batch_size: windows per forward.
    """

    def __init__(self, checkpoints: Sequence[Checkpoint], *, device: str | None = None, overlap: float = 0.5,
                 sw_batch_size: int = 2):
        if not checkpoints:
            raise ValueError("no checkpoints")
        organs = checkpoints[0].organs
        for ckpt in checkpoints[1:]:
            if ckpt.organs != organs:
                raise ValueError(f"{ckpt.name or ckpt.arch}: organs {', '.join(ckpt.organs)} differ from "
                                 f"{checkpoints[0].name or checkpoints[0].arch}'s {', '.join(organs)}")
        self.organs = tuple(organs)
        self.device = pick_device(device)
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size
        self.checkpoints = list(checkpoints)
        self.models = [ckpt.build(self.device) for ckpt in checkpoints]
        names: list[str] = []
        for ckpt in checkpoints:
            name = ckpt.arch
            k = 2
            while name in names:
                name = f"{ckpt.arch}_{k}"
                k += 1
            names.append(name)
        self.members = names

    @torch.no_grad()
    def predict(self, ct: np.ndarray, affine: np.ndarray, *, progress: ProgressFn | None = None) -> EnsembleResult:
        """CT (x, y, z) HU with affine (4, 4) -> EnsembleResult (per-member uint8 probabilities, streamable)."""
        from monai.inferers import sliding_window_inference

        if ct.ndim != 3:
            raise ValueError(f"expected a 3D CT (x, y, z), got shape {ct.shape}")
        prepared: dict[tuple, tuple[np.ndarray, GridSpec]] = {}
        specs, probabilities, seconds = [], [], {}
        total = len(self.models)
        for i, (ckpt, model) in enumerate(zip(self.checkpoints, self.models, strict=True)):
            if progress is not None:
                progress(self.members[i], i, total)
            key = (ckpt.spacing, ckpt.hu_window)
            if key not in prepared:
                prepared[key] = prepare_image(ct, affine, ckpt.spacing, hu_window=ckpt.hu_window)
            image, spec = prepared[key]
            started = time.perf_counter()
            x = torch.from_numpy(image)[None, None].to(self.device)
            with torch.autocast(device_type=self.device.type, dtype=torch.float16,
                                enabled=self.device.type == "cuda"):
                logits = sliding_window_inference(x, roi_size=ckpt.patch, sw_batch_size=self.sw_batch_size,
                                                  predictor=model, overlap=self.overlap, mode="gaussian")
            prob = torch.sigmoid(logits[0].float()).mul_(255.0).round_().to(torch.uint8).cpu().numpy()
            del logits, x
            specs.append(spec)
            probabilities.append(prob)
            seconds[self.members[i]] = time.perf_counter() - started
        if progress is not None:
            progress("done", total, total)
        return EnsembleResult(organs=self.organs, members=list(self.members), specs=specs,
                              probabilities=probabilities, original_shape=tuple(int(s) for s in ct.shape),
                              seconds=seconds)

    def predict_masks(self, ct: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Convenience for small volumes: (pseudo-label (x, y, z) uint8, {organ: mask (x, y, z) bool})."""
        result = self.predict(ct, affine)
        masks = {out.organ: out.mask for out in result.iter_organs()}
        return result.pseudo_label, masks  # type: ignore[return-value]
