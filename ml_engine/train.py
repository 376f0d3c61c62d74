"""Partial-label training and fine-tuning, and the one-file checkpoint (weights + metadata).

A training case holds the preprocessed CT (x, y, z) float32, one mask per organ (C, x, y, z) uint8 and which
organs its labels cover (C,) bool. The loss of each case is masked to the organs it covers: a case that labels
only the liver teaches nothing about the spleen, and never teaches that the spleen is background
(`masked_dice_bce_loss`).

Training draws random patches, two in three centred on a voxel of an organ the case labels (nnU-Net's
foreground oversampling, the organ chosen uniformly so that small organs are seen as often as the liver),
augments intensities (contrast, brightness, gamma, noise; no left-right flips, which would swap the kidneys),
and optimises AdamW with a warm-up and cosine decay. On CUDA: bfloat16 autocast where the GPU supports it (no
GradScaler needed), else float16 autocast with a GradScaler; cuDNN autotuning (the patch shape is fixed).

The device never waits for the CPU's sampling: a background thread draws and augments the next batches (one
seeded generator, in order, so the same seed gives the same batches) and pins them for non-blocking copies on
CUDA. The loss is read back from the device every `loss_every` steps (each read is a sync), and progress is
reported about once every `progress_seconds`, and at the last step.

Checkpoints are one file read with torch.load(weights_only=True): a dict of tensors and plain metadata
(architecture, size, organs, spacing, window, patch, parent checkpoint, training cases, metrics).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml_engine.io import CheckpointError, atomic_folder, read_checkpoint, write_checkpoint
from ml_engine.networks import ARCHITECTURES, HU_WINDOW, SIZES, build_network, defaults_for
from ml_engine.preprocess import prepare_image, prepare_masks

CHECKPOINT_FORMAT = "atlas-checkpoint/1"
FG_PROBABILITY = 0.67
FINE_TUNE_LR = 1 / 3  # fine-tuning defaults: a third of the learning rate, a fifth of the steps
FINE_TUNE_STEPS = 1 / 5

Progress = Callable[[int, int, float], None]  # (step done, total steps, loss of that step)


# --------------------------------------------------------------------------------------------------------------
# Cases


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


CACHE_MAX_BYTES = 20 * 2**30


def cached_train_case(cache_dir: str | os.PathLike, key: str, build: Callable[[], TrainCase], *,
                      max_bytes: int = CACHE_MAX_BYTES) -> TrainCase:
    """The TrainCase stored under cache_dir for key, its arrays memory-mapped (read from disk as patches need them);
    on a miss, build() it and store it.

    key: everything that identifies the case's preprocessed arrays (the CT's and the label's identity, the organs,
    the spacing, the window): each architecture at the same spacing reuses them, and a worker's memory holds only
    the patches it reads. Entries land whole (a folder renamed into place); the least recently used go once the
    cache holds more than max_bytes. A damaged entry is rebuilt.
    """
    root = Path(cache_dir)
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:32]
    try:
        info = json.loads((folder / "case.json").read_text(encoding="utf-8"))
        case = TrainCase(name=str(info["name"]), image=np.load(folder / "image.npy", mmap_mode="r"),
                         labels=np.load(folder / "labels.npy", mmap_mode="r"),
                         labelled=np.asarray(info["labelled"], dtype=bool))
        os.utime(folder)  # recently used
        return case
    except (OSError, ValueError, KeyError, TypeError):
        pass
    case = build()
    try:
        with atomic_folder(folder, replace=True) as staging:  # replace: a damaged entry
            np.save(staging / "image.npy", np.ascontiguousarray(case.image))
            np.save(staging / "labels.npy", np.ascontiguousarray(case.labels))
            (staging / "case.json").write_text(json.dumps({"name": case.name, "key": key,
                                                           "labelled": case.labelled.tolist()}), encoding="utf-8")
    except OSError:
        pass  # another process stored it first, or the disk is full: the case is built all the same
    _prune_cache(root, max_bytes)
    return case


def _prune_cache(root: Path, max_bytes: int) -> None:
    entries = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            entries.append((folder.stat().st_mtime, size, folder))
    total = sum(size for _, size, _ in entries)
    for _, size, folder in sorted(entries):
        if total <= max_bytes:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= size


def _pad_to(case: TrainCase, patch: Sequence[int]) -> TrainCase:
    """Pad image and labels (centred, with zeros) so that every side is at least the patch's."""
    pad = [max(0, int(p) - s) for p, s in zip(patch, case.image.shape, strict=True)]
    if not any(pad):
        return case
    widths = [(p // 2, p - p // 2) for p in pad]
    image = np.pad(case.image, widths)
    labels = np.pad(case.labels, [(0, 0), *widths])
    return TrainCase(name=case.name, image=image, labels=labels, labelled=case.labelled)


# --------------------------------------------------------------------------------------------------------------
# Loss


def masked_dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor,
                         smooth: float = 1e-5) -> torch.Tensor:
    """Soft Dice + BCE per (case, organ), averaged over the organs each case labels.

    logits, target: (B, C, x, y, z); labelled: (B, C) bool. Terms of unlabelled organs are multiplied by zero,
    so their logits get exactly zero gradient. Returns a scalar (0 when nothing is labelled).
    """
    weight = labelled.to(logits.dtype if logits.dtype.is_floating_point else torch.float32).float()
    logits = logits.float()
    target = target.float()
    dims = tuple(range(2, logits.ndim))
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=dims)
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum(dim=dims)
    denominator = prob.sum(dim=dims) + target.sum(dim=dims)
    dice = 1.0 - (2.0 * intersection + smooth) / (denominator + smooth)
    return ((bce + dice) * weight).sum() / weight.sum().clamp_min(1.0)


# --------------------------------------------------------------------------------------------------------------
# Sampling and augmentation


def sample_patch(case: TrainCase, patch: Sequence[int], rng: np.random.Generator,
                 fg_probability: float = FG_PROBABILITY) -> tuple[np.ndarray, np.ndarray]:
    """A random patch (x, y, z) of image and (C, x, y, z) of labels; centred on an organ voxel with fg_probability."""
    shape = case.image.shape
    start = [0, 0, 0]
    channels = [c for c in range(case.labels.shape[0]) if case.foreground(c) is not None]
    if channels and rng.random() < fg_probability:
        flat = case.foreground(int(rng.choice(channels)))
        centre = np.unravel_index(int(flat[rng.integers(flat.size)]), shape)
        for a in range(3):
            start[a] = int(np.clip(centre[a] - patch[a] // 2 + rng.integers(-patch[a] // 4, patch[a] // 4 + 1),
                                   0, shape[a] - patch[a]))
    else:
        start = [int(rng.integers(0, shape[a] - patch[a] + 1)) for a in range(3)]
    box = tuple(slice(s, s + int(p)) for s, p in zip(start, patch, strict=True))
    return case.image[box], case.labels[(slice(None), *box)]


def augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast, brightness, gamma and Gaussian noise on an image patch (x, y, z) in [0, 1]; float32 out."""
    out = image.astype(np.float32, copy=True)
    if rng.random() < 0.3:
        gamma = float(np.exp(rng.uniform(-0.3, 0.3)))
        np.power(np.clip(out, 0, 1), gamma, out=out)
    if rng.random() < 0.5:
        out *= float(rng.uniform(0.85, 1.15))
        out += float(rng.uniform(-0.08, 0.08))
    if rng.random() < 0.3:
        sigma = np.float32(rng.uniform(0.0, 0.05))
        out += rng.standard_normal(size=out.shape, dtype=np.float32) * sigma  # drawn in float32, not float64
    return out


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (B, 1, x, y, z), labels (B, C, ...), labelled (B, C)


def prefetch(make: Callable[[], Batch], count: int, *, depth: int = 2) -> Iterator[Batch]:
    """Yield count batches made by make() in a background thread, up to depth ahead of the consumer.

    One thread calls make() count times in order, so a seeded make() gives the same batches as a plain loop. An
    exception in make() is raised in the consumer; leaving the loop early stops the thread.
    """
    slots: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for _ in range(count):
                item = make()
                while not stop.is_set():
                    try:
                        slots.put(("batch", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer
            slots.put(("error", exc))

    thread = threading.Thread(target=work, name="atlas-batches", daemon=True)
    thread.start()
    try:
        for _ in range(count):
            kind, item = slots.get()
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                break
        thread.join(timeout=5)


def autocast_dtype(device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(mixed-precision dtype on device or None for float32, whether a GradScaler is needed).

    CUDA: bfloat16 where the GPU supports it (its float32 range needs no loss scaling), else float16 with a scaler.
    CPU: float32.
    """
    if device.type != "cuda":
        return None, False
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, False
    return torch.float16, True


# --------------------------------------------------------------------------------------------------------------
# Checkpoints


@dataclass
class Checkpoint:
    """Weights plus metadata. state: {name: tensor}; spacing (mm) and hu_window of the preprocessing; patch (x, y, z)
    of training and sliding-window inference; parent: the checkpoint fine-tuned from (file name and sha-free id);
    training_cases: names of the cases trained on; metrics: numbers (losses, times, steps).
    """

    arch: str
    size: str
    organs: tuple[str, ...]
    spacing: tuple[float, float, float]
    hu_window: tuple[float, float]
    patch: tuple[int, int, int]
    state: dict[str, torch.Tensor]
    parent: str | None = None
    training_cases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = ""
    name: str = ""

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The network with these weights, in eval mode, float32, on device."""
        model = build_network(self.arch, len(self.organs), self.size, patch=self.patch, spacing=self.spacing)
        model.load_state_dict({k: v.float() for k, v in self.state.items()})
        return model.to(device).eval()

    def to_payload(self, *, half: bool = False) -> dict:
        """The dict saved to disk: tensors (float16 when half, to ship small files) and plain metadata."""
        state: dict[str, torch.Tensor] = {}
        converted: dict[str, torch.Tensor] = {}  # a tensor that the network shares between modules is saved once
        aliases = _alias_groups(self.arch, self.size, len(self.organs), self.patch, self.spacing)
        for k, v in self.state.items():
            first = aliases.get(k, k)
            if first not in converted:
                converted[first] = (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
            state[k] = converted[first]
        return {"format": CHECKPOINT_FORMAT, "arch": self.arch, "size": self.size, "organs": list(self.organs),
                "spacing": [float(s) for s in self.spacing], "hu_window": [float(v) for v in self.hu_window],
                "patch": [int(p) for p in self.patch], "parent": self.parent,
                "training_cases": list(self.training_cases),
                "metrics": {k: float(v) for k, v in self.metrics.items()}, "created": self.created, "state": state}

    @classmethod
    def from_payload(cls, payload: dict, source: str | os.PathLike = "<checkpoint>") -> Checkpoint:
        """Validate a loaded dict; CheckpointError naming source when a field is missing or wrong."""
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(source, f"not an Atlas checkpoint (format {payload.get('format')!r}, "
                                          f"expected {CHECKPOINT_FORMAT!r})")
        try:
            arch, size = str(payload["arch"]), str(payload["size"])
            if arch not in ARCHITECTURES or size not in SIZES:
                raise CheckpointError(source, f"unknown architecture / size {arch!r} / {size!r}")
            organs = tuple(str(o) for o in payload["organs"])
            state = payload["state"]
            tensors = isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
            if not organs or not tensors:
                raise CheckpointError(source, "no organs or no weights")
            return cls(arch=arch, size=size, organs=organs, spacing=tuple(float(s) for s in payload["spacing"]),
                       hu_window=tuple(float(v) for v in payload["hu_window"]),
                       patch=tuple(int(p) for p in payload["patch"]), state=state, parent=payload.get("parent"),
                       training_cases=[str(c) for c in payload.get("training_cases", [])],
                       metrics={str(k): float(v) for k, v in payload.get("metrics", {}).items()},
                       created=str(payload.get("created", "")), name=Path(str(source)).name)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(source, f"malformed metadata ({type(exc).__name__}: {exc})") from exc


def _alias_groups(arch: str, size: str, n_organs: int, patch: Sequence[int], spacing: Sequence[float]
                  ) -> dict[str, str]:
    """{state key: the first key of the same parameter} for parameters that the network registers twice."""
    model = build_network(arch, n_organs, size, patch=patch, spacing=spacing)
    first: dict[int, str] = {}
    out = {}
    for key, value in model.state_dict(keep_vars=True).items():
        out[key] = first.setdefault(id(value), key)
    return out


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint, *, half: bool = False) -> Path:
    """Write checkpoint to path as one file, atomically (float16 weights when half)."""
    return write_checkpoint(path, checkpoint.to_payload(half=half))


def load_checkpoint(path: str | os.PathLike, *, organs: Sequence[str] | None = None) -> Checkpoint:
    """Read and validate a checkpoint (never unpickling arbitrary objects); with organs, require that organ list.

    Raises CheckpointError naming the file.
    """
    checkpoint = Checkpoint.from_payload(read_checkpoint(path), path)
    if organs is not None and tuple(organs) != checkpoint.organs:
        raise CheckpointError(path, f"organs {', '.join(checkpoint.organs)} differ from the expected "
                                    f"{', '.join(organs)}")
    try:
        checkpoint.build()
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit {checkpoint.arch} / {checkpoint.size} "
                                    f"({str(exc).splitlines()[0][:160]})") from exc
    return checkpoint


# --------------------------------------------------------------------------------------------------------------
# Training


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


def pick_device(device: str | None = None) -> torch.device:
    """device, or CUDA when available, CPU otherwise."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(cases: Sequence[TrainCase], config: TrainConfig, *, init: Checkpoint | None = None,
          progress: Progress | None = None) -> Checkpoint:
    """Train (or fine-tune from init) a network on preprocessed cases; returns the new Checkpoint.

    cases: made with make_train_case for config.organs at config.spacing. With init, the architecture, size, organs,
    spacing, window and patch are init's, the learning rate and steps default to FINE_TUNE_LR and FINE_TUNE_STEPS
    of the architecture's, and the result records init as its parent. Same seed, same data and same
    device: the same weights (on CPU).
    """
    if init is not None:
        d = defaults_for(init.arch, init.size)
        config = TrainConfig(**{**config.__dict__, "arch": init.arch, "size": init.size, "organs": init.organs,
                                "spacing": init.spacing, "hu_window": init.hu_window, "patch": init.patch,
                                "lr": config.lr or d.lr * FINE_TUNE_LR, "steps": config.steps or
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
    model = build_network(config.arch, len(config.organs), config.size, patch=config.patch, spacing=config.spacing)
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
                      training_cases=[c.name for c in cases], metrics=metrics,
                      created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))


def loss_curve(checkpoint: Checkpoint) -> tuple[float, float]:
    """(mean loss of the first steps, mean loss of the last steps) recorded in a checkpoint's metrics."""
    return checkpoint.metrics.get("loss_first", math.nan), checkpoint.metrics.get("loss_last", math.nan)
