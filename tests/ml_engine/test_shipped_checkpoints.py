"""The shipped tiny checkpoints know today's phantoms: held-out Dice and the organs on the right sides.

Checkpoints trained on mirrored phantoms would load and run but put the right kidney on the patient's left; this holds
them to the phantoms' sides (test_sides.check_sides, in RAS+ world mm) and to a held-out Dice well below the one
docs/benchmarks.md records, so that a regression of the generator or of the checkpoints shows here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml_engine.networks import ARCHITECTURES
from ml_engine.phantoms import ORGANS, make_phantom
from ml_engine.predict import Predictor
from ml_engine.train import load_checkpoint
from tests.ml_engine.test_sides import check_sides, world_centroids

pytestmark = pytest.mark.slow  # runs the ensemble

SHIPPED = Path(__file__).resolve().parents[2] / "ml_engine" / "checkpoints"
HELD_OUT_SEED = 5000  # benchmarks/bench_train.py's first test phantom; training used seeds 1000-1019


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


@pytest.fixture(scope="module")
def held_out():
    checkpoints = [load_checkpoint(SHIPPED / f"{arch}_tiny.pt") for arch in ARCHITECTURES]
    assert all(1000 + 19 >= int(name.rsplit("_", 1)[-1]) >= 1000 for c in checkpoints for name in c.training_cases)
    phantom = make_phantom(HELD_OUT_SEED, name=f"phantom_{HELD_OUT_SEED}")
    label, masks = Predictor(checkpoints).predict_masks(phantom.ct, phantom.affine)
    return phantom, label, masks


def test_shipped_ensemble_segments_a_held_out_phantom(held_out):
    phantom, _, masks = held_out
    scores = {organ: _dice(masks[organ], phantom.labels == i + 1) for i, organ in enumerate(ORGANS)}
    assert np.mean(list(scores.values())) > 0.85, scores
    assert min(scores.values()) > 0.5, scores
    for side in ("kidney_right", "kidney_left"):
        assert scores[side] > 0.8, scores


def test_shipped_ensemble_puts_the_organs_on_the_phantoms_sides(held_out):
    phantom, label, _ = held_out
    predicted = world_centroids(label, phantom.affine, {organ: i + 1 for i, organ in enumerate(ORGANS)})
    check_sides(predicted)
    truth = world_centroids(phantom.labels, phantom.affine, {organ: i + 1 for i, organ in enumerate(ORGANS)})
    for organ in ORGANS:
        assert np.linalg.norm(predicted[organ] - truth[organ]) < 10.0, (organ, predicted[organ], truth[organ])
