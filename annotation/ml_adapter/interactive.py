"""The click model in Django's world: training it on a round's labelled cases, and the warm process-wide state of
the interactive tool (engines loaded once: the click model and registered nnInteractive folders; a bounded pool of
open cases' CTs; a bounded number of calls at once)."""

from __future__ import annotations

import functools
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings

from annotation.ml_adapter.common import load_case_volume
from annotation.ml_adapter.training import training_cases
from annotation.models import Case, InteractiveModel
from annotation.selectors.labels import LabelRef
from annotation.storage import local_copy, store_file
from ml_engine.interactive import (
    FINE_TUNE,
    SHIPPED,
    SPACING,
    ClickCheckpoint,
    ClickModelEngine,
    SessionPool,
    Slots,
    load_click_checkpoint,
    save_click_checkpoint,
    train_click_model,
    validation_samples,
    with_validation,
)
from ml_engine.interactive.engine import InteractiveEngine
from ml_engine.interactive.nninteractive import NnInteractiveEngine, inspect_folder

MAX_VALIDATION_SAMPLES = 40  # (case, organ) pairs clicked on 5 times each to validate a round's click model


def load_click_model(model: InteractiveModel | None) -> ClickCheckpoint:
    """The click model's checkpoint of a stored model (None: the shipped one)."""
    if model is None or not model.checkpoint:
        return load_click_checkpoint(SHIPPED)
    with local_copy(model.checkpoint.name) as path:
        checkpoint = load_click_checkpoint(path)
    checkpoint.name = Path(model.checkpoint.name).name
    return checkpoint


def train_click(*, organs: Sequence[str], values: dict[str, int], cases: Sequence[tuple[Case, LabelRef]],
                holdout: Sequence[tuple[Case, LabelRef]], parent: InteractiveModel | None, steps: int | None,
                seed: int, storage_name: str, progress: Callable[[float, str], None]) -> dict:
    """Fine-tune the click model from parent (None: the shipped one) on cases, validate it on holdout (else on the
    training cases, and say so) and store it under storage_name; returns its metadata."""
    init = load_click_model(parent)
    train_cases = training_cases(cases, organs=organs, values=values, spacing=SPACING)
    config = FINE_TUNE if steps is None else FINE_TUNE.__class__(**{**FINE_TUNE.__dict__, "steps": int(steps),
                                                                     "seed": seed})
    checkpoint = train_click_model(train_cases, organs=organs, config=config, init=init,
                                   progress=lambda done, total, loss: progress(0.8 * done / total,
                                                                               f"step {done}/{total}, loss {loss:.3f}"))
    held = training_cases(holdout, organs=organs, values=values, spacing=SPACING) if holdout else []
    progress(0.85, f"validating on {len(held) or len(train_cases)} cases with 1, 3 and 5 simulated clicks")
    samples = validation_samples(held or train_cases, seed=seed + 1)[:MAX_VALIDATION_SAMPLES]
    checkpoint = with_validation(checkpoint, samples)
    with tempfile.TemporaryDirectory(prefix="atlas-click-") as tmp:
        store_file(storage_name, save_click_checkpoint(Path(tmp) / "click.pt", checkpoint))
    return {"parent": parent.name if parent is not None else SHIPPED.name,
            "training_cases": [c.name for c in train_cases], "metrics": dict(checkpoint.metrics),
            "validated_on": "held-out cases" if held else "training cases (no held-out case this round)",
            "validation_cases": [c.name for c in (held or train_cases)]}


def shipped_metadata() -> dict:
    """What the shipped click model records about itself (its validation on held-out phantoms): read once per
    process (the file ships with the code; the engines list, round_status and Slicer's /info ask for it)."""
    return dict(_shipped_metadata())


@functools.cache
def _shipped_metadata() -> dict:
    checkpoint = load_click_checkpoint(SHIPPED)
    return {"parent": None, "training_cases": checkpoint.training_cases, "metrics": dict(checkpoint.metrics),
            "validated_on": "held-out phantoms (shipped checkpoint)", "fine_tuned": False}


# --- warm state of a web process -------------------------------------------------------------------------------------

_engines: dict[str, InteractiveEngine] = {}
_engines_lock = threading.Lock()
open_cases = SessionPool[tuple[np.ndarray, np.ndarray]](max_sessions=settings.ATLAS_INTERACTIVE_SESSIONS,
                                                   max_bytes=settings.ATLAS_INTERACTIVE_MAX_BYTES)
slots = Slots(settings.ATLAS_INTERACTIVE_SLOTS, wait=settings.ATLAS_INTERACTIVE_WAIT)


def _warm(key: str, load: Callable[[], InteractiveEngine]) -> InteractiveEngine:
    """The engine under key, loaded once per process (the last two kept)."""
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = load()
            while len(_engines) >= 2:
                _engines.pop(next(iter(_engines)))
            _engines[key] = engine
        return engine


def click_engine(model: InteractiveModel | None) -> ClickModelEngine:
    """The engine of a stored click model (None: the shipped one), loaded once per process."""
    def load() -> ClickModelEngine:
        engine = ClickModelEngine(load_click_model(model), threads=settings.ATLAS_INTERACTIVE_THREADS)
        if model is not None:
            engine.version = model.name
        return engine

    return _warm(model.name if model is not None else "shipped", load)  # type: ignore[return-value]


def inspect_nninteractive(folder: str) -> dict:
    """What registering an nnInteractive folder records (ml_engine's inspect_folder; EngineUnavailable when the
    package or a file is missing here)."""
    return inspect_folder(folder)


def nninteractive_engine(model: InteractiveModel) -> NnInteractiveEngine:
    """A registered nnInteractive folder's engine, loaded once per process (its network on CUDA where there is one),
    with up to ATLAS_INTERACTIVE_SESSIONS crops open."""
    folder = model.metadata.get("folder", "")
    return _warm(f"nninteractive:{model.pk}:{folder}:{settings.ATLAS_NNINTERACTIVE_AUTOZOOM}",  # type: ignore[return-value]
                 lambda: NnInteractiveEngine(folder, max_sessions=settings.ATLAS_INTERACTIVE_SESSIONS,
                                             do_autozoom=settings.ATLAS_NNINTERACTIVE_AUTOZOOM))


def case_ct(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The case's CT and affine, kept in the pool of open cases."""
    def load() -> tuple[tuple[np.ndarray, np.ndarray], int]:
        ct, affine = load_case_volume(case)
        return (ct, affine), int(ct.nbytes)

    return open_cases.get((case.pk, case.checksum), load)
