"""The click tool's endpoints: GET /api/interactive/ (engines, versions, licences, validation) and
POST /api/cases/{id}/click/ (a click turned into the organ's new mask in a crop), on a phantom whose pseudo-label
misses the liver; refusals name the field; a busy engine answers 503."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest

from annotation.ml_adapter import interactive as adapter
from annotation.models import Case, Task
from annotation.services.imports import import_cases
from annotation.services.interactive import pack_mask, unpack_mask
from ml_engine.phantoms import make_phantom
from tests.conftest import save_nifti

pytestmark = pytest.mark.django_db


@pytest.fixture
def phantom_case(world, tmp_path):
    phantom = make_phantom(7100, shape=(64, 64, 48))
    save_nifti(tmp_path / "ph" / "phantom_click.nii.gz", phantom.ct, phantom.affine)
    assert import_cases(tmp_path / "ph", dataset="work").ok
    case = Case.objects.get(name="phantom_click")
    Task.objects.create(case=case, round=world.round, assignee=world.users["a1"], priority=1.0)
    return case, phantom


def _request(case: Case, phantom, organ="liver", label=None, **extra) -> dict:
    liver = phantom.organ_mask(organ)
    centre = [int(v) for v in np.argwhere(liver).mean(axis=0).round()]
    lo = [max(0, c - 24) for c in centre]
    hi = [min(n - 1, c + 24) for c, n in zip(centre, liver.shape, strict=True)]
    shape = [b - a + 1 for a, b in zip(lo, hi, strict=True)]
    current = np.zeros(shape, dtype=bool) if label is None else label
    return {"organ": organ, "box": [lo, hi], "label": pack_mask(current), "positive": [centre], **extra}


def test_engines_list_the_click_model_with_its_validation(world):
    answer = world.client("a1").get("/api/interactive/")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    engine = body["engines"][0]
    assert engine["kind"] == "atlas-click" and engine["licence"]
    assert engine["validation"]["dice_5"] > engine["validation"]["dice_0"]
    assert body["crop_mm"] > 0 and body["max_voxels"] > 0 and body["max_points"] == 2048
    assert world.client(None).get("/api/interactive/").status_code in (401, 403)


def test_a_positive_click_on_a_missed_liver_adds_the_liver(world, phantom_case):
    case, phantom = phantom_case
    body = _request(case, phantom)
    answer = world.client("a1").post(f"/api/cases/{case.pk}/click/", body, format="json")
    assert answer.status_code == 200, answer.content
    out = answer.json()
    lo, hi = out["box"]
    mask = unpack_mask(out["mask"], out["shape"])
    truth = phantom.organ_mask("liver")[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    dice = 2 * (mask & truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.5, dice
    assert out["changed"] == int(mask.sum())  # the label sent was empty
    assert out["engine"]["name"] == "atlas-click" and out["seconds"]["engine"] > 0
    assert out["seconds"]["total"] >= out["seconds"]["engine"]
    # a second click: the page sends what it holds now; a negative click outside the liver keeps it out
    outside = [lo[0] + 1, lo[1] + 1, lo[2] + 1]
    again = world.client("a1").post(f"/api/cases/{case.pk}/click/", {**body, "label": out["mask"],
                                                                      "negative": [outside]}, format="json")
    assert again.status_code == 200, again.content
    second = unpack_mask(again.json()["mask"], out["shape"])
    assert not second[1, 1, 1]


@pytest.mark.parametrize("change, field", [
    ({"organ": "heart"}, "organ"),
    ({"box": [[0, 0, 0], [80, 10, 10]]}, "box"),
    ({"label": "not base64!"}, "label"),
    ({"label": base64.b64encode(b"\x00\x01").decode()}, "label"),
    ({"positive": [[200, 1, 1]]}, "positive"),
    ({"positive": [[1, 2]]}, "positive"),
    ({"positive": [], "negative": []}, "positive"),
    ({"box2d": [[1, 1, 1], [5, 5, 2]]}, "box2d"),
    ({"scribbles": [{"points": []}]}, "scribbles"),
    ({"engine": "sam"}, "engine"),
])
def test_refusals_name_the_field(world, phantom_case, change, field):
    case, phantom = phantom_case
    answer = world.client("a1").post(f"/api/cases/{case.pk}/click/", {**_request(case, phantom), **change},
                                     format="json")
    assert 400 <= answer.status_code < 500, answer.content
    assert answer.json().get("field") == field or field in answer.json(), answer.json()


def test_only_who_may_see_the_case_may_click(world, phantom_case):
    case, phantom = phantom_case
    body = _request(case, phantom)
    assert world.client(None).post(f"/api/cases/{case.pk}/click/", body, format="json").status_code in (401, 403)
    assert world.client("nobody").post(f"/api/cases/{case.pk}/click/", body, format="json").status_code == 403
    assert world.client("a2").post(f"/api/cases/{case.pk}/click/", body, format="json").status_code == 404
    assert world.client("lead").post(f"/api/cases/{case.pk}/click/", body, format="json").status_code == 200
    assert world.client("a1").post("/api/cases/999999/click/", body, format="json").status_code == 404


def test_a_busy_engine_answers_503_with_the_wait(world, phantom_case, monkeypatch):
    case, phantom = phantom_case
    monkeypatch.setattr(adapter.slots, "wait", 0.05)
    inside, release = threading.Event(), threading.Event()

    def hold():
        with adapter.slots.take():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        inside.wait(5)
        answer = world.client("a1").post(f"/api/cases/{case.pk}/click/", _request(case, phantom), format="json")
    finally:
        release.set()
        thread.join()
    assert answer.status_code == 503, answer.content
    body = answer.json()
    assert "busy" in body["detail"] and body["running"] == 1 and body["waited"] >= 0.05


def test_open_cases_are_kept_and_bounded(world, phantom_case, monkeypatch):
    case, phantom = phantom_case
    pool = adapter.SessionPool(max_sessions=1)
    monkeypatch.setattr(adapter, "open_cases", pool)
    client = world.client("a1")
    for _ in range(2):
        assert client.post(f"/api/cases/{case.pk}/click/", _request(case, phantom), format="json").status_code == 200
    assert pool.loads == 1  # the CT was read once for two clicks
    other = world.cases["big"]
    world.task("big").__class__.objects.filter(pk=world.task("big").pk).update(assignee=world.users["a1"])
    body = {"organ": "liver", "box": [[2, 2, 2], [10, 10, 8]], "label": pack_mask(np.zeros((9, 9, 7), bool)),
            "positive": [[5, 5, 5]]}
    assert client.post(f"/api/cases/{other.pk}/click/", body, format="json").status_code == 200
    assert pool.keys() == [(other.pk, other.checksum)] and pool.evictions == 1
