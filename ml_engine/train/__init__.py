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

Modules: cases (TrainCase), cache (on disk), loss, sampling (patches, augmentation), prefetch (the batch thread),
device, checkpoint, loop (TrainConfig, train). Callers import from here or from the module.
"""

from ml_engine.train.cache import CACHE_MAX_BYTES, cached_train_case
from ml_engine.train.cases import TrainCase, make_train_case
from ml_engine.train.checkpoint import CHECKPOINT_FORMAT, Checkpoint, load_checkpoint, save_checkpoint
from ml_engine.train.device import autocast_dtype, pick_device
from ml_engine.train.loop import FINE_TUNE_LR, FINE_TUNE_STEPS, Progress, TrainConfig, loss_curve, train
from ml_engine.train.loss import masked_dice_bce_loss
from ml_engine.train.prefetch import Batch, prefetch
from ml_engine.train.sampling import FG_PROBABILITY, augment, sample_patch

__all__ = [
    "Batch",
    "CACHE_MAX_BYTES",
    "CHECKPOINT_FORMAT",
    "Checkpoint",
    "FG_PROBABILITY",
    "FINE_TUNE_LR",
    "FINE_TUNE_STEPS",
    "Progress",
    "TrainCase",
    "TrainConfig",
    "augment",
    "autocast_dtype",
    "cached_train_case",
    "load_checkpoint",
    "loss_curve",
    "make_train_case",
    "masked_dice_bce_loss",
    "pick_device",
    "prefetch",
    "sample_patch",
    "save_checkpoint",
    "train",
]
