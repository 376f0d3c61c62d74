"""GET /api/cases/{id}/members/: the members' probabilities of one organ cropped to a box, their mean, the attention
region at a seed, and whether the members agree there."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import OrganAttention
from annotation.services.predictions import record_prediction
from ml_engine.ensemble import mean_probability
from ml_engine.io import load_nifti
from tests.api.conftest import SHAPE
from tests.conftest import affine_for, save_nifti

pytestmark = pytest.mark.django_db

LIVER = 5


def _unpack(text: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(shape, order="F")


@pytest.fixture
def members(world, tmp_path):
    """Three members' liver probabilities for case 'big': two alike, one without the liver's rows y 13..14."""
    rng = np.random.default_rng(0)
    liver = (world.pseudo == LIVER).astype(np.float32)
    probs = {"swin_unetr": liver * 0.9, "nnunet": liver * 0.8 + 0.05, "unet": liver * 0.7}
    probs["unet"][:, 13:15] = 0
    probs["unet"] += rng.random(SHAPE).astype(np.float32) * 0.1
    affine = affine_for()
    files = {arch: {"liver": save_nifti(tmp_path / f"{arch}.nii.gz", np.rint(p * 255).astype(np.uint8), affine)}
             for arch, p in probs.items()}
    heat = np.zeros(SHAPE, dtype=np.uint8)
    heat[5:9, 5:9, 4:7] = 100
    heat[15:17, 15:17, 1:3] = 100  # another component
    case = world.cases["big"]
    pseudo = save_nifti(tmp_path / "p.nii.gz", world.pseudo, affine)
    record_prediction(case=case, round=world.round, pseudo_label=pseudo,
                      attention={"liver": save_nifti(tmp_path / "h.nii.gz", heat, affine)}, soft_pred=files,
                      organs=[OrganAttentionInput("liver", 30.0, 3000)])
    assert world.client("a1").post("/api/tasks/next/").json()["case"]["name"] == "big"  # a1 may see the case
    return {arch: np.rint(p * 255).astype(np.uint8) for arch, p in probs.items()}, heat


def test_members_cropped_to_the_box(world, members):
    probs, heat = members
    case = world.cases["big"]
    answer = world.client("a1").get(f"/api/cases/{case.pk}/members/",
                                     {"organ": "liver", "box": "4,4,2,14,9,9", "seed": "6,6,5"})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["box"] == [[4, 4, 2], [14, 9, 9]] and body["shape"] == [11, 6, 8]
    crop = (slice(4, 15), slice(4, 10), slice(2, 10))
    assert [m["name"] for m in body["members"]] == ["nnunet", "swin_unetr", "unet"]
    for m in body["members"]:
        np.testing.assert_array_equal(_unpack(m["probability"], body["shape"]), probs[m["name"]][crop])
    stack = np.stack([probs[n][crop] for n in sorted(probs)])
    np.testing.assert_array_equal(_unpack(body["mean"], body["shape"]), mean_probability(stack))  # the ensemble's rule
    # the seed's attention component (5..8, 5..8, 4..6) dilated by one voxel (26-connected): 4..9, 4..9, 3..7
    region = np.zeros(SHAPE, dtype=bool)
    region[4:10, 4:10, 3:8] = True
    np.testing.assert_array_equal(_unpack(body["region"], body["shape"]).astype(bool), region[crop])
    # no liver there in any member: they agree
    assert body["agreement"] == 1.0 and body["members_agree"] is True


def test_members_disagree_in_the_region(world, members):
    case = world.cases["big"]
    body = world.client("a1").get(f"/api/cases/{case.pk}/members/",
                                  {"organ": "liver", "box": "10,10,0,20,19,6", "seed": "15,15,1"}).json()
    # the other component (15..16, 15..16, 1..2) dilated reaches the liver's row y 14 at z 3, which one member lacks
    region = _unpack(body["region"], body["shape"]).astype(bool)
    assert region.sum() == 4 * 4 * 4
    assert body["agreement"] == 0.0 and body["members_agree"] is False


def test_members_refusals(world, members):
    case = world.cases["big"]
    url = f"/api/cases/{case.pk}/members/"
    a1 = world.client("a1")
    assert a1.get(url, {"organ": "liver", "box": "1,2,3"}).status_code == 400
    assert a1.get(url, {"organ": "liver", "box": "30,30,30,40,40,40"}).status_code == 400
    assert a1.get(url, {"box": "0,0,0,5,5,5"}).status_code == 400
    assert a1.get(url, {"organ": "liver", "box": "0,0,0,5,5,5", "seed": "1,2"}).status_code == 400
    missing = a1.get(url, {"organ": "spleen", "box": "0,0,0,5,5,5"})
    assert missing.status_code == 404 and "spleen" in missing.json()["detail"]
    assert world.client("a2").get(url, {"organ": "liver", "box": "0,0,0,5,5,5"}).status_code == 404
    assert world.client(None).get(url, {"organ": "liver", "box": "0,0,0,5,5,5"}).status_code in (401, 403)
    whole = a1.get(url, {"organ": "liver", "box": "-5,-5,-5,100,100,100"}).json()
    assert whole["box"] == [[0, 0, 0], [23, 19, 11]] and whole["region"] is None


def test_members_box_size_limit(world, members, monkeypatch):
    from annotation.selectors import members as selector

    monkeypatch.setattr(selector, "MAX_VOXELS", 100)
    case = world.cases["big"]
    answer = world.client("a1").get(f"/api/cases/{case.pk}/members/", {"organ": "liver", "box": "0,0,0,10,10,10"})
    assert answer.status_code == 400 and "more than 100" in answer.json()["detail"]


def test_members_read_a_heatmap_stored_cropped_to_its_box_the_same(world, members, tmp_path):
    from annotation.models import Prediction
    from ml_engine.attention import max_heatmap
    from ml_engine.io import write_nifti_box

    _, heat = members
    case = world.cases["big"]
    queries = [{"organ": "liver", "box": "4,4,2,14,9,9", "seed": "6,6,5"},
               {"organ": "liver", "box": "10,10,0,20,19,6", "seed": "15,15,1"}]
    full = [world.client("a1").get(f"/api/cases/{case.pk}/members/", q).json() for q in queries]
    prediction = Prediction.objects.get(case=case, round=world.round)
    box = (slice(5, 17), slice(5, 17), slice(1, 7))  # both components, nothing else
    crop, start = max_heatmap([(heat[box], (5, 5, 1))])
    from django.core.files.storage import default_storage

    write_nifti_box(default_storage.path(prediction.files["attention"]["liver"]), crop, affine_for(), start)
    cropped = [world.client("a1").get(f"/api/cases/{case.pk}/members/", q).json() for q in queries]
    assert cropped == full and full[0]["region"] and full[1]["agreement"] == 0.0


def test_the_served_mean_thresholded_as_the_workspace_does_is_the_stored_pseudo_label(world, tmp_path):
    """A round's writer (ml_adapter.write_ensemble) stores the members and the pseudo-label; the served mean
    thresholded as useMembers.ts does (`mean > 127`) is the stored liver voxel for voxel inside the box, including
    exact ties: 127 and 128 average to 127.5, which is not > 0.5 x 255 (np.rint's half to even would give 128)."""
    from annotation import ml_adapter

    case = world.cases["big"]
    rng = np.random.default_rng(3)
    near = np.array([0, 126, 127, 128, 129, 255], dtype=np.uint8)
    a, b, c = (near[rng.integers(0, len(near), SHAPE)] for _ in range(3))
    a[:, :, :2] = 127
    b[:, :, :2] = 128  # exact ties: 127.5
    spleen = np.zeros(SHAPE, dtype=np.uint8)
    spleen[:3] = 255  # a second organ, apart from the liver's box below
    members = [("liver", {"m0": a, "m1": b}), ("spleen", {"m0": spleen, "m1": spleen, "m2": c})]
    files = ml_adapter.write_ensemble(members, values=case.dataset.label_set.organ_values(), shape=tuple(case.shape),
                                      affine=np.asarray(case.affine, dtype=float), workdir=tmp_path / "round")
    record_prediction(case=case, round=world.round, pseudo_label=files.pseudo_label, heatmap=files.heatmap,
                      attention=files.attention, soft_pred=files.soft_pred, organs=files.organs)
    task = world.client("a1").post("/api/tasks/next/").json()
    assert task["case"]["name"] == "big"
    # the round's hotspots, in the one format (ml_engine's Hotspot.to_dict) that the workspace reads
    spots = [h for o in OrganAttention.objects.filter(case=case, round=world.round) for h in o.hotspots]
    assert spots and all(set(h) == {"voxels", "ml", "centroid", "centroid_mm", "bbox"} for h in spots)
    assert all(len(h["bbox"]) == 2 and len(h["centroid"]) == 3 for h in spots)
    body = world.client("a1").get(f"/api/cases/{case.pk}/members/", {"organ": "liver", "box": "3,0,0,23,19,11"}).json()
    mean = _unpack(body["mean"], body["shape"])
    crop = (slice(3, 24), slice(0, 20), slice(0, 12))
    stored = np.asarray(load_nifti(files.pseudo_label).data)[crop]
    ties = (a.astype(int) + b)[crop] == 255
    assert ties.sum() > 500 and (stored[ties] == 0).all()
    np.testing.assert_array_equal(mean > 127, stored == LIVER)
    assert (stored == LIVER).sum() > 500
