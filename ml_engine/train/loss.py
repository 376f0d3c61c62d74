"""The partial-label loss: Dice + BCE per organ, masked to the organs each case labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
