"""Atlas's click model: a U-Net of the ensemble's `tiny` kind with three more input channels (DeepEdit's scheme):
the windowed CT, the organ's current label, and maps of its positive and negative clicks; one output, the organ's
logit. It knows no organ by name: the label channel says which organ is meant, so one model serves every organ.

Its checkpoint is one file (torch.load(weights_only=True)) in its own format, with the grid it works on (spacing),
the HU window, the click radius, the training patch, the organs it was trained on, its parent and its validation
figures (Dice after 1, 3 and 5 simulated clicks on held-out cases).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ml_engine.io import CheckpointError, load_checkpoint_payload, save_checkpoint_payload
from ml_engine.networks import HU_WINDOW

CLICK_FORMAT = "atlas-click-checkpoint/1"
IN_CHANNELS = 4  # CT, current label, positive clicks, negative clicks
SPACING = (1.5, 1.5, 1.5)  # mm: the click model's grid
PATCH = (48, 48, 48)  # training patch (the model is fully convolutional: any side divisible by DIVISOR runs)
DIVISOR = 8  # three poolings
SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "click_unet_tiny.pt"


def build_click_network() -> torch.nn.Module:
    """The click model's network, freshly initialised: input (B, 4, x, y, z), output (B, 1, x, y, z) logits."""
    from monai.networks.nets import UNet

    return UNet(spatial_dims=3, in_channels=IN_CHANNELS, out_channels=1, channels=(16, 32, 64, 128),
                strides=(2, 2, 2), num_res_units=1, norm="INSTANCE")


@dataclass
class ClickCheckpoint:
    """Weights plus metadata. metrics: validation figures (dice_0, dice_1, dice_3, dice_5: mean Dice before any
    click and after 1, 3, 5 simulated clicks on held-out cases), losses, steps, seconds."""

    state: dict[str, torch.Tensor]
    spacing: tuple[float, float, float] = SPACING
    hu_window: tuple[float, float] = HU_WINDOW
    patch: tuple[int, int, int] = PATCH
    click_radius: float = 2.0  # voxels of the model's grid
    organs: tuple[str, ...] = ()
    parent: str | None = None
    training_cases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = ""
    name: str = ""

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        model = build_click_network()
        model.load_state_dict({k: v.float() for k, v in self.state.items()})
        return model.to(device).eval()

    def to_payload(self, *, half: bool = False) -> dict:
        state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in self.state.items()}
        return {"format": CLICK_FORMAT, "spacing": [float(s) for s in self.spacing],
                "hu_window": [float(v) for v in self.hu_window], "patch": [int(p) for p in self.patch],
                "click_radius": float(self.click_radius), "organs": list(self.organs), "parent": self.parent,
                "training_cases": list(self.training_cases),
                "metrics": {k: float(v) for k, v in self.metrics.items()}, "created": self.created, "state": state}

    @classmethod
    def from_payload(cls, payload: dict, source: str | os.PathLike = "<checkpoint>") -> ClickCheckpoint:
        if payload.get("format") != CLICK_FORMAT:
            raise CheckpointError(source, f"not an Atlas click-model checkpoint (format {payload.get('format')!r}, "
                                          f"expected {CLICK_FORMAT!r})")
        try:
            state = payload["state"]
            if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor)
                                                                    for v in state.values()):
                raise CheckpointError(source, "no weights")
            spacing = tuple(float(s) for s in payload["spacing"])
            if len(spacing) != 3 or min(spacing) <= 0:
                raise CheckpointError(source, f"spacing {spacing} is not 3 positive values")
            return cls(state=state, spacing=spacing,  # type: ignore[arg-type]
                       hu_window=tuple(float(v) for v in payload["hu_window"]),  # type: ignore[arg-type]
                       patch=tuple(int(p) for p in payload["patch"]),  # type: ignore[arg-type]
                       click_radius=float(payload.get("click_radius", 2.0)),
                       organs=tuple(str(o) for o in payload.get("organs", [])), parent=payload.get("parent"),
                       training_cases=[str(c) for c in payload.get("training_cases", [])],
                       metrics={str(k): float(v) for k, v in payload.get("metrics", {}).items()},
                       created=str(payload.get("created", "")), name=Path(str(source)).name)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(source, f"malformed metadata ({type(exc).__name__}: {exc})") from exc


def save_click_checkpoint(path: str | os.PathLike, checkpoint: ClickCheckpoint, *, half: bool = False) -> Path:
    """Write the checkpoint as one file, atomically (float16 weights when half)."""
    return save_checkpoint_payload(path, checkpoint.to_payload(half=half))


def load_click_checkpoint(path: str | os.PathLike = SHIPPED) -> ClickCheckpoint:
    """Read and validate a click-model checkpoint (CheckpointError naming the file); the shipped one by default."""
    checkpoint = ClickCheckpoint.from_payload(load_checkpoint_payload(path), path)
    try:
        checkpoint.build()
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit the click model ({str(exc).splitlines()[0][:160]})") from exc
    return checkpoint


def version_of(checkpoint: ClickCheckpoint) -> str:
    """A short, stable name for what the page and round_status show: the file name without its suffix."""
    return Path(checkpoint.name).stem if checkpoint.name else "click-model"


def forward(model: torch.nn.Module, image: torch.Tensor, label: torch.Tensor, positive: torch.Tensor,
            negative: torch.Tensor) -> torch.Tensor:
    """Logits (B, 1, x, y, z) from (B, x, y, z) image, label, positive and negative maps (any side a multiple of
    DIVISOR)."""
    return model(torch.stack([image, label, positive, negative], dim=1))


PASSES = 2  # passes of the network a click: each pass's answer the next one's label, the same clicks (from one click
# on an empty label it draws part of the organ and grows it on a second look: docs/benchmarks.md, "Click to correct")


def answer(model: torch.nn.Module, image: torch.Tensor, label: torch.Tensor, positive: torch.Tensor,
           negative: torch.Tensor, passes: int = PASSES) -> torch.Tensor:
    """The logits of a click: `passes` forward passes, each pass's answer (logits > 0) the next one's label."""
    logits = forward(model, image, label, positive, negative)
    for _ in range(passes - 1):
        logits = forward(model, image, (logits[:, 0] > 0).to(label.dtype), positive, negative)
    return logits


def check_divisible(shape: Sequence[int]) -> None:
    if any(int(s) % DIVISOR for s in shape):
        raise ValueError(f"every side must be a multiple of {DIVISOR}, got {tuple(shape)}")
