"""The training loop: train or fine-tune a network on preprocessed cases into a Checkpoint."""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ml_engine.networks import HU_WINDOW, build_network, defaults_for
from ml_engine.train.cases import TrainCase, _pad_to
from ml_engine.train.checkpoint import Checkpoint
from ml_engine.train.device import autocast_dtype, pick_device
from ml_engine.train.loss import masked_dice_bce_loss
from ml_engine.train.prefetch import Batch, prefetch
from ml_engine.train.sampling import FG_PROBABILITY, augment, sample_patch

FINE_TUNE_LR = 1 / 3  # fine-tuning defaults: a third of the learning rate, a fifth of the steps
FINE_TUNE_STEPS = 1 / 5

Progress = Callable[[int, int, float], None]  # (step done, total steps, loss of that step)


@dataclass
class TrainConfig:
    """arch, size and organs of the network; patch (x, y, z), spacing (mm), batch, lr, steps (None: the defaults of
    networks.TRAINING_DEFAULTS); seed; device (None: CUDA when available)."""

    arch: str
    size: str = "tiny"
    organs: tuple[str, ...] = ()
    patch: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    batch: int | None = None
    lr: float | None = None
    steps: int | None = None
    seed: int = 0
    fg_probability: float = FG_PROBABILITY
    weight_decay: float = 1e-5
    warmup_fraction: float = 0.05
    hu_window: tuple[float, float] = HU_WINDOW
    device: str | None = None
    loss_every: int = 25
    progress_seconds: float = 1.0

    def resolved(self) -> TrainConfig:
        d = defaults_for(self.arch, self.size)
        return TrainConfig(arch=self.arch, size=self.size, organs=tuple(self.organs),
                           patch=tuple(self.patch or d.patch), spacing=tuple(self.spacing or d.spacing),
                           batch=self.batch or d.batch, lr=self.lr or d.lr, steps=self.steps or d.steps,
                           seed=self.seed, fg_probability=self.fg_probability, weight_decay=self.weight_decay,
                           warmup_fraction=self.warmup_fraction, hu_window=tuple(self.hu_window),
                           device=self.device, loss_every=self.loss_every, progress_seconds=self.progress_seconds)


def train(cases: Sequence[TrainCase], config: TrainConfig, *, init: Checkpoint | None = None,
          progress: Progress | None = None) -> Checkpoint:
    """Train (or fine-tune from init) a network on preprocessed cases; returns the new Checkpoint.

    cases: made with make_train_case for config.organs at config.spacing. With init, the architecture, size, organs,
    spacing, window, network (a published start's) and patch (unless config sets one) are init's, the learning rate
    and steps default to FINE_TUNE_LR and FINE_TUNE_STEPS
    of the architecture's, and the result records init as its parent. Same seed, same data and same
    device: the same weights (on CPU).
    """
    if init is not None:
        d = defaults_for(init.arch, init.size)
        published_lr = (init.network or {}).get("lr")  # a published start's own fine-tuning rate
        config = TrainConfig(**{**config.__dict__, "arch": init.arch, "size": init.size, "organs": init.organs,
                                "spacing": init.spacing, "hu_window": init.hu_window,
                                "patch": config.patch or init.patch,
                                "lr": config.lr or published_lr or d.lr * FINE_TUNE_LR, "steps": config.steps or
                                max(1, int(d.steps * FINE_TUNE_STEPS))})
    config = config.resolved()
    if not config.organs:
        raise ValueError("no organs to train")
    if not cases:
        raise ValueError("no training cases")
    for case in cases:
        if case.labels.shape[0] != len(config.organs):
            raise ValueError(f"{case.name}: {case.labels.shape[0]} label channels for {len(config.organs)} organs")
    if not any(case.labelled.any() for case in cases):
        raise ValueError("none of the cases labels any of the organs")
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    network = init.network if init is not None else None
    model = build_network(config.arch, len(config.organs), config.size, patch=config.patch, spacing=config.spacing,
                          network=network)
    if init is not None:
        model.load_state_dict({k: v.float() for k, v in init.state.items()})
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = int(config.steps)
    warmup = max(1, int(round(config.warmup_fraction * steps)))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    amp_dtype, needs_scaler = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=needs_scaler)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch shape: autotune the convolutions once
    padded = [_pad_to(case, config.patch) for case in cases]
    usable = [case for case in padded if case.labelled.any()]
    pin = device.type == "cuda"

    def make_batch() -> Batch:
        images, labels, masks = [], [], []
        for _ in range(int(config.batch)):
            case = usable[int(rng.integers(len(usable)))]
            image, label = sample_patch(case, config.patch, rng, config.fg_probability)
            images.append(augment(image, rng))
            labels.append(label)
            masks.append(case.labelled)
        batch = (torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(np.stack(labels)),
                 torch.from_numpy(np.stack(masks)))
        return tuple(t.pin_memory() for t in batch) if pin else batch  # type: ignore[return-value]

    losses: list[float] = []
    pending: list[torch.Tensor] = []  # losses still on the device

    def read_losses() -> None:
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    started = time.process_time()
    wall = time.perf_counter()
    reported = wall
    for step, (xb, yb, mb) in enumerate(prefetch(make_batch, steps)):
        x = xb.to(device, non_blocking=True)
        y = yb.to(device, non_blocking=True)
        m = mb.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x)
        loss = masked_dice_bce_loss(logits, y, m)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        pending.append(loss.detach())
        last = step == steps - 1
        if len(pending) >= config.loss_every or last:
            read_losses()
        if progress is not None:
            now = time.perf_counter()
            if last or now - reported >= config.progress_seconds:
                read_losses()
                reported = now
                progress(step + 1, steps, losses[-1])
    window = max(1, min(20, steps // 5))
    metrics = {"steps": float(steps), "loss_first": float(np.mean(losses[:window])),
               "loss_last": float(np.mean(losses[-window:])), "cpu_seconds": time.process_time() - started,
               "wall_seconds": time.perf_counter() - wall, "batch": float(config.batch), "lr": float(config.lr)}
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return Checkpoint(arch=config.arch, size=config.size, organs=tuple(config.organs),
                      spacing=tuple(config.spacing), hu_window=tuple(config.hu_window), patch=tuple(config.patch),
                      state=state, parent=(init.name or "parent") if init is not None else None,
                      training_cases=[c.name for c in cases], metrics=metrics, network=network,
                      created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


def loss_curve(checkpoint: Checkpoint) -> tuple[float, float]:
    """(mean loss of the first steps, mean loss of the last steps) recorded in a checkpoint's metrics."""
    return checkpoint.metrics.get("loss_first", math.nan), checkpoint.metrics.get("loss_last", math.nan)
