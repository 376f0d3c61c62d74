"""nnInteractive registered as an engine (manage.py register_interactive) and clicked through the API, run by the
package's real loader and inference on a model folder generated in its format (tests/nninteractive, random weights):
the workspace offers it after the click model with its licence, a click with engine=nninteractive answers a mask of
the crop's shape that keeps the current label away from the click, round_status lists it, and the refusals name
the option or field."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from annotation.models import Case, InteractiveModel, Task
from annotation.services.imports import import_cases
from annotation.services.interactive import pack_mask, unpack_mask
from ml_engine.interactive.nninteractive import LICENCE
from ml_engine.phantoms import make_phantom
from tests.conftest import import_or_skip, save_nifti

pytestmark = pytest.mark.django_db
SWITCH = "ATLAS_REQUIRE_NNINTERACTIVE"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    import_or_skip("nnInteractive.inference.inference_session", switch=SWITCH,
                   reason="make venv installs requirements-nninteractive.txt (--no-deps); an optional extra")
    from tests.nninteractive import write_tiny_folder

    torch.set_num_threads(1)
    return write_tiny_folder(tmp_path_factory.mktemp("nnint"))


@pytest.fixture
def registered(world, folder):
    out = io.StringIO()
    call_command("register_interactive", "--kind", "nninteractive", "--folder", str(folder), stdout=out)
    assert "registered nninteractive" in out.getvalue() and "non-commercial" in out.getvalue()
    return InteractiveModel.objects.get(name="nninteractive")


@pytest.fixture
def long_case(world, tmp_path):
    phantom = make_phantom(7101, shape=(128, 64, 48))
    save_nifti(tmp_path / "ph" / "phantom_nnint.nii.gz", phantom.ct, phantom.affine)
    assert import_cases(tmp_path / "ph", dataset="work").ok
    case = Case.objects.get(name="phantom_nnint")
    Task.objects.create(case=case, round=world.round, assignee=world.users["a1"], priority=1.0)
    return case


def test_registration_records_the_folder_licence_and_citation(registered, folder):
    meta = registered.metadata
    assert registered.registered and registered.kind == "nninteractive" and meta["folder"] == str(folder.resolve())
    assert meta["licence"] == LICENCE and "Isensee" in meta["citation"] and "nnInteractive" in meta["citation"]
    assert "huggingface.co/MIC-DKFZ/nnInteractive" in meta["source"] and meta["fold"] == "fold_0"


def test_the_workspace_offers_it_after_the_click_model_with_its_licence(world, registered):
    engines = world.client("a1").get("/api/interactive/").json()["engines"]
    assert [e["kind"] for e in engines] == ["atlas-click", "nninteractive"]
    assert engines[1]["licence"] == LICENCE and "Isensee" in engines[1]["citation"]
    assert engines[1]["validation"]["dice_1"] is None and not engines[1]["fine_tuned"]
    members = world.client("lead").get("/api/dashboard/members/")
    assert members.status_code == 200, members.content
    assert [e["licence"] for e in members.json()["interactive"]][1] == LICENCE


@pytest.mark.slow  # runs nnInteractive's network
def test_a_click_answers_a_mask_of_the_crops_shape_keeping_the_label_away_from_it(world, registered, long_case,
                                                                                  settings):
    """AutoZoom off: nnInteractive predicts the 64^3 patch around each click (x 68..141) and the current label sent
    (x 4..19) comes back as it went in: it was the initial segmentation, not a start from scratch."""
    settings.ATLAS_NNINTERACTIVE_AUTOZOOM = False
    lo, hi = [0, 0, 0], [127, 63, 47]
    label = np.zeros((128, 64, 48), dtype=bool)
    label[4:20, 10:30, 10:30] = True
    body = {"organ": "liver", "box": [lo, hi], "label": pack_mask(label), "positive": [[110, 32, 24]],
            "negative": [[100, 40, 24]], "engine": "nninteractive"}
    answer = world.client("a1").post(f"/api/cases/{long_case.pk}/click/", body, format="json")
    assert answer.status_code == 200, answer.content
    out = answer.json()
    assert out["shape"] == [128, 64, 48] and out["engine"]["name"] == "nninteractive"
    assert out["engine"]["licence"] == LICENCE and "nnInteractive 2.6.0" in out["engine"]["version"]
    mask = unpack_mask(out["mask"], out["shape"], field="mask")
    assert mask[4:20, 10:30, 10:30].all() and not mask[:60][~label[:60]].any()
    again = world.client("a1").post(f"/api/cases/{long_case.pk}/click/", {**body, "engine": registered.name},
                                    format="json")
    assert again.status_code == 200 and again.json()["shape"] == [128, 64, 48]


def test_round_status_lists_it_with_its_licence(world, registered):
    out = io.StringIO()
    call_command("round_status", stdout=out)
    line = next(row for row in out.getvalue().splitlines() if "interactive engine nninteractive" in row)
    assert LICENCE in line and "Isensee" in line


def test_removed_it_is_no_longer_offered(world, registered, long_case):
    call_command("register_interactive", "--name", "nninteractive", "--remove", stdout=io.StringIO())
    assert [e["kind"] for e in world.client("a1").get("/api/interactive/").json()["engines"]] == ["atlas-click"]
    label = np.zeros((8, 8, 8), dtype=bool)
    answer = world.client("a1").post(f"/api/cases/{long_case.pk}/click/", {
        "organ": "liver", "box": [[0, 0, 0], [7, 7, 7]], "label": pack_mask(label), "positive": [[4, 4, 4]],
        "engine": "nninteractive"}, format="json")
    assert answer.status_code == 404 and answer.json()["field"] == "engine"


def test_registered_but_without_the_package_here_a_click_answers_409_naming_it(world, registered, long_case,
                                                                              monkeypatch):
    from annotation.ml_adapter import interactive as adapter

    monkeypatch.setattr(adapter, "_engines", {})  # this process has not loaded it yet
    monkeypatch.setitem(sys.modules, "nnInteractive.inference.inference_session", None)
    answer = world.client("a1").post(f"/api/cases/{long_case.pk}/click/", {
        "organ": "liver", "box": [[0, 0, 0], [7, 7, 7]], "label": pack_mask(np.zeros((8, 8, 8), dtype=bool)),
        "positive": [[4, 4, 4]], "engine": "nninteractive"}, format="json")
    assert answer.status_code == 409 and answer.json()["field"] == "engine"
    assert "requirements-nninteractive.txt" in answer.json()["detail"]


def test_a_folder_that_is_not_one_is_refused_naming_the_option(world, folder, tmp_path):
    with pytest.raises(CommandError, match=r"--folder: .*no such folder"):
        call_command("register_interactive", "--folder", str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CommandError, match=r"--folder: .*plans.json: missing"):
        call_command("register_interactive", "--folder", str(tmp_path / "empty"))
    with pytest.raises(CommandError, match=r"--folder: give the model folder"):
        call_command("register_interactive")
    assert not InteractiveModel.objects.filter(kind="nninteractive").exists()
