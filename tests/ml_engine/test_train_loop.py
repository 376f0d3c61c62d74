"""The training loop's plumbing: batches prefetched in a thread (same seed, same batches), float32 noise, precision
by device, the loss read every N steps and progress about once a second."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from ml_engine.networks import TRAINING_DEFAULTS
from ml_engine.phantoms import ORGANS, make_phantom
from ml_engine.train import TrainConfig, augment, autocast_dtype, make_train_case, prefetch, train

SPACING = (6.0, 6.0, 6.0)


def test_prefetch_yields_the_batches_of_a_plain_loop_in_order():
    def batches(seed):
        rng = np.random.default_rng(seed)
        return lambda: (torch.from_numpy(rng.random(4)),)

    plain_make = batches(3)
    plain = [plain_make()[0] for _ in range(20)]
    fetched = [b[0] for b in prefetch(batches(3), 20, depth=3)]
    assert len(fetched) == 20 and all(torch.equal(a, b) for a, b in zip(plain, fetched, strict=True))


def test_prefetch_runs_ahead_in_another_thread_and_raises_its_errors():
    threads = []

    def make():
        threads.append(threading.current_thread().name)
        if len(threads) == 3:
            raise ValueError("bad patch")
        return (torch.zeros(1),)

    got = []
    with pytest.raises(ValueError, match="bad patch"):
        for batch in prefetch(make, 5):
            got.append(batch)
    assert len(got) == 2 and set(threads) == {"atlas-batches"}


def test_leaving_early_stops_the_producer():
    made = []
    for _ in prefetch(lambda: made.append(1) or (torch.zeros(1),), 1000, depth=2):
        break
    assert len(made) <= 4
    assert not [t for t in threading.enumerate() if t.name == "atlas-batches"]


def test_augment_stays_float32_and_in_place_of_the_patch():
    rng = np.random.default_rng(0)
    patch = rng.random((8, 8, 8)).astype(np.float32)
    before = patch.copy()
    outs = [augment(patch, rng) for _ in range(30)]
    assert all(o.dtype == np.float32 and o.shape == patch.shape for o in outs)
    assert any(not np.array_equal(o, patch) for o in outs) and np.array_equal(patch, before)


def test_precision_by_device():
    assert autocast_dtype(torch.device("cpu")) == (None, False)
    if torch.cuda.is_available():
        dtype, scaler = autocast_dtype(torch.device("cuda"))
        assert (dtype, scaler) in ((torch.bfloat16, False), (torch.float16, True))
        assert (dtype == torch.bfloat16) == torch.cuda.is_bf16_supported()


def test_nnunet_base_rate_fits_adamw():
    assert TRAINING_DEFAULTS[("nnunet", "base")].lr <= 1e-3  # not nnU-Net's SGD rate of 1e-2


@pytest.fixture(scope="module")
def case():
    p = make_phantom(0, shape=(24, 24, 16), spacing=SPACING, troubles=())
    return make_train_case(p.name, p.ct, p.affine, {o: p.labels == i + 1 for i, o in enumerate(ORGANS)}, ORGANS,
                           SPACING)


def _config(**kw) -> TrainConfig:
    return TrainConfig(arch="unet", organs=ORGANS, patch=(16, 16, 16), spacing=SPACING, batch=1, steps=6, seed=2, **kw)


def test_progress_about_once_an_interval_and_at_the_last_step(case):
    every, rare = [], []
    a = train([case], _config(progress_seconds=0, loss_every=4), progress=lambda *a: every.append(a))
    b = train([case], _config(progress_seconds=3600), progress=lambda *a: rare.append(a))
    assert [s[0] for s in every] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(s[2]) for s in every)
    assert [s[:2] for s in rare] == [(6, 6)]
    # the loss read in blocks is the same loss: same seed, same weights, same reported last loss
    assert rare[-1][2] == pytest.approx(every[-1][2])
    for key in a.state:
        assert torch.equal(a.state[key], b.state[key])
