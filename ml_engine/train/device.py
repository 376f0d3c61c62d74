"""Where training and inference run: the device, and its mixed-precision type."""

from __future__ import annotations

import torch


def pick_device(device: str | None = None) -> torch.device:
    """device, or CUDA when available, CPU otherwise."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
