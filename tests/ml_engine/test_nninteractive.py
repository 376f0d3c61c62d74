"""nnInteractive as an interactive engine (ml_engine.interactive.nninteractive), run by the package's own loading and
inference code on a model folder generated here in its format (tests/nninteractive: random weights, so the masks it
returns mean nothing; what is checked is the path: the folder's checks, the shapes, the current label going in as the
initial segmentation, the sessions kept per crop). The refusals (package missing, folder incomplete, a checkpoint
that would unpickle an object) run without the package too, where they can."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from ml_engine.interactive import Prompts, Scribble
from ml_engine.interactive.engine import Crop, EngineError
from ml_engine.interactive.nninteractive import (
    LICENCE,
    EngineUnavailable,
    NnInteractiveEngine,
    inspect_folder,
    require_package,
    scribble_crop,
)
from tests.conftest import import_or_skip

SWITCH = "ATLAS_REQUIRE_NNINTERACTIVE"
REASON = "make venv installs requirements-nninteractive.txt (--no-deps); the package is an optional extra"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import_or_skip("nnInteractive.inference.inference_session", reason=REASON, switch=SWITCH)
    from tests.nninteractive import write_tiny_folder

    torch.set_num_threads(1)
    return write_tiny_folder(tmp_path_factory.mktemp("nnint"))


@pytest.fixture(scope="module")
def engine(folder):
    return NnInteractiveEngine(folder, device="cpu", max_sessions=2, do_autozoom=False)


def _ct(shape=(100, 40, 30), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(40, 300, shape).astype(np.int16)


def test_the_folder_is_checked_and_described(folder):
    info = inspect_folder(folder)
    assert info["fold"] == "fold_0" and info["configuration"] == "3d_tiny_ps64"
    assert info["trainer"] == "nnInteractiveTrainer_stub" and info["folder_licence"] == "CC BY-NC-SA 4.0"
    assert info["capability"] == "inference_info.json" and info["package"] == "2.6.0"


@pytest.mark.slow  # runs nnInteractive's network
def test_a_click_gives_a_mask_of_the_crops_shape_and_keeps_the_label_away_from_it(engine):
    """The current label is the initial segmentation: with AutoZoom off, nnInteractive predicts only the 64^3 patch
    around the click, and the label elsewhere comes back as it went in (a start from scratch would return nothing
    there); inside the session the label is the network's prev_seg input there."""
    ct = _ct()
    label = np.zeros(ct.shape, dtype=bool)
    label[2:12, 5:20, 5:15] = True
    mask = engine.segment(Crop(ct=ct, affine=np.eye(4), label=label, prompts=Prompts(positive=((90, 20, 15),)),
                               key=("case", 1)))
    assert mask.shape == ct.shape and mask.dtype == bool
    assert mask[2:12, 5:20, 5:15].all() and not mask[:20][~label[:20]].any()
    session = engine.sessions[("case", 1)]
    prev_seg = np.asarray(session.interactions[session.channel_mapping["prev_seg"]], dtype=np.float32)
    assert (prev_seg[:20] > 0.5).sum() == label[:20].sum() and (prev_seg[2:12, 5:20, 5:15] > 0.5).all()
    assert engine.last_seconds > 0 and engine.loaded_licence == "CC BY-NC-SA 4.0" and engine.licence == LICENCE


@pytest.mark.slow  # runs nnInteractive's network
def test_every_prompt_kind_runs_and_sessions_are_kept_per_crop(engine):
    ct = _ct((70, 66, 20), seed=1)
    prompts = Prompts(positive=((30, 30, 10),), negative=((40, 40, 10),),
                      scribbles=(Scribble(points=((10, 10, 5), (20, 14, 5))), Scribble(points=((50, 50, 5),),
                                                                                       positive=False)),
                      box=((5, 5, 12), (30, 40, 12)))
    for key in (("a", 1), ("b", 1), ("a", 1), ("c", 1)):
        mask = engine.segment(Crop(ct=ct, affine=np.eye(4), label=np.zeros(ct.shape, bool), prompts=prompts, key=key))
        assert mask.shape == ct.shape
    assert engine.open_keys() == [("a", 1), ("c", 1)]  # at most 2, the least recently used evicted


@pytest.mark.slow  # runs nnInteractive's network
def test_a_blank_crop_is_refused_naming_the_box(engine):
    ct = np.zeros((70, 70, 20), dtype=np.int16)
    with pytest.raises(EngineError) as caught:
        engine.segment(Crop(ct=ct, affine=np.eye(4), label=np.zeros(ct.shape, bool),
                            prompts=Prompts(positive=((5, 5, 5),)), key=("blank", 1)))
    assert caught.value.field == "box" and "zero" in str(caught.value)


def test_a_scribble_becomes_a_thickened_crop_on_its_slice():
    image, bbox = scribble_crop([(10, 10, 5), (11, 10, 5), (12, 11, 5)], (40, 40, 20), [2, 2, 2])
    assert bbox[2] == [5, 6] and image.shape == tuple(b - a for a, b in bbox)
    assert image.sum() > 3 and image.max() == 1


@pytest.mark.parametrize("broken, says", [
    (lambda f: (f / "plans.json").unlink(), "plans.json: missing"),
    (lambda f: (f / "inference_info.json").unlink(), "capability file"),
    (lambda f: (f / "fold_0" / "checkpoint_final.pth").unlink(), "checkpoint_final.pth: missing"),
    (lambda f: (f / "fold_0").rename(f / "weights"), "no fold_N folder"),
    (lambda f: (f / "dataset.json").write_text("[1, 2"), "dataset.json: not readable JSON"),
    (lambda f: (f / "inference_info.json").write_text(json.dumps({"supports_initial_label": False})),
     "takes no initial segmentation"),
])
def test_an_incomplete_folder_is_refused_naming_the_file(folder, tmp_path, broken, says):
    import shutil

    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    broken(copy)
    with pytest.raises(EngineUnavailable, match=says):
        inspect_folder(copy)
    with pytest.raises(EngineUnavailable, match="no such folder"):
        inspect_folder(tmp_path / "absent")


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_a_checkpoint_that_would_unpickle_an_object_is_refused(folder, tmp_path):
    import shutil

    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    checkpoint = torch.load(copy / "fold_0" / "checkpoint_final.pth", weights_only=True)
    torch.save({**checkpoint, "extra": _Payload()}, copy / "fold_0" / "checkpoint_final.pth")
    with pytest.raises(EngineUnavailable, match="not a loadable nnInteractive checkpoint"):
        inspect_folder(copy)


def test_without_the_package_the_refusal_names_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nnInteractive.inference.inference_session", None)
    with pytest.raises(EngineUnavailable, match="nnInteractive package is not installed.*requirements-nninteractive"):
        require_package()
    with pytest.raises(EngineUnavailable, match="not installed"):
        inspect_folder(tmp_path)
