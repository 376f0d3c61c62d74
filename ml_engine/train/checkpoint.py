"""The one-file checkpoint: weights and plain metadata, saved atomically and loaded without unpickling arbitrary
objects (torch.load(weights_only=True))."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ml_engine.io import CheckpointError, load_checkpoint_payload, save_checkpoint_payload
from ml_engine.networks import ARCHITECTURES, SIZES, build_network

CHECKPOINT_FORMAT = "atlas-checkpoint/1"


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
    network: dict | None = None  # a published start's family and hyper-parameters (ml_engine.starts); None: Atlas's

    def make(self) -> torch.nn.Module:
        """A freshly initialised network of this checkpoint's architecture (not its weights)."""
        return build_network(self.arch, len(self.organs), self.size, patch=self.patch, spacing=self.spacing,
                             network=self.network)

    def build(self, device: torch.device | str = "cpu") -> torch.nn.Module:
        """The network with these weights, in eval mode, float32, on device."""
        model = self.make()
        model.load_state_dict({k: v.float() for k, v in self.state.items()})
        return model.to(device).eval()

    def to_payload(self, *, half: bool = False) -> dict:
        """The dict saved to disk: tensors (float16 when half, to ship small files) and plain metadata."""
        state: dict[str, torch.Tensor] = {}
        converted: dict[str, torch.Tensor] = {}  # a tensor that the network shares between modules is saved once
        aliases = _alias_groups(self.make())
        for k, v in self.state.items():
            first = aliases.get(k, k)
            if first not in converted:
                converted[first] = (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
            state[k] = converted[first]
        return {"format": CHECKPOINT_FORMAT, "arch": self.arch, "size": self.size, "organs": list(self.organs),
                "spacing": [float(s) for s in self.spacing], "hu_window": [float(v) for v in self.hu_window],
                "patch": [int(p) for p in self.patch], "parent": self.parent,
                "training_cases": list(self.training_cases),
                "metrics": {k: float(v) for k, v in self.metrics.items()}, "created": self.created, "state": state,
                **({"network": dict(self.network)} if self.network else {})}

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
                       created=str(payload.get("created", "")), name=Path(str(source)).name,
                       network=_network(payload.get("network"), source))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(source, f"malformed metadata ({type(exc).__name__}: {exc})") from exc


def _network(raw: object, source) -> dict | None:
    """A recorded network family: a flat dict of a known family and plain values; CheckpointError otherwise."""
    if raw is None:
        return None
    from ml_engine.starts.families import FAMILIES

    plain = (str, int, float, bool, list)
    if not isinstance(raw, dict) or raw.get("family") not in FAMILIES or not all(
            isinstance(v, plain) for v in raw.values()):
        raise CheckpointError(source, f"malformed network record {str(raw)[:120]!r}")
    return dict(raw)


def _alias_groups(model: torch.nn.Module) -> dict[str, str]:
    """{state key: the first key of the same parameter} for parameters that the network registers twice."""
    first: dict[int, str] = {}
    out = {}
    for key, value in model.state_dict(keep_vars=True).items():
        out[key] = first.setdefault(id(value), key)
    return out


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint, *, half: bool = False) -> Path:
    """Write checkpoint to path as one file, atomically (float16 weights when half)."""
    return save_checkpoint_payload(path, checkpoint.to_payload(half=half))


def load_checkpoint(path: str | os.PathLike, *, organs: Sequence[str] | None = None) -> Checkpoint:
    """Read and validate a checkpoint (never unpickling arbitrary objects); with organs, require that organ list.

    Raises CheckpointError naming the file.
    """
    checkpoint = Checkpoint.from_payload(load_checkpoint_payload(path), path)
    if organs is not None and tuple(organs) != checkpoint.organs:
        raise CheckpointError(path, f"organs {', '.join(checkpoint.organs)} differ from the expected "
                                    f"{', '.join(organs)}")
    try:
        checkpoint.build()
    except RuntimeError as exc:
        raise CheckpointError(path, f"weights do not fit {checkpoint.arch} / {checkpoint.size} "
                                    f"({str(exc).splitlines()[0][:160]})") from exc
    return checkpoint
