"""Training: preprocessed training cases from labels (cached), round 0's shipped checkpoint, training or fine-tuning
one architecture and validating it against its parent on held-out cases."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from annotation.errors import Invalid
from annotation.ml_adapter.common import covered_organs, load_case_volume, load_model, read_label, shipped_checkpoint
from annotation.models import Case, ModelVersion
from annotation.selectors.labels import LabelRef
from annotation.storage import local_copy, store_file
from ml_engine.metrics import dice
from ml_engine.networks import HU_WINDOW, defaults_for
from ml_engine.predict import Predictor
from ml_engine.train.cache import cached_train_case
from ml_engine.train.cases import make_train_case
from ml_engine.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ml_engine.train.loop import TrainConfig, train

PREPROCESSED_CACHE = Path(settings.VAR_DIR) / "cache" / "preprocessed"  # per worker machine


def training_cases(labelled: Sequence[tuple[Case, LabelRef]], *, organs: Sequence[str], values: dict[str, int],
                   arch: str | None = None, size: str | None = None, spacing: Sequence[float] | None = None,
                   init: Checkpoint | None = None):
    """Preprocessed TrainCases (ml_engine.train.make_train_case) for (case, label to train on) pairs, at the
    spacing given (the click model's), else init's (a published start's), else the one of arch and size.

    values: organ -> its value in the label maps (the label set's). init: the checkpoint trained from, whose spacing
    and window (a published start's: its publisher's) the cases are preprocessed with.
    """
    if spacing is not None:
        spacing = tuple(spacing)
    else:
        spacing = tuple(init.spacing) if init is not None else tuple(defaults_for(arch, size).spacing)
    hu_window = tuple(init.hu_window) if init is not None else HU_WINDOW
    prepared = []
    for case, ref in labelled:
        covered = covered_organs(ref, organs)
        if not covered:
            continue

        def build(case=case, ref=ref):
            data, covered = read_label(ref, organs)
            ct, affine = load_case_volume(case)
            return make_train_case(case.name, ct, affine, {o: data == values[o] for o in covered}, organs,
                                   spacing, hu_window=hu_window)

        # preprocessed once per case, label and spacing for every architecture and round, memory-mapped from disk
        key = json.dumps([case.checksum, case.ct_file.name, ref.name, _stamp(ref.name), list(organs),
                          [values[o] for o in organs], covered, list(spacing)]
                         + ([list(hu_window)] if hu_window != tuple(HU_WINDOW) else []))
        prepared.append(cached_train_case(PREPROCESSED_CACHE, key, build))
    return prepared


def _stamp(name: str) -> str:
    """The stored file's size and modification time: a label replaced under the same name is a new cache key."""
    try:
        return f"{default_storage.size(name)}:{default_storage.get_modified_time(name).timestamp()}"
    except (NotImplementedError, OSError):
        return ""


def adopt_shipped(*, arch: str, size: str, organs: Sequence[str], storage_name: str) -> dict | None:
    """Round 0 without a labelled case: the shipped checkpoint of arch and size, stored as it is (not fine-tuned), when
    there is one for these organs; else None. Returns the model's metadata."""
    shipped = shipped_checkpoint(arch, size)
    if shipped is None or tuple(load_checkpoint(shipped).organs) != tuple(organs):
        return None
    store_file(storage_name, shipped)
    return {"parent": shipped.name, "training_cases": [], "fine_tuned": False,
            "note": "no labelled case: the shipped checkpoint as it is"}


def adopt_start(*, start: ModelVersion, storage_name: str) -> None:
    """Round 0 without a labelled case: a registered start's checkpoint, stored as the round's model as it is."""
    with local_copy(start.checkpoint.name) as path:
        store_file(storage_name, path)


def train_architecture(*, arch: str, size: str, organs: Sequence[str], values: dict[str, int],
                       cases: Sequence[tuple[Case, LabelRef]], parent: ModelVersion | None, steps: int | None,
                       epochs: int | None, seed: int, storage_name: str, progress: Callable[[float, str], None],
                       holdout: Sequence[tuple[Case, LabelRef]] = ()) -> dict:
    """Train (round 0: from the shipped checkpoint when there is one) or fine-tune (from parent) one architecture.

    Stores the checkpoint under storage_name; returns its metadata (parent, cases, metrics, and with a holdout of
    revised cases left out of training, the validation Dice of the new model and of its parent on them).
    """
    init, parent_name = None, None
    if parent is not None:
        init, parent_name = load_model(parent), parent.name
    elif (shipped := shipped_checkpoint(arch, size)) is not None:
        candidate = load_checkpoint(shipped)
        if tuple(candidate.organs) == tuple(organs):
            init, parent_name = candidate, shipped.name
    train_cases = training_cases(cases, organs=organs, values=values, arch=arch, size=size, init=init)
    if not train_cases:
        raise Invalid("no labelled case to train on: import labels or revise some cases first")
    batch = defaults_for(arch, size).batch
    if steps is None and epochs is not None:
        steps = max(1, math.ceil(epochs * len(train_cases) / batch))
    config = TrainConfig(arch=arch, size=size, organs=tuple(organs), steps=steps, seed=seed)
    share = 0.9 if holdout else 1.0
    checkpoint = train(train_cases, config, init=init,
                       progress=lambda done, total, loss: progress(share * done / total,
                                                                   f"step {done}/{total}, loss {loss:.3f}"))
    meta = {"parent": parent_name, "training_cases": [c.name for c in train_cases],
            "metrics": dict(checkpoint.metrics)}
    if holdout:
        progress(share, f"validating on {len(holdout)} held-out revised cases")
        meta["validation"] = validate(checkpoint, init, holdout, organs=organs, values=values)
    with tempfile.TemporaryDirectory(prefix="atlas-ckpt-") as tmp:
        local = save_checkpoint(Path(tmp) / "model.pt", checkpoint)
        store_file(storage_name, local)
    return meta


def validate(model: Checkpoint, parent: Checkpoint | None, cases: Sequence[tuple[Case, LabelRef]], *,
             organs: Sequence[str], values: dict[str, int]) -> dict:
    """Per-organ Dice, averaged over cases, of model (and of its parent) against the cases' labels to train on.

    Returns {"cases", "dice", "mean", "parent_dice", "parent_mean"} (parent_* None without a parent).
    """
    scores: dict[str, dict[str, list[float]]] = {"model": {o: [] for o in organs}, "parent": {o: [] for o in organs}}
    members = {"model": Predictor([model])} | ({"parent": Predictor([parent])} if parent is not None else {})
    names = []
    for case, ref in cases:
        names.append(case.name)
        truth, covered = read_label(ref, organs)
        ct, affine = load_case_volume(case)
        for key, predictor in members.items():
            _, masks = predictor.predict_masks(ct, affine)
            for organ in covered:
                scores[key][organ].append(dice(masks[organ], truth == values[organ]))

    def summary(key: str) -> tuple[dict[str, float | None], float | None]:
        if key not in members:
            return {}, None
        per_organ = {o: (round(float(np.mean(v)), 4) if v else None) for o, v in scores[key].items()}
        known = [v for v in per_organ.values() if v is not None]
        return per_organ, (round(float(np.mean(known)), 4) if known else None)

    model_dice, model_mean = summary("model")
    parent_dice, parent_mean = summary("parent")
    return {"cases": names, "dice": model_dice, "mean": model_mean,
            "parent_dice": parent_dice or None, "parent_mean": parent_mean}
