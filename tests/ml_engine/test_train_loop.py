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


def test_preprocessed_cases_are_cached_on_disk_and_memory_mapped(case, tmp_path):
    from ml_engine.train import cached_train_case

    built = []

    def build():
        built.append(1)
        return case

    first = cached_train_case(tmp_path / "cache", "case-a:3mm", build)
    again = cached_train_case(tmp_path / "cache", "case-a:3mm", build)
    assert len(built) == 1 and isinstance(again.image, np.memmap) and isinstance(again.labels, np.memmap)
    assert np.array_equal(again.image, case.image) and np.array_equal(again.labels, case.labels)
    assert np.array_equal(again.labelled, case.labelled) and again.name == case.name and first is case
    # trained on the cache, the same weights as on the arrays in memory
    a, b = train([case], _config()), train([again], _config())
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    # another key is another entry; a damaged entry is rebuilt; the oldest go past the size limit
    cached_train_case(tmp_path / "cache", "case-a:1.5mm", build)
    assert len(built) == 2
    entry = next(p for p in (tmp_path / "cache").iterdir() if (p / "case.json").is_file())
    (entry / "labels.npy").write_bytes(b"broken")
    rebuilt = [cached_train_case(tmp_path / "cache", k, build) for k in ("case-a:3mm", "case-a:1.5mm")]
    assert len(built) == 3 and all(np.array_equal(r.labels, case.labels) for r in rebuilt)
    cached_train_case(tmp_path / "cache", "case-b", build, max_bytes=1)
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) <= 1


def test_restoring_on_a_device_gives_the_cpus_voxels():
    from ml_engine.preprocess import prepare_image, restore_uint8

    p = make_phantom(1, shape=(40, 36, 24), spacing=(1.5, 1.5, 2.5), troubles=())
    _, spec = prepare_image(p.ct, p.affine, (3.0, 3.0, 3.0))
    rng = np.random.default_rng(0)
    for prob in (rng.integers(0, 256, spec.shape).astype(np.uint8), rng.random(spec.shape).astype(np.float32)):
        assert np.array_equal(restore_uint8(prob, spec, device="cpu"), restore_uint8(prob, spec))


def test_restoring_an_organs_box_agrees_with_interpolating_the_whole_grid():
    import torch.nn.functional as F

    from ml_engine.preprocess import from_ras, prepare_image, restore_uint8

    p = make_phantom(2, shape=(64, 56, 40), spacing=(1.0, 1.0, 1.5), troubles=())
    _, spec = prepare_image(p.ct, p.affine, (3.0, 3.0, 3.0))
    prob = np.zeros(spec.shape, np.uint8)
    prob[3:9, 4:10, 2:7] = np.random.default_rng(1).integers(1, 256, (6, 6, 5))  # an organ's corner
    whole = F.interpolate(torch.from_numpy(prob).float()[None, None], size=spec.crop_shape, mode="trilinear",
                          align_corners=False)[0, 0].clamp(0, 255).round().to(torch.uint8).numpy()
    ras = np.zeros(spec.ras_shape, np.uint8)
    (x0, x1), (y0, y1), (z0, z1) = spec.crop
    ras[x0:x1, y0:y1, z0:z1] = whole
    expected = from_ras(ras, spec.ornt)
    got = restore_uint8(prob, spec)
    diff = np.abs(got.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3 and (got > 0).sum() == (expected > 0).sum()


def test_window_batch_by_device_and_window_size():
    from ml_engine.predict import CPU_WINDOW_BATCH, MAX_GPU_WINDOW_BATCH, window_batch

    assert window_batch("cpu", (32, 32, 32)) == CPU_WINDOW_BATCH
    gib = 2**30
    small_gpu = window_batch("cuda", (96, 96, 96), memory_bytes=16 * gib)
    big_gpu = window_batch("cuda", (96, 96, 96), memory_bytes=141 * gib)
    assert 1 <= small_gpu < big_gpu <= MAX_GPU_WINDOW_BATCH
    assert window_batch("cuda", (128, 128, 128), memory_bytes=16 * gib) <= small_gpu  # larger windows, fewer
    assert window_batch("cuda", (256, 256, 256), memory_bytes=8 * gib) == 1
