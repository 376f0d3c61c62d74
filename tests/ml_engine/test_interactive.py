"""The interactive engine: prompts and their limits, simulated clicks, the click model's checkpoint, training,
the engine on real geometry (orientation, spacing), and the bounded sessions and slots."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import torch
from scipy import ndimage

from ml_engine.interactive import (
    SHIPPED,
    SPACING,
    ClickCheckpoint,
    ClickModelEngine,
    ClickTrainConfig,
    Crop,
    EngineBusy,
    PromptError,
    Prompts,
    Scribble,
    SessionPool,
    Slots,
    build_click_network,
    click_session,
    degrade,
    load_click_checkpoint,
    next_click,
    ras_index,
    save_click_checkpoint,
    train_click_model,
    validation_samples,
)
from ml_engine.interactive.engine import MAX_CROP_VOXELS, EngineError, local_edit
from ml_engine.interactive.prompts import MAX_POINTS, click_map
from ml_engine.io import CheckpointError
from ml_engine.labels import ORGANS
from ml_engine.phantoms import make_phantom, organ_value
from ml_engine.preprocess import to_ras
from ml_engine.train.cases import make_train_case


@pytest.fixture(scope="module")
def engine() -> ClickModelEngine:
    torch.set_num_threads(1)
    return ClickModelEngine()


def _sphere(shape, centre, radius):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius ** 2


def test_prompts_refuse_points_outside_the_crop_and_too_many():
    with pytest.raises(PromptError) as err:
        Prompts(positive=((5, 5, 40),)).checked((10, 10, 10))
    assert err.value.field == "positive"
    with pytest.raises(PromptError):
        Prompts().checked((10, 10, 10))
    with pytest.raises(PromptError) as err:
        Prompts(box=((1, 1, 2), (5, 5, 3))).checked((10, 10, 10))
    assert err.value.field == "box"
    many = tuple((1, 1, 1) for _ in range(MAX_POINTS + 1))
    with pytest.raises(PromptError):
        Prompts(positive=many).checked((10, 10, 10))


def test_scribbles_are_joined_voxel_by_voxel_and_a_box_adds_its_centre():
    prompts = Prompts(scribbles=(Scribble(points=((0, 0, 0), (4, 0, 0)), positive=False),),
                      box=((2, 2, 5), (6, 8, 5)))
    positive, negative = prompts.signed_points()
    assert negative == [(i, 0, 0) for i in range(5)]
    assert positive == [(4, 5, 5)]


def test_click_map_draws_balls_and_clips_at_the_border():
    maps = click_map([(0, 0, 0), (5, 5, 5)], (8, 8, 8), 1.0)
    assert maps[5, 5, 5] == 1 and maps[6, 5, 5] == 1 and maps[6, 6, 5] == 0
    assert maps[0, 0, 0] == 1 and int(maps.sum()) == 7 + 4


def test_next_click_goes_to_the_deepest_point_of_the_largest_error():
    target = _sphere((30, 30, 30), (15, 15, 15), 8)
    label = target & ~_sphere((30, 30, 30), (15, 15, 9), 5)  # a missed chunk
    point, positive = next_click(label, target)
    assert positive and target[point] and not label[point]
    extra = target | _sphere((30, 30, 30), (15, 15, 25), 4)
    point, positive = next_click(extra, target)
    assert not positive and extra[point] and not target[point]
    assert next_click(target, target) is None


def test_degrade_is_seeded_and_wrong():
    target = _sphere((32, 32, 32), (16, 16, 16), 9)
    a = degrade(target, np.random.default_rng(3))
    b = degrade(target, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert any(not np.array_equal(degrade(target, np.random.default_rng(s)), target) for s in range(5))


def test_degrade_makes_every_kind_of_error():
    """Each of degrade's kinds, alone, changes the label as it says (an island reaches at least 4 voxels from the
    organ; slices lose whole cross-sections)."""
    from ml_engine.interactive.simulate import ERRORS

    target = _sphere((48, 48, 48), (24, 24, 24), 10)
    seen = set()
    for kind, seed in itertools.product(ERRORS, range(5)):
        label = degrade(target, np.random.default_rng(seed), kinds=(kind,))
        seen.add(kind)
        if kind == "island":
            extra = label & ~target
            assert extra.any() and ndimage.distance_transform_edt(~target)[extra].max() >= 4
        elif kind == "slices":
            lost = np.nonzero((target & ~label).any(axis=(0, 1)))[0]
            assert len(lost) and all(not label[:, :, z].any() for z in lost)
        elif kind == "side":
            assert (target & ~label).any() and not (label & ~target).any()
    assert seen == set(ERRORS)


def test_a_click_is_answered_in_passes_each_on_the_last_ones_answer():
    from ml_engine.interactive.model import answer, forward

    torch.manual_seed(0)
    model = build_click_network().eval()
    image, label, positive, negative = (torch.rand(1, 16, 16, 16) for _ in range(4))
    with torch.no_grad():
        one = forward(model, image, label, positive, negative)
        two = forward(model, image, (one[:, 0] > 0).float(), positive, negative)
        assert torch.equal(answer(model, image, label, positive, negative, passes=1), one)
        assert torch.equal(answer(model, image, label, positive, negative, passes=2), two)


def test_local_edit_keeps_only_the_changes_at_the_prompts():
    current = np.zeros((20, 20, 20), bool)
    current[2:10, 2:10, 2:10] = True
    proposed = current.copy()
    proposed[10:14, 2:10, 2:10] = True  # grown where the positive click is
    proposed[2:10, 15:18, 2:10] = True  # a piece far from any click
    proposed[2:4, 2:10, 2:10] = False  # shrunk where no negative click is
    out = local_edit(current, proposed, [(12, 5, 5)], [])
    assert out[10:14, 2:10, 2:10].all() and not out[2:10, 15:18, 2:10].any() and out[2:4, 2:10, 2:10].all()
    out = local_edit(current, proposed, [], [(3, 5, 5)])
    assert not out[2:4, 2:10, 2:10].any() and not out[10:14].any() and out[4:10, 2:10, 2:10].all()
    assert np.array_equal(local_edit(current, proposed, [(0, 19, 19)], []), current)  # nothing changed there


def test_ras_index_follows_to_ras_for_any_orientation():
    shape = (7, 9, 5)
    marker = np.zeros(shape, dtype=np.uint8)
    marker[1, 6, 3] = 1
    for affine in (np.diag([-0.8, -0.8, 2.0, 1.0]), np.diag([1.0, -1.0, 1.0, 1.0]),
                   np.array([[0, 1.0, 0, 0], [-1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])):
        ras = to_ras(marker, affine)[0]
        assert tuple(ras_index([(1, 6, 3)], shape, affine)[0].astype(int)) == tuple(np.argwhere(ras)[0])


def test_checkpoint_round_trip_and_refusals(tmp_path):
    checkpoint = ClickCheckpoint(state=build_click_network().state_dict(), organs=("liver",), metrics={"dice_1": 0.5})
    path = save_click_checkpoint(tmp_path / "click.pt", checkpoint)
    loaded = load_click_checkpoint(path)
    assert loaded.organs == ("liver",) and loaded.metrics["dice_1"] == 0.5 and loaded.spacing == SPACING
    with pytest.raises(CheckpointError, match="not an Atlas click-model checkpoint"):
        load_click_checkpoint(SHIPPED.parent / "unet_tiny.pt")
    torch.save({**checkpoint.to_payload(), "state": {"wrong": torch.zeros(2)}}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_click_checkpoint(tmp_path / "bad.pt")


def test_the_shipped_model_records_its_validation_and_clicks_improve_dice():
    shipped = load_click_checkpoint()
    m = shipped.metrics
    assert {"dice_0", "dice_1", "dice_3", "dice_5", "n_samples"} <= set(m)
    assert m["dice_5"] > m["dice_0"] + 0.1  # clicks help on held-out phantoms
    # and on a phantom the figures never saw, from a degraded start
    phantom = make_phantom(7001)
    case = make_train_case(phantom.name, phantom.ct, phantom.affine,
                           {o: phantom.labels == organ_value(o) for o in ("liver", "spleen")}, ORGANS, SPACING)
    samples = validation_samples([case], seed=5)
    model = shipped.build()
    curves = [click_session(model, image, start, target, 3, shipped.click_radius) for image, start, target in samples]
    assert np.mean([c[3] for c in curves]) > np.mean([c[0] for c in curves])


def test_engine_adds_the_organ_at_a_positive_click_on_a_real_grid(engine):
    phantom = make_phantom(7002, shape=(96, 96, 64))
    liver = phantom.organ_mask("spleen")  # from nothing, one click: an organ that fits the crop
    centre = tuple(int(v) for v in np.argwhere(liver).mean(axis=0).round())
    assert liver[centre]
    lo = [max(0, c - 30) for c in centre]
    hi = [min(n, c + 30) for c, n in zip(centre, liver.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    shift = np.eye(4)
    shift[:3, 3] = lo
    # the file stored left-right flipped (LAS): the engine must reorient
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = liver.shape[0] - 1
    ct, truth = phantom.ct[::-1], liver[::-1]
    affine = phantom.affine @ flip
    box = (slice(liver.shape[0] - hi[0], liver.shape[0] - lo[0]), box[1], box[2])
    shift[:3, 3] = [box[0].start, lo[1], lo[2]]
    click = (liver.shape[0] - 1 - centre[0] - box[0].start, centre[1] - lo[1], centre[2] - lo[2])
    empty = np.zeros(truth[box].shape, dtype=bool)
    mask = engine.segment(Crop(ct=ct[box], affine=affine @ shift, label=empty, prompts=Prompts(positive=(click,))))
    assert mask.shape == empty.shape and mask[click]
    inside = truth[box]
    dice = 2 * (mask & inside).sum() / (mask.sum() + inside.sum())
    assert dice > 0.5
    assert engine.last_seconds > 0
    # a negative click where the label is wrong takes voxels away there
    wrong = inside | _sphere(inside.shape, (5, 5, 5), 4)
    after = engine.segment(Crop(ct=ct[box], affine=affine @ shift, label=wrong,
                                prompts=Prompts(negative=((5, 5, 5),))))
    assert not after[5, 5, 5]


def test_engine_refuses_bad_crops(engine):
    ct = np.zeros((10, 10, 10), dtype=np.int16)
    with pytest.raises(EngineError) as err:
        engine.segment(Crop(ct=ct, affine=np.eye(4), label=np.zeros((9, 10, 10), bool),
                            prompts=Prompts(positive=((1, 1, 1),))))
    assert err.value.field == "label"
    with pytest.raises(PromptError):
        engine.segment(Crop(ct=ct, affine=np.eye(4), label=np.zeros((10, 10, 10), bool),
                            prompts=Prompts(positive=((11, 1, 1),))))
    assert MAX_CROP_VOXELS < 512 * 512 * 300


def test_box_keeps_the_mask_inside_it_on_its_slice(engine):
    phantom = make_phantom(7003, shape=(64, 64, 48))
    liver = phantom.organ_mask("liver")
    z = int(np.argwhere(liver)[:, 2].mean())
    xs, ys = np.nonzero(liver[:, :, z])
    box = ((int(xs.min()), int(ys.min()), z), (int(xs.max()) - 3, int(ys.max()), z))
    mask = engine.segment(Crop(ct=phantom.ct, affine=phantom.affine, label=np.zeros_like(liver),
                               prompts=Prompts(box=box)))
    outside = np.ones(liver.shape[:2], bool)
    outside[box[0][0]:box[1][0] + 1, box[0][1]:box[1][1] + 1] = False
    assert not mask[:, :, z][outside].any()
    assert mask[:, :, z].any()


def test_training_fine_tunes_from_a_parent_reproducibly():
    torch.set_num_threads(1)
    phantom = make_phantom(7004, shape=(48, 48, 32))
    case = make_train_case(phantom.name, phantom.ct, phantom.affine, {"liver": phantom.organ_mask("liver")},
                           ("liver",), SPACING)
    parent = load_click_checkpoint()
    config = ClickTrainConfig(steps=3, batch=1, patch=(32, 32, 32))
    a = train_click_model([case], organs=("liver",), config=config, init=parent)
    b = train_click_model([case], organs=("liver",), config=config, init=parent)
    assert a.parent == parent.name and a.training_cases == [phantom.name]
    key = next(iter(a.state))
    assert torch.equal(a.state[key], b.state[key])
    assert not torch.equal(a.state[key], parent.state[key].float())
    with pytest.raises(ValueError, match="no training case"):
        train_click_model([], organs=("liver",), config=config)


def test_session_pool_evicts_the_oldest_by_count_and_bytes():
    pool = SessionPool[str](max_sessions=2, max_bytes=100)
    loads = []

    def loader(key, size):
        def load():
            loads.append(key)
            return key, size
        return load

    pool.get("a", loader("a", 10))
    pool.get("b", loader("b", 10))
    pool.get("a", loader("a", 10))  # kept: no load
    pool.get("c", loader("c", 10))  # evicts b, the least recently used
    assert loads == ["a", "b", "c"] and pool.keys() == ["a", "c"]
    pool.get("d", loader("d", 95))  # over the byte limit: only d stays
    assert pool.keys() == ["d"] and pool.evictions == 3


def test_slots_make_the_next_caller_wait_then_say_busy():
    slots = Slots(1, wait=0.05)
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with slots.take():
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(5)
    with pytest.raises(EngineBusy) as err:
        with slots.take():
            pass
    assert err.value.busy == 1
    release.set()
    thread.join()
    with slots.take() as waited:
        assert waited >= 0
