"""The annotation workflow through the REST API: roles, leases, revisions, conflicts, skips, reviews, files."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.utils import timezone

from annotation.models import Case, Review, Revision, Skip, Task
from annotation.services import queue
from tests.api.conftest import PASSWORD
from tests.conftest import REPO, affine_for

pytestmark = pytest.mark.django_db


def nifti_bytes(data: np.ndarray, affine=None, gz: bool = True) -> bytes:
    image = nib.Nifti1Image(data, affine if affine is not None else affine_for())
    raw = image.to_bytes()
    return gzip.compress(raw) if gz else raw


def upload(api, task_id: int, data: bytes, name: str = "label.nii.gz", **fields):
    body = {"file": io.BytesIO(data), **{k: (json.dumps(v) if k == "tags" else v) for k, v in fields.items()
                                          if v is not None}}
    body["file"].name = name
    return api.post(f"/api/tasks/{task_id}/revisions/", body, format="multipart")


def download(api, url: str, **headers) -> tuple[int, bytes, dict]:
    response = api.get(url, **headers)
    content = b"".join(response.streaming_content) if hasattr(response, "streaming_content") else response.content
    return response.status_code, content, response


def volume(content: bytes) -> np.ndarray:
    return np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(content)).dataobj)


def storage_files(settings, part: str) -> list[Path]:
    return [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file() and part in p.parts]


# --- auth and roles --------------------------------------------------------------------------------


def test_token_auth(world):
    api = world.client(None)
    response = api.post("/api/auth/token/", {"username": "a1", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api.get("/api/queue/").status_code == 200
    wrong = world.client(None).post("/api/auth/token/", {"username": "a1", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and "token" not in wrong.json()


ENDPOINTS = [("get", "/api/cases/"), ("get", "/api/cases/{case}/"), ("get", "/api/cases/{case}/ct.nii.gz"),
             ("get", "/api/cases/{case}/label.nii.gz"), ("get", "/api/cases/{case}/attention.nii.gz"),
             ("post", "/api/tasks/next/"), ("post", "/api/tasks/{task}/heartbeat/"),
             ("post", "/api/tasks/{task}/revisions/"), ("post", "/api/tasks/{task}/confirm/"),
             ("post", "/api/tasks/{task}/skip/"), ("get", "/api/queue/"), ("post", "/api/revisions/1/review/"),
             ("get", "/api/dashboard/"), ("post", "/api/tasks/assign/")]


@pytest.mark.parametrize("who", [None, "nobody"])
def test_anonymous_and_roleless_get_nothing(world, who):
    api = world.client(who)
    ids = {"case": world.cases["big"].pk, "task": world.task("big").pk}
    for method, url in ENDPOINTS:
        response = getattr(api, method)(url.format(**ids))
        assert response.status_code in (401, 403), (url, response.status_code)
        assert set(response.json()) == {"detail"}
    assert Task.objects.filter(status=Task.Status.LEASED).count() == 0


def test_lead_only_endpoints_refuse_annotators(world):
    api = world.client("a1")
    assert api.get("/api/dashboard/").status_code == 403
    assert api.post("/api/tasks/assign/", {"annotator": "a1", "rank_from": 1, "rank_to": 2},
                    format="json").status_code == 403
    assert api.post("/api/revisions/1/review/", {"decision": "accepted"}, format="json").status_code == 403


# --- next, leases, assignment ---------------------------------------------------------------------


def test_next_leases_by_priority(world):
    a1, a2 = world.client("a1"), world.client("a2")
    first = a1.post("/api/tasks/next/")
    assert first.status_code == 200
    body = first.json()
    assert body["case"]["name"] == "big" and body["status"] == "leased" and body["lease_holder"] == "a1"
    assert [o["name"] for o in body["organs"]] == ["liver", "spleen"]
    assert body["organs"][0]["size_ml"] == pytest.approx(37.5) and body["organs"][0]["hotspots"][0]["voxels"] == 10
    assert body["urls"]["ct"] == f"/api/cases/{world.cases['big'].pk}/ct.nii.gz"
    assert body["base_revision"] is None
    assert a1.post("/api/tasks/next/").json()["id"] == body["id"]  # the same lease, renewed
    assert a2.post("/api/tasks/next/").json()["case"]["name"] == "mid"
    assert world.client("lead").post("/api/tasks/next/").json()["case"]["name"] == "small"
    assert world.client("boss").post("/api/tasks/next/").status_code == 204


def test_assignment_comes_first(world):
    lead = world.client("lead")
    response = lead.post("/api/tasks/assign/", {"annotator": "a2", "task_ids": [world.task("small").pk]},
                         format="json")
    assert response.status_code == 200 and response.json() == {"assigned": 1}
    assert world.client("a1").post("/api/tasks/next/").json()["case"]["name"] == "big"
    assert world.client("a2").post("/api/tasks/next/").json()["case"]["name"] == "small"
    ranked = lead.post("/api/tasks/assign/", {"annotator": "a1", "rank_from": 1, "rank_to": 1}, format="json")
    assert ranked.json() == {"assigned": 1}  # the top open task is now "mid"
    assert world.task("mid").assignee.username == "a1"
    bad = lead.post("/api/tasks/assign/", {"annotator": "lead", "task_ids": [1]}, format="json")
    assert bad.status_code == 400 and "not an annotator" in bad.json()["detail"]
    missing = lead.post("/api/tasks/assign/", {"annotator": "a1", "task_ids": [99999]}, format="json")
    assert missing.status_code == 400 and "99999" in missing.json()["detail"]


def test_lease_expiry_and_heartbeat(world, settings):
    a1, a2 = world.users["a1"], world.users["a2"]
    t0 = timezone.now()
    task = queue.lease_next(user=a1, now=t0)
    assert task.case.name == "big"
    later = t0 + timedelta(minutes=settings.ATLAS_LEASE_MINUTES - 1)
    queue.heartbeat(task_id=task.pk, user=a1, now=later)  # renewed: lasts until later + 30 min
    assert queue.lease_next(user=a2, now=later + timedelta(minutes=5)).case.name == "mid"
    expired_at = later + timedelta(minutes=settings.ATLAS_LEASE_MINUTES + 1)
    again = queue.lease_next(user=world.users["lead"], now=expired_at)
    assert again.pk == task.pk and again.lease_holder == world.users["lead"]  # expired: back in the pool
    with pytest.raises(queue.QueueError, match="not leased to you"):
        queue.heartbeat(task_id=task.pk, user=a1, now=expired_at)


def test_expired_lease_is_refused_over_the_api(world):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    Task.objects.filter(pk=task_id).update(lease_expires=timezone.now() - timedelta(seconds=1))
    response = api.post(f"/api/tasks/{task_id}/heartbeat/")
    assert response.status_code == 409 and "expired" in response.json()["detail"]
    ok = api.post("/api/tasks/next/")  # takes it again
    assert ok.json()["id"] == task_id
    assert api.post(f"/api/tasks/{task_id}/heartbeat/").status_code == 200


def test_skip(world):
    a1 = world.client("a1")
    task_id = a1.post("/api/tasks/next/").json()["id"]
    assert a1.post(f"/api/tasks/{task_id}/skip/", {"reason": "  "}, format="json").status_code == 400
    response = a1.post(f"/api/tasks/{task_id}/skip/", {"reason": "contrast phase unclear"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "skipped"
    assert Skip.objects.get().reason == "contrast phase unclear"
    assert a1.post("/api/tasks/next/").json()["case"]["name"] == "mid"  # not straight back
    assert world.client("a2").post("/api/tasks/next/").json()["id"] == task_id
    assert world.client("a2").post(f"/api/tasks/{task_id}/skip/", {"reason": "x"}, format="json").status_code == 200
    assert a1.post(f"/api/tasks/{task_id}/skip/", {"reason": "x"}, format="json").status_code == 403


# --- revisions ------------------------------------------------------------------------------------


def test_revision_upload(world, settings):
    api = world.client("a1")
    task = api.post("/api/tasks/next/").json()
    edited = world.pseudo.copy()
    edited[3:6, 5:-5, 3:-3] = 0  # erase a slab of the spleen: 3 * 10 * 6 voxels
    response = upload(api, task["id"], nifti_bytes(edited), base_revision=None,
                      tags={"spleen": ["ambiguous_boundary"]}, seconds_spent=95.5)
    assert response.status_code == 201, response.json()
    revision = response.json()
    assert revision["number"] == 1 and revision["kind"] == "revision" and revision["author"] == "a1"
    assert revision["changed_voxels"]["spleen"] == 180 and revision["changed_voxels"]["liver"] == 0
    spleen = int((world.pseudo == 1).sum())
    assert revision["dice"]["spleen"] == pytest.approx(2 * (spleen - 180) / (2 * spleen - 180), abs=1e-6)
    assert revision["dice"]["liver"] == 1.0 and revision["seconds_spent"] == 95.5
    assert Revision.objects.get().tags.get().tag.code == "ambiguous_boundary"
    world.round.refresh_from_db()
    assert world.round.converged is False  # the top case needed a revision
    assert Task.objects.get(pk=task["id"]).status == "revised"
    status, content, _ = download(api, task["urls"]["label"])
    assert status == 200 and np.array_equal(volume(content), edited)
    assert api.post("/api/tasks/next/").json()["case"]["name"] == "mid"
    assert Path(settings.MEDIA_ROOT, Revision.objects.get().label_file.name).name == "1.nii.gz"


def test_plain_nii_upload(world):
    api = world.client("a1")
    task = api.post("/api/tasks/next/").json()
    response = upload(api, task["id"], nifti_bytes(world.pseudo, gz=False), name="edit.nii", base_revision="")
    assert response.status_code == 201, response.json()
    assert response.json()["changed_voxels"] == {k: 0 for k in response.json()["changed_voxels"]}


@pytest.mark.parametrize("kind,expected", [
    ("shape", "file: shape (24, 20, 10) differs from the CT's (24, 20, 12)"),
    ("affine", "file: affine differs from the CT's"),
    ("values", "file: label values 42 are not in the label set abdomenatlas"),
    ("not_nifti_name", "file: 'label.txt' is not NIfTI (.nii or .nii.gz)"),
    ("garbage", "file: not a gzip file, though its name ends in .gz"),
    ("truncated", "file: truncated or corrupt"),
    ("tags", "tags: 'brain' is not an organ"),
    ("tag_code", "tags: 'typo' is not an error tag"),
])
def test_bad_uploads_are_400_and_store_nothing(world, settings, kind, expected):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    good = nifti_bytes(world.pseudo)
    args = {"shape": (nifti_bytes(world.pseudo[:, :, :10]), "label.nii.gz", None),
            "affine": (nifti_bytes(world.pseudo, affine_for(origin=(0, 0, 0))), "label.nii.gz", None),
            "values": (nifti_bytes(np.where(world.pseudo == 5, 42, world.pseudo).astype(np.uint8)),
                       "label.nii.gz", None),
            "not_nifti_name": (good, "label.txt", None),
            "garbage": (b"this is not an image", "label.nii.gz", None),
            "truncated": (good[: len(good) // 2], "label.nii.gz", None),
            "tags": (good, "label.nii.gz", {"brain": ["other"]}),
            "tag_code": (good, "label.nii.gz", {"liver": ["typo"]})}[kind]
    response = upload(api, task_id, args[0], name=args[1], tags=args[2])
    assert response.status_code == 400
    assert expected in response.json()["detail"], response.json()
    assert Revision.objects.count() == 0 and storage_files(settings, "revisions") == []
    assert Task.objects.get(pk=task_id).status == "leased"  # still theirs to fix


def test_too_large_upload_is_413(world, settings):
    settings.ATLAS_MAX_UPLOAD_BYTES = 1000
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    response = upload(api, task_id, nifti_bytes(world.pseudo) + os.urandom(2000))
    assert response.status_code == 413 and "larger than the limit of 1000 bytes" in response.json()["detail"]
    assert Revision.objects.count() == 0


def test_upload_to_a_task_not_leased_to_you(world):
    task_id = world.client("a1").post("/api/tasks/next/").json()["id"]
    response = upload(world.client("a2"), task_id, nifti_bytes(world.pseudo))
    assert response.status_code == 403 and "not leased to you" in response.json()["detail"]


def test_conflict_409_then_retry(world):
    a1, a2, lead = world.client("a1"), world.client("a2"), world.client("lead")
    task = a1.post("/api/tasks/next/").json()
    first = upload(a1, task["id"], nifti_bytes(world.pseudo), base_revision=None).json()
    rejected = lead.post(f"/api/revisions/{first['id']}/review/", {"decision": "rejected", "reassign_to": "a2",
                                                                     "comment": "spleen tip missing"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["review"]["decision"] == "rejected"
    again = a2.post("/api/tasks/next/").json()
    assert again["id"] == task["id"] and again["review_comment"] == "spleen tip missing"
    assert again["base_revision"] == first["id"]
    edited = world.pseudo.copy()
    edited[10, 10, 6] = 1
    stale = upload(a2, task["id"], nifti_bytes(edited), base_revision=None)  # started from the pseudo-label
    assert stale.status_code == 409
    assert stale.json()["latest_revision"] == first["id"]
    assert Revision.objects.count() == 1 and Task.objects.get(pk=task["id"]).status == "leased"
    ok = upload(a2, task["id"], nifti_bytes(edited), base_revision=first["id"])
    assert ok.status_code == 201 and ok.json()["number"] == 2 and ok.json()["parent"] == first["id"]


def test_confirm(world):
    api = world.client("a1")
    task = api.post("/api/tasks/next/").json()
    response = api.post(f"/api/tasks/{task['id']}/confirm/", {"seconds_spent": 12}, format="json")
    assert response.status_code == 201
    revision = Revision.objects.get(pk=response.json()["id"])
    assert revision.kind == "confirm" and all(v == 0 for v in revision.changed_voxels.values())
    assert Task.objects.get(pk=task["id"]).status == "confirmed"
    world.round.refresh_from_db()
    assert world.round.converged is True  # the top case needed no revision: the paper's stopping rule
    _, content, _ = download(api, task["urls"]["label"])
    assert np.array_equal(volume(content), world.pseudo)
    lead = world.client("lead")
    assert lead.post(f"/api/revisions/{revision.pk}/review/", {"decision": "rejected"},
                     format="json").status_code == 400  # a rejection needs a comment
    accepted = lead.post(f"/api/revisions/{revision.pk}/review/", {"decision": "accepted"}, format="json")
    assert accepted.status_code == 200 and Review.objects.get().decision == "accepted"
    assert lead.post(f"/api/revisions/{revision.pk}/review/", {"decision": "accepted"},
                     format="json").status_code == 400  # reviewed once
    assert Task.objects.get(pk=task["id"]).status == "confirmed"


# --- files ----------------------------------------------------------------------------------------


def test_files_with_range_and_etag(world, settings):
    api = world.client("lead")
    case = world.cases["big"]
    stored = Path(settings.MEDIA_ROOT, case.ct_file.name).read_bytes()
    status, content, response = download(api, f"/api/cases/{case.pk}/ct.nii.gz")
    assert status == 200 and content == stored and response["Accept-Ranges"] == "bytes"
    etag = response["ETag"]
    status, content, response = download(api, f"/api/cases/{case.pk}/ct.nii.gz", HTTP_RANGE="bytes=10-99")
    assert status == 206 and content == stored[10:100]
    assert response["Content-Range"] == f"bytes 10-99/{len(stored)}"
    status, content, _ = download(api, f"/api/cases/{case.pk}/ct.nii.gz", HTTP_RANGE="bytes=-16")
    assert status == 206 and content == stored[-16:]
    assert download(api, f"/api/cases/{case.pk}/ct.nii.gz", HTTP_IF_NONE_MATCH=etag)[0] == 304
    status, _, response = download(api, f"/api/cases/{case.pk}/ct.nii.gz", HTTP_RANGE=f"bytes={len(stored)}-")
    assert status == 416 and response["Content-Range"] == f"bytes */{len(stored)}"
    status, content, _ = download(api, f"/api/cases/{case.pk}/attention.nii.gz")
    assert status == 200 and volume(content).max() == 200
    status, content, _ = download(api, f"/api/cases/{case.pk}/attention.nii.gz?organ=liver")
    assert status == 200 and volume(content).max() == 100
    assert download(api, f"/api/cases/{case.pk}/attention.nii.gz?organ=pancreas")[0] == 404
    status, content, _ = download(api, f"/api/cases/{case.pk}/label.nii.gz")
    assert status == 200 and np.array_equal(volume(content), world.pseudo)


def test_annotators_see_only_their_cases(world):
    a1 = world.client("a1")
    assert a1.get("/api/cases/").json()["count"] == 0
    task = a1.post("/api/tasks/next/").json()
    listed = a1.get("/api/cases/").json()
    assert [c["name"] for c in listed["results"]] == ["big"]
    other = world.cases["mid"].pk
    assert a1.get(f"/api/cases/{other}/").status_code == 404
    assert a1.get(f"/api/cases/{other}/ct.nii.gz").status_code == 404
    assert a1.get(f"/api/cases/{task['case']['id']}/ct.nii.gz").status_code == 200
    assert world.client("lead").get("/api/cases/").json()["count"] == 3


def test_my_queue_and_dashboard(world):
    lead, a1 = world.client("lead"), world.client("a1")
    lead.post("/api/tasks/assign/", {"annotator": "a1", "task_ids": [world.task("small").pk]}, format="json")
    task = a1.post("/api/tasks/next/").json()
    upload(a1, task["id"], nifti_bytes(world.pseudo), seconds_spent=600)
    queue_rows = a1.get("/api/queue/").json()
    assert [row["case"] for row in queue_rows] == []  # revised, nothing else assigned
    a1.post("/api/tasks/next/")
    assert [row["case"] for row in a1.get("/api/queue/").json()] == ["big"]
    board = lead.get("/api/dashboard/").json()
    assert board["tasks_by_status"] == {"pending": 1, "leased": 1, "revised": 1, "confirmed": 0, "skipped": 0}
    assert board["by_annotator"]["a1"] == {"assigned": 0, "leased": 1, "revised": 1, "confirmed": 0, "skipped": 0,
                                           "revised_all": 1, "confirmed_all": 0, "median_minutes": 10.0}
    assert board["by_organ"]["liver"]["attention_ml"] == pytest.approx(67.5)
    assert board["median_minutes_per_case"] == 10.0
    assert board["remaining_tasks"] == 2
    assert board["time_left"]["hours"] == pytest.approx(2 * 10 / 60, abs=0.01)
    assert board["throughput_per_day"][-1]["revised"] == 1


@pytest.mark.slow
def test_schema_validates():
    result = subprocess.run([sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
                             "--file", os.devnull], cwd=REPO, capture_output=True, text=True, encoding="utf-8")
    assert result.returncode == 0, result.stderr


def test_create_user_command(db, monkeypatch):
    from django.contrib.auth import authenticate
    from django.core.management import CommandError, call_command

    monkeypatch.setenv("ATLAS_PASSWORD", "a-long-enough-password")
    call_command("create_user", "carol", "--role", "lead", stdout=io.StringIO())
    user = authenticate(username="carol", password="a-long-enough-password")
    assert user is not None and list(user.groups.values_list("name", flat=True)) == ["lead"]
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "carol", "--role", "lead")
    monkeypatch.setenv("ATLAS_PASSWORD", "short")
    with pytest.raises(CommandError, match="password:"):
        call_command("create_user", "dave", "--role", "annotator")
    assert not Case.objects.exists()
