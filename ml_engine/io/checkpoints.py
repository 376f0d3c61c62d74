"""Model checkpoints: written atomically, read without unpickling arbitrary objects."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from ml_engine.io.errors import CheckpointError, short_error
from ml_engine.io.files import atomic_path


def save_checkpoint_payload(path: str | os.PathLike, payload: dict) -> Path:
    """torch.save payload (tensors, numbers, strings, lists, dicts only) to path, atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint_payload(path: str | os.PathLike) -> dict:
    """Load a checkpoint with torch.load(weights_only=True): arbitrary pickled objects are refused.

    Raises CheckpointError naming the file for a missing file, a corrupt file, or one that carries other objects.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        reason = next((line.strip() for line in first if "GLOBAL" in line or "Unsupported" in line), "")
        raise CheckpointError(path, "refused: carries objects other than weights and plain metadata"
                                    + (f" ({reason[:160]})" if reason else "")) from exc
    except (RuntimeError, OSError, EOFError, ValueError, zlib.error) as exc:
        raise CheckpointError(path, f"not a readable checkpoint ({short_error(exc)})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(path, f"expected a dict of weights and metadata, found {type(payload).__name__}")
    return payload
