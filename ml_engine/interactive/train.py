"""Training the click model, as DeepEdit trains: clicks simulated at the discrepancy between the current label and
the target, several click rounds per sample, each round's output the next round's label.

One sample: a patch around a voxel of one organ a case labels; a starting label (the case's pseudo-label of that
organ when `starts` gives one, half the time; otherwise `simulate.degrade` of the target); then 1 to max_clicks
clicks, each placed by `simulate.next_click` on the label the model made after the previous one (the model runs
without gradients between clicks); the loss (Dice + BCE) is taken on the last round's output against the target.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ml_engine.interactive.model import PATCH, SPACING, ClickCheckpoint, build_click_network, forward
from ml_engine.interactive.prompts import click_map
from ml_engine.interactive.simulate import degrade, next_click
from ml_engine.networks import HU_WINDOW
from ml_engine.train.cases import TrainCase, _pad_to
from ml_engine.train.device import pick_device
from ml_engine.train.loss import masked_dice_bce_loss
from ml_engine.train.sampling import augment

Progress = Callable[[int, int, float], None]  # (step done, total steps, loss)
Samples = list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (image, starting label, target) on the model's grid


@dataclass(frozen=True)
class ClickTrainConfig:
    steps: int = 600
    batch: int = 2
    lr: float = 3e-3
    patch: tuple[int, int, int] = PATCH
    max_clicks: int = 4
    seed: int = 0
    device: str | None = None
    progress_seconds: float = 1.0


FINE_TUNE = ClickTrainConfig(steps=150, lr=1e-3)  # a round's fine-tune from the previous round's model


def _patch_around(case: TrainCase, channel: int, patch: Sequence[int], rng: np.random.Generator,
                  jitter: bool = True) -> tuple[slice, ...]:
    flat = case.foreground(channel)
    shape = case.image.shape
    if jitter:
        centre = np.unravel_index(int(flat[rng.integers(flat.size)]), shape)
    else:  # the organ's box centre
        points = np.unravel_index(flat, shape)
        centre = [int((int(p.min()) + int(p.max())) // 2) for p in points]
    start = []
    for a in range(3):
        shift = int(rng.integers(-patch[a] // 4, patch[a] // 4 + 1)) if jitter else 0
        start.append(int(np.clip(int(centre[a]) - patch[a] // 2 + shift, 0, shape[a] - patch[a])))
    return tuple(slice(s, s + int(p)) for s, p in zip(start, patch, strict=True))


def _start(case: TrainCase, channel: int, box: tuple[slice, ...], target: np.ndarray,
           starts: Mapping[str, np.ndarray] | None, rng: np.random.Generator) -> np.ndarray:
    pseudo = None if starts is None else starts.get(case.name)
    if pseudo is not None and rng.random() < 0.5:
        return pseudo[(channel, *box)].astype(bool)
    return degrade(target, rng)


def _organ_channels(case: TrainCase) -> list[int]:
    return [c for c in range(case.labels.shape[0]) if case.labelled[c] and case.foreground(c) is not None]


def validation_samples(cases: Sequence[TrainCase], *, patch: Sequence[int] = PATCH, seed: int = 1,
                       starts: Mapping[str, np.ndarray] | None = None) -> Samples:
    """One sample per (case, organ it labels): the patch at the organ's box centre, its starting label (the
    pseudo-label when `starts` has the case, else a seeded degradation), its target."""
    rng = np.random.default_rng(seed)
    out: Samples = []
    for case in cases:
        case = _pad_to(case, patch)
        for channel in _organ_channels(case):
            box = _patch_around(case, channel, patch, rng, jitter=False)
            target = case.labels[(channel, *box)].astype(bool)
            pseudo = None if starts is None else starts.get(case.name)
            start = pseudo[(channel, *box)].astype(bool) if pseudo is not None else degrade(target, rng)
            out.append((case.image[box].astype(np.float32), start, target))
    return out


def train_click_model(cases: Sequence[TrainCase], *, organs: Sequence[str],
                      config: ClickTrainConfig = ClickTrainConfig(), init: ClickCheckpoint | None = None,
                      starts: Mapping[str, np.ndarray] | None = None,
                      progress: Progress | None = None) -> ClickCheckpoint:
    """Train (or fine-tune from init) the click model on cases made at the click model's spacing (SPACING) for
    `organs`. starts: {case name: (C, x, y, z) pseudo-labels on the case's grid}. Same seed, same data: the same
    weights (on the CPU)."""
    usable = [_pad_to(case, config.patch) for case in cases]
    usable = [case for case in usable if _organ_channels(case)]
    if not usable:
        raise ValueError("no training case labels any organ")
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_click_network()
    if init is not None:
        model.load_state_dict({k: v.float() for k, v in init.state.items()})
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-5)
    warmup = max(1, config.steps // 20)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    radius = (init.click_radius if init is not None else 2.0)

    def sample() -> list[np.ndarray]:
        case = usable[int(rng.integers(len(usable)))]
        channels = _organ_channels(case)
        channel = channels[int(rng.integers(len(channels)))]
        box = _patch_around(case, channel, config.patch, rng)
        target = case.labels[(channel, *box)].astype(bool)
        label = _start(case, channel, box, target, starts, rng)
        image = augment(case.image[box], rng)
        positive: list = []
        negative: list = []
        x = torch.from_numpy(image)[None].to(device)
        for k in range(int(rng.integers(1, config.max_clicks + 1))):
            if k:  # the model's answer to the clicks so far is the label the next click corrects
                model.eval()
                with torch.no_grad():
                    maps = [torch.from_numpy(click_map(p, image.shape, radius))[None].to(device)
                            for p in (positive, negative)]
                    logits = forward(model, x, torch.from_numpy(label.astype(np.float32))[None].to(device), *maps)
                label = (logits[0, 0] > 0).cpu().numpy()
                model.train()
            click = next_click(label, target)
            if click is None:
                break
            (positive if click[1] else negative).append(click[0])
        return [image, label.astype(np.float32), click_map(positive, image.shape, radius),
                click_map(negative, image.shape, radius), target.astype(np.float32)]

    losses: list[float] = []
    started, wall = time.process_time(), time.perf_counter()
    reported = wall
    model.train()
    for step in range(config.steps):
        batch = [sample() for _ in range(config.batch)]
        tensors = [torch.from_numpy(np.stack([b[i] for b in batch])).to(device) for i in range(5)]
        logits = forward(model, *tensors[:4])
        loss = masked_dice_bce_loss(logits, tensors[4][:, None], torch.ones((config.batch, 1), dtype=torch.bool,
                                                                                device=device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        now = time.perf_counter()
        if progress is not None and (step == config.steps - 1 or now - reported >= config.progress_seconds):
            reported = now
            progress(step + 1, config.steps, losses[-1])
    window = max(1, min(20, config.steps // 5))
    metrics = {"steps": float(config.steps), "loss_first": float(np.mean(losses[:window])),
               "loss_last": float(np.mean(losses[-window:])), "cpu_seconds": time.process_time() - started,
               "wall_seconds": time.perf_counter() - wall, "lr": float(config.lr)}
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return ClickCheckpoint(state=state, spacing=SPACING if init is None else init.spacing,
                           hu_window=HU_WINDOW if init is None else init.hu_window, patch=tuple(config.patch),
                           click_radius=radius, organs=tuple(organs),
                           parent=(init.name or "parent") if init is not None else None,
                           training_cases=[c.name for c in cases], metrics=metrics,
                           created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


def with_validation(checkpoint: ClickCheckpoint, samples: Samples) -> ClickCheckpoint:
    """The checkpoint with its Dice after 1, 3 and 5 simulated clicks on `samples` in its metrics."""
    from ml_engine.interactive.simulate import evaluate

    return replace(checkpoint, metrics={**checkpoint.metrics, **evaluate(checkpoint, samples)})
