"""Issue 23: the findings of the probe as an attacker with an annotator's account, each refused with a 4xx and
nothing stored.

- an upload for a task the user does not hold is refused before its body is read (the answer is the lease's, never
  the parser's), on all three doors (API revisions, a lead's edit, Slicer's PUT datastore/label);
- deeply nested JSON and over-long integers on every JSON parser (DRF's, Slicer's `params`, the `tags` field) are 400;
- numeric query parameters (`seed`) that are not finite numbers are 400;
- a double read's base revision naming the other read's revision is answered as a revision that does not exist;
- Slicer's image ids are opaque: random, stored server-side, revealing neither task, user nor revision.

The readers themselves (NRRD without detached files, header caps) are tested in tests/ml_engine; the sign-in gate in
test_signin.py; the live server's workers in tests/integration/test_hostile_uploads.py.
"""

from __future__ import annotations

import base64
import io
import json
import zlib

import numpy as np
import pytest
from django.core import signing
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from annotation.models import DoubleRead, ImageLink, Revision, Task
from annotation.services import double_reads, monailabel, queue
from tests.api.test_workflow import nifti_bytes, upload

pytestmark = pytest.mark.django_db

DEEP = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 30_000 + "1" + "}" * 30_000
LONG_INT = "9" * 5000


def _slicer_put(api, image_id: str, content: bytes, name: str = "label.nrrd", params: str | None = None):
    body = {"label": io.BytesIO(content)}
    body["label"].name = name
    if params is not None:
        body["params"] = params
    return api.put(f"/monailabel/datastore/label?image={image_id}", body, format="multipart")


def _sample(world, user: str = "a1") -> dict:
    response = world.client(user).post("/monailabel/activelearning/attention", {}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


# --- JSON with a depth limit, bounded integers --------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/auth/token/", "/monailabel/auth/token", "/api/auth/login/"])
@pytest.mark.parametrize("payload", [DEEP, DEEP_OBJECT, '{"username": ' + LONG_INT + "}",
                                     '{"username": "a", "password": "b", "x": ' + "[" * 64 + "]" * 64 + "}"])
def test_deep_or_huge_json_to_anonymous_doors_is_400(world, url, payload):
    response = world.client(None).generic("POST", url, payload, content_type="application/json")
    assert response.status_code == 400, (url, response.content[:200])
    assert "JSON" in response.json()["detail"]


@pytest.mark.parametrize("payload", [DEEP, DEEP_OBJECT, '{"annotator": "a1", "task_ids": [' + LONG_INT + "]}",
                                     '{"annotator": "a1", "rank_from": 1, "rank_to": 1e999}', "NaN"])
def test_deep_or_huge_json_to_a_signed_in_endpoint_is_400(world, payload):
    response = world.client("lead").generic("POST", "/api/tasks/assign/", payload, content_type="application/json")
    assert response.status_code == 400, response.content[:200]


def test_json_a_little_nested_still_works(world):
    body = {"annotator": "a1", "task_ids": [world.task("big").pk]}
    response = world.client("lead").post("/api/tasks/assign/", body, format="json")
    assert response.status_code == 200 and response.json() == {"assigned": 1}


@pytest.mark.parametrize("params", [DEEP, DEEP_OBJECT, '{"label_info": [{"name": "liver", "idx": ' + LONG_INT + "}]}",
                                    '{"label_info": ' + "[" * 100 + "]" * 100 + "}", '{"x": NaN}', '{"x": 1e999}'])
def test_deep_or_huge_params_in_slicer_form_are_400(world, params):
    sample = _sample(world)
    response = _slicer_put(world.client("a1"), sample["id"], nifti_bytes(world.pseudo), "label.nii.gz", params)
    assert response.status_code == 400, response.content[:300]
    assert "params" in response.json()["detail"]
    assert Revision.objects.count() == 0


@pytest.mark.parametrize("tags", [DEEP, '{"liver": [' + LONG_INT + "]}"])
def test_deep_or_huge_tags_are_400(world, tags):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    body = {"file": io.BytesIO(nifti_bytes(world.pseudo)), "tags": tags}
    body["file"].name = "label.nii.gz"
    response = api.post(f"/api/tasks/{task_id}/revisions/", body, format="multipart")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"].startswith("tags: ")
    assert Revision.objects.count() == 0


# --- numeric query parameters -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", ["inf,0,0", "nan,1,2", "1e999,0,0", "-inf,0,0", "1" * 400 + ",0,0", "1,2",
                                  "1,2,3,4", "a,b,c", "", "9e18,0,0"])
def test_a_seed_that_is_not_three_finite_numbers_is_400(world, seed):
    case = world.cases["big"]
    response = world.client("lead").get(f"/api/cases/{case.pk}/members/",
                                        {"organ": "liver", "box": "0,0,0,5,5,5", "seed": seed})
    assert response.status_code in (400, 404), (seed, response.content[:200])
    if response.status_code == 400:
        assert "seed" in json.dumps(response.json())


@pytest.mark.parametrize("box", ["inf,0,0,1,1,1", "0,0,0,1e999,1,1", "0,0,0," + "9" * 500 + ",1,1", "nan,0,0,1,1,1"])
def test_a_box_that_is_not_six_whole_numbers_is_400(world, box):
    case = world.cases["big"]
    response = world.client("lead").get(f"/api/cases/{case.pk}/members/", {"organ": "liver", "box": box})
    assert response.status_code in (400, 404), (box, response.content[:200])


# --- the lease before the first byte --------------------------------------------------------------------------------


GARBAGE = b"NRRD0004\n" + b"x" * 5000 + b"\n\n"


def test_slicer_upload_without_the_lease_is_refused_before_the_file_is_read(world):
    sample = _sample(world)
    task = Task.objects.get(pk=sample["task"])
    queue.skip(task_id=task.pk, user=world.users["a1"], reason="later")  # the lease ends; the id is still signed
    response = _slicer_put(world.client("a1"), sample["id"], GARBAGE)
    assert response.status_code in (403, 409), response.content[:300]
    assert "NRRD" not in response.json()["detail"]  # the lease answered, not the parser
    assert Revision.objects.count() == 0


def test_api_upload_for_a_task_someone_else_holds_is_refused_before_the_file_is_read(world):
    task_id = world.client("a1").post("/api/tasks/next/").json()["id"]
    response = upload(world.client("a2"), task_id, b"\x1f\x8b not gzip at all", name="label.nii.gz")
    assert response.status_code == 403, response.content[:300]
    assert "gzip" not in response.json()["detail"]
    assert Revision.objects.count() == 0


def test_lead_edit_of_a_revision_under_another_leads_review_is_refused_before_the_file_is_read(world):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import ReviewLease

    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    revision_id = upload(api, task_id, nifti_bytes(world.pseudo)).json()["id"]
    now = timezone.now()  # another lead (an admin may review too) holds the review lease
    ReviewLease.objects.create(revision_id=revision_id, holder=world.users["boss"], leased_at=now,
                               expires=now + timedelta(minutes=30))
    body = {"file": io.BytesIO(b"\x1f\x8b not gzip at all")}
    body["file"].name = "label.nii.gz"
    response = world.client("lead").post(f"/api/review/revisions/{revision_id}/edit-accept/", body, format="multipart")
    assert response.status_code == 409, response.content[:300]
    assert "gzip" not in response.json()["detail"]


@pytest.mark.parametrize("door", ["api", "slicer", "edit"])
def test_every_door_says_413_for_too_large_with_the_field(world, settings, door):
    settings.ATLAS_MAX_UPLOAD_BYTES = 2000
    big = bytes(5000)
    if door == "api":
        task_id = world.client("a1").post("/api/tasks/next/").json()["id"]
        response = upload(world.client("a1"), task_id, big)
        field = "file"
    elif door == "slicer":
        response = _slicer_put(world.client("a1"), _sample(world)["id"], big)
        field = "label"
    else:
        settings.ATLAS_MAX_UPLOAD_BYTES = 10**9
        api = world.client("a1")
        task_id = api.post("/api/tasks/next/").json()["id"]
        revision_id = upload(api, task_id, nifti_bytes(world.pseudo)).json()["id"]
        settings.ATLAS_MAX_UPLOAD_BYTES = 2000
        body = {"file": io.BytesIO(big)}
        body["file"].name = "label.nii.gz"
        response = world.client("lead").post(f"/api/review/revisions/{revision_id}/edit-accept/", body,
                                             format="multipart")
        field = "file"
    assert response.status_code == 413, response.content[:300]
    assert response.json()["field"] == field and "limit of 2000 bytes" in response.json()["detail"]


# --- double reads ---------------------------------------------------------------------------------------------------


def test_a_base_revision_of_the_other_read_is_answered_as_if_it_did_not_exist(world):
    double_reads.set_share(round=world.round, share=1.0)
    double_reads.set_share(round=world.round, share=0.34)
    pair = DoubleRead.objects.get()
    a1, a2 = world.client("a1"), world.client("a2")
    first = a1.post("/api/tasks/next/").json()
    assert first["id"] == pair.first_id
    read1 = upload(a1, first["id"], nifti_bytes(world.pseudo)).json()["id"]
    second = a2.post("/api/tasks/next/").json()
    assert second["id"] == pair.second_id
    missing_upload = upload(a2, second["id"], nifti_bytes(world.pseudo), base_revision=999_999)
    missing_confirm = a2.post(f"/api/tasks/{second['id']}/confirm/", {"base_revision": 999_999}, format="json")
    other_upload = upload(a2, second["id"], nifti_bytes(world.pseudo), base_revision=read1)
    other_confirm = a2.post(f"/api/tasks/{second['id']}/confirm/", {"base_revision": read1}, format="json")
    for missing, other in ((missing_upload, other_upload), (missing_confirm, other_confirm)):
        assert other.status_code == missing.status_code and 400 <= other.status_code < 500, other.content
        assert other.json() == json.loads(json.dumps(missing.json()).replace("999999", str(read1)))
    assert Revision.objects.filter(task=pair.second_id).count() == 0


# --- opaque image ids -------------------------------------------------------------------------------------------------


def _decodings(text: str) -> list[bytes]:
    found = []
    for part in [text, *text.replace(".", ":").split(":")]:
        padded = part + "=" * (-len(part) % 4)
        try:
            raw = base64.urlsafe_b64decode(padded)
        except ValueError:
            continue
        found.append(raw)
        try:
            found.append(zlib.decompress(raw))
        except zlib.error:
            pass
    return found


def test_image_ids_are_random_tokens_that_reveal_nothing(world):
    sample = _sample(world)
    image_id, task_id = sample["id"], sample["task"]
    assert len(image_id) >= 32 and all(c.isalnum() or c in "-_" for c in image_id)
    with pytest.raises(signing.BadSignature):
        signing.loads(image_id, salt="atlas.monailabel.image")
    for raw in _decodings(image_id):
        assert f"[{task_id}," not in raw.decode("latin-1") and str(world.users["a1"].pk).encode() + b"," not in raw
    # stored server-side, hashed: the database does not hold the id itself
    link = ImageLink.objects.get(task_id=task_id)
    assert image_id not in (link.digest, str(link.pk))
    again = _sample(world)  # the same lease asked again: a new id; both open the same task
    assert again["id"] != image_id and again["task"] == task_id
    api = world.client("a1")
    assert api.get("/monailabel/datastore/image", {"image": image_id}).status_code == 200
    assert world.client("a2").post(f"/monailabel/infer/atlas?image={image_id}&output=json").status_code == 403
    forged = image_id[:-4] + ("AAAA" if image_id[-4:] != "AAAA" else "BBBB")
    assert api.get("/monailabel/datastore/image", {"image": forged}).status_code == 404


def test_an_expired_image_id_is_refused(world, settings):
    sample = _sample(world)
    ImageLink.objects.update(created=ImageLink.objects.get().created - monailabel.MAX_AGE)
    response = world.client("a1").post(f"/monailabel/infer/atlas?image={sample['id']}&output=json")
    assert response.status_code == 403 and "expired" in response.json()["detail"]


def test_a_slicer_label_still_lands_through_the_intake(world):
    sample = _sample(world)
    mine = world.pseudo.copy()
    mine[mine == 1] = 0
    response = _slicer_put(world.client("a1"), sample["id"], nifti_bytes(mine.astype(np.uint8)), "label.nii.gz",
                           json.dumps({"label_info": [{"name": "liver", "idx": 5}]}))
    assert response.status_code == 200, response.content[:300]
    assert Revision.objects.get().number == response.json()["number"]


# --- the session's CSRF token: from its header only -------------------------------------------------------------


def test_a_session_is_checked_for_csrf_by_its_header_and_the_body_is_not_read_for_it(world):
    from rest_framework.test import APIClient

    from tests.api.conftest import PASSWORD

    browser = APIClient(enforce_csrf_checks=True)
    assert browser.get("/api/me/").status_code == 200
    token = browser.cookies["csrftoken"].value
    signed_in = browser.post("/api/auth/login/", {"username": "a1", "password": PASSWORD}, format="json",
                             HTTP_X_CSRFTOKEN=token)
    assert signed_in.status_code == 200, signed_in.content
    token = browser.cookies["csrftoken"].value  # rotated at sign-in
    assert browser.post("/api/tasks/next/", format="json").status_code == 403  # no token
    task = browser.post("/api/tasks/next/", format="json", HTTP_X_CSRFTOKEN=token)
    assert task.status_code == 200
    body = {"file": io.BytesIO(nifti_bytes(world.pseudo)), "csrfmiddlewaretoken": token}
    body["file"].name = "label.nii.gz"
    in_body = browser.post(f"/api/tasks/{task.json()['id']}/revisions/", body, format="multipart")
    assert in_body.status_code == 403 and "CSRF" in in_body.json()["detail"]
    body["file"].seek(0)
    in_header = browser.post(f"/api/tasks/{task.json()['id']}/revisions/", body, format="multipart",
                             HTTP_X_CSRFTOKEN=token)
    assert in_header.status_code == 201, in_header.content[:300]


# --- the intake under random files (Hypothesis) ---------------------------------------------------------------------

_NRRD_LINES = st.one_of(
    st.sampled_from(["type: uint8", "type: float", "type: short", "type: block", "dimension: 3", "dimension: 4",
                     "dimension: 999999999999999", "sizes: 24 20 12", "sizes: 1 24 20 12", "sizes: -1 2 3",
                     "sizes: 99999 99999 99999", "encoding: raw", "encoding: gzip", "encoding: bzip2",
                     "encoding: ascii", "endian: big", "endian: little", "space: left-posterior-superior",
                     "space: RAS", "space: scanner-xyz", "space directions: (-1.5,0,0) (0,-1.5,0) (0,0,2.5)",
                     "space directions: (nan,0,0) (0,1,0) (0,0,1)", "space directions: none (1,0,0) (0,1,0) (0,0,1)",
                     "space origin: (60,50,-80)", "kinds: domain domain domain", "data file: /etc/hostname",
                     "data file: LIST", "datafile: ./x", "byte skip: -1", "line skip: 3", "# a comment", "k:=v",
                     "content: " + "A" * 2000, ""]),
    st.text(max_size=40))


@st.composite
def _upload_files(draw) -> bytes:
    kind = draw(st.sampled_from(["nrrd", "nifti", "bytes"]))
    if kind == "nrrd":
        lines = draw(st.lists(_NRRD_LINES, max_size=12))
        data = draw(st.binary(max_size=64))
        return ("NRRD000" + str(draw(st.integers(0, 9))) + "\n" + "\n".join(lines) + "\n\n").encode(
            "utf-8", "replace") + data
    if kind == "nifti":
        good = nifti_bytes(np.zeros((24, 20, 12), dtype=np.uint8))
        cut = draw(st.integers(0, len(good)))
        flip = draw(st.integers(0, len(good) - 1))
        mutated = bytearray(good[:cut] if draw(st.booleans()) else good)
        if mutated and flip < len(mutated):
            mutated[flip] ^= draw(st.integers(1, 255))
        return bytes(mutated)
    return draw(st.binary(max_size=512))


@hsettings(max_examples=80, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(content=_upload_files(), name=st.sampled_from(["label.nrrd", "label.seg.nrrd", "label.nii.gz", "label.nii",
                                                        "label.NRRD", "x.dcm", "label.nrrd.zip"]),
       params=st.one_of(st.just("{}"), st.text(max_size=40)), door=st.sampled_from(["slicer", "api"]))
def test_the_intake_answers_random_files_with_a_4xx_and_stores_nothing(world, content, name, params, door):
    from hypothesis import assume

    api = world.client("a1")
    if door == "slicer":
        sample = api.post("/monailabel/activelearning/attention", {}, format="json").json()
        response = _slicer_put(api, sample["id"], content, name, params)
    else:
        task = api.post("/api/tasks/next/").json()
        assume(task)
        response = upload(api, task["id"], content, name=name)
    assert 400 <= response.status_code < 500 or response.status_code in (200, 201), response.status_code
    if response.status_code >= 400:
        assert response.json()["detail"], response.content[:200]
        assert not Revision.objects.exists()
    else:
        Revision.objects.all().delete()  # a file that happened to be a valid label: the next example starts clean
