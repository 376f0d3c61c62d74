"""Client input never gets a 500 (issue 14, item 4), and the smaller findings of the probe.

Each finding has its own test; then a property-based test (Hypothesis) throws ids, ranks, tags, ranges and query
parameters at the API and asserts that no answer is a 5xx. The test client re-raises a view's exception, so a
server error shows up as that exception with its traceback.
"""

from __future__ import annotations

import io
import json

import pytest
from django.db import connection
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from annotation.models import Revision, Round, Task
from tests.api.conftest import build_world
from tests.api.test_workflow import nifti_bytes, upload
from tests.conftest import at_once

pytestmark = pytest.mark.django_db

HUGE = 2**64 + 7


# --- the probe's 500s --------------------------------------------------------------------------------------------


def test_a_base_revision_of_another_case_is_400(world):
    api = world.client("a1")
    first = api.post("/api/tasks/next/").json()
    revision = upload(api, first["id"], nifti_bytes(world.pseudo)).json()
    second = api.post("/api/tasks/next/").json()
    for base in (revision["id"], 999999, HUGE):
        response = upload(api, second["id"], nifti_bytes(world.pseudo), base_revision=base)
        assert response.status_code == 400, (base, response.json())
        assert "base_revision" in json.dumps(response.json())
        confirm = api.post(f"/api/tasks/{second['id']}/confirm/", {"base_revision": base}, format="json")
        assert confirm.status_code == 400, (base, confirm.json())
    assert Revision.objects.filter(task=second["id"]).count() == 0


@pytest.mark.parametrize("tags", [{"liver": [{"a": 1}]}, {"liver": [1, 2]}, {"liver": "other"}, {"liver": None},
                                  ["liver"], {"liver": [["other"]]}])
def test_tags_that_are_not_lists_of_strings_are_400(world, tags):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    response = upload(api, task_id, nifti_bytes(world.pseudo), tags=tags)
    assert response.status_code == 400, response.json()
    assert response.json()["detail"].startswith("tags: ")


@pytest.mark.parametrize("header", ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "1" * 5000, "bytes=-" + "7" * 5000,
                                    "bytes=99999999999999999999-"])
def test_a_range_with_a_very_long_number_is_416(world, header):
    api = world.client("lead")
    response = api.get(f"/api/cases/{world.cases['big'].pk}/ct.nii.gz", HTTP_RANGE=header)
    assert response.status_code == 416


@pytest.mark.parametrize("body", [{"task_ids": [HUGE]}, {"task_ids": [-1]}, {"rank_from": 1, "rank_to": HUGE},
                                  {"rank_from": HUGE, "rank_to": HUGE}, {"task_ids": ["x"]}])
def test_ids_or_ranks_beyond_64_bits_in_assign_are_400(world, body):
    response = world.client("lead").post("/api/tasks/assign/", {"annotator": "a1", **body}, format="json")
    assert response.status_code == 400, response.json()


@pytest.mark.parametrize("value", [1e12, -1, "nan", "inf"])
def test_seconds_spent_is_bounded(world, value):
    api = world.client("a1")
    task_id = api.post("/api/tasks/next/").json()["id"]
    response = upload(api, task_id, nifti_bytes(world.pseudo), seconds_spent=value)
    assert response.status_code == 400 and "seconds_spent" in json.dumps(response.json())


def test_cases_list_has_a_maximum_page_size(tmp_path, settings, db):
    world = build_world(tmp_path, {f"c{i}": float(i + 1) for i in range(3)})
    response = world.client("lead").get("/api/cases/", {"limit": 10**9})
    assert response.status_code == 200
    from atlas.security import MAX_PAGE_SIZE

    assert "limit=1000" in (response.json()["next"] or f"limit={MAX_PAGE_SIZE}")


def test_leads_may_not_review_their_own_revisions(world):
    lead = world.client("lead")
    task = lead.post("/api/tasks/next/").json()
    revision = upload(lead, task["id"], nifti_bytes(world.pseudo)).json()
    response = lead.post(f"/api/revisions/{revision['id']}/review/", {"decision": "accepted"}, format="json")
    assert response.status_code == 403 and "your own revision" in response.json()["detail"]
    assert world.client("boss").post(f"/api/revisions/{revision['id']}/review/", {"decision": "accepted"},
                                     format="json").status_code == 200
    again = world.client("boss").post(f"/api/revisions/{revision['id']}/review/", {"decision": "accepted"},
                                      format="json")
    assert again.status_code == 400 and "already reviewed" in again.json()["detail"]


def test_review_of_a_missing_revision_is_404(world):
    response = world.client("lead").post(f"/api/revisions/{HUGE}/review/", {"decision": "accepted"}, format="json")
    assert response.status_code == 404


# --- the race: the loser gets 409, not 403 ------------------------------------------------------------------------


def test_a_second_submit_on_the_same_base_gets_409_with_the_revision_to_reload(world):
    """Two submissions of one base (a double click, two tabs): the first lands and ends the lease; the second is
    told 409 with latest_revision, which starts the page's reload-and-keep-edits flow. Before: 403."""
    api = world.client("a1")
    task = api.post("/api/tasks/next/").json()
    first = upload(api, task["id"], nifti_bytes(world.pseudo), base_revision=None)
    assert first.status_code == 201
    second = upload(api, task["id"], nifti_bytes(world.pseudo), base_revision=None)
    assert second.status_code == 409, second.json()
    assert second.json()["latest_revision"] == first.json()["id"]
    confirm = api.post(f"/api/tasks/{task['id']}/confirm/", {}, format="json")
    assert confirm.status_code == 409 and confirm.json()["latest_revision"] == first.json()["id"]
    # Someone else's upload to a task not leased to them is still 403.
    assert upload(world.client("a2"), task["id"], nifti_bytes(world.pseudo)).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_simultaneous_submits_one_201_one_409(tmp_path, settings):
    if connection.vendor == "sqlite":
        settings.DATABASES["default"]["OPTIONS"]["timeout"] = 30
    world = build_world(tmp_path, {"big": 50.0, "small": 10.0})
    task = world.client("a1").post("/api/tasks/next/").json()
    data = nifti_bytes(world.pseudo)

    def submit():
        response = upload(world.client("a1"), task["id"], data, base_revision=None)
        return response.status_code, response.json()

    results = at_once(submit, 2)
    assert sorted(code for code, _ in results) == [201, 409], results
    winner = next(body for code, body in results if code == 201)
    assert next(body for code, body in results if code == 409)["latest_revision"] == winner["id"]


# --- convergence follows the review of the top case ----------------------------------------------------------------


def test_rejecting_the_top_cases_no_change_revision_undoes_convergence(world):
    api = world.client("a1")
    task = api.post("/api/tasks/next/").json()
    assert task["case"]["name"] == "big"  # the top case
    confirmed = api.post(f"/api/tasks/{task['id']}/confirm/", {}, format="json")
    assert confirmed.status_code == 201
    assert Round.objects.get(pk=world.round.pk).converged is True
    rejected = world.client("lead").post(f"/api/revisions/{confirmed.json()['id']}/review/",
                                         {"decision": "rejected", "comment": "the liver tip is missing"},
                                         format="json")
    assert rejected.status_code == 200
    assert Round.objects.get(pk=world.round.pk).converged is None  # before: still True
    assert Task.objects.get(pk=task["id"]).status == "pending"


# --- property-based: nothing a client sends gets a 5xx ------------------------------------------------------------

ids = st.one_of(st.integers(min_value=-5, max_value=50), st.integers(min_value=2**62, max_value=2**80),
                st.integers(min_value=-(2**80), max_value=-(2**62)))
numbers = st.one_of(ids, st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.none(),
                    st.booleans())
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                                     st.floats(allow_nan=False), st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)
tags = st.one_of(json_values, st.dictionaries(st.sampled_from(["liver", "spleen", "brain", ""]),
                                              st.lists(st.one_of(st.sampled_from(["other", "typo"]), json_values),
                                                       max_size=3), max_size=3))
digits = st.one_of(st.just(""), st.integers(0, 10**30).map(str),
                   st.integers(4000, 6000).map(lambda n: "9" * n))  # past Python's int() limit of 4300 digits
ranges = st.one_of(st.text(max_size=40), st.builds(lambda a, b: f"bytes={a}-{b}", digits, digits))
queries = st.dictionaries(st.sampled_from(["round", "offset", "limit", "status", "organ", "page"]),
                          st.one_of(st.text(max_size=20), ids.map(str)), max_size=4)


def _request(world, who, method, url, **kwargs):
    if kwargs.get("format") == "json":  # NaN and Infinity go on the wire as a careless client would send them
        kwargs = {"data": json.dumps(kwargs.get("data"), allow_nan=True), "content_type": "application/json"}
    response = getattr(world.client(who), method)(url, **kwargs)
    assert response.status_code < 500, (method, url, kwargs, response.status_code)
    return response


@hsettings(max_examples=60, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pk=ids, rng=ranges, query=queries, who=st.sampled_from(["a1", "lead"]))
def test_reads_never_answer_5xx(world, pk, rng, query, who):
    case = world.cases["big"].pk
    for url in (f"/api/cases/{pk}/", f"/api/cases/{case}/ct.nii.gz", f"/api/cases/{case}/label.nii.gz",
                f"/api/cases/{pk}/attention.nii.gz", f"/api/cases/{pk}/label-set/"):
        _request(world, who, "get", url, data=query, HTTP_RANGE=rng)
    for url in ("/api/cases/", "/api/queue/", "/api/dashboard/", "/api/dashboard/tasks/",
                "/api/dashboard/attention/", "/api/dashboard/quality/", "/api/dashboard/jobs/"):
        _request(world, who, "get", url, data=query)


@hsettings(max_examples=60, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(pk=ids, base=numbers, seconds=numbers, tag=tags, task_ids=st.one_of(st.lists(ids, max_size=3), json_values),
       rank_from=numbers, rank_to=numbers, annotator=st.one_of(st.sampled_from(["a1", "lead", "nobody"]), numbers),
       decision=st.one_of(st.sampled_from(["accepted", "rejected"]), json_values), comment=json_values)
def test_writes_never_answer_5xx(world, pk, base, seconds, tag, task_ids, rank_from, rank_to, annotator, decision,
                                 comment):
    a1 = world.client("a1")
    held = a1.post("/api/tasks/next/")
    task = held.json()["id"] if held.status_code == 200 else pk
    for target in (task, pk):
        _request(world, "a1", "post", f"/api/tasks/{target}/heartbeat/")
        body = {"file": nifti_bytes(world.pseudo), "base_revision": base, "seconds_spent": seconds, "tags": tag}
        upload_body = {k: v for k, v in body.items() if v is not None}
        if "tags" in upload_body:
            upload_body["tags"] = json.dumps(upload_body["tags"])
        upload_body = {k: (v if isinstance(v, bytes | str) else json.dumps(v)) for k, v in upload_body.items()}
        upload_body["file"] = io.BytesIO(body["file"])
        upload_body["file"].name = "label.nii.gz"
        _request(world, "a1", "post", f"/api/tasks/{target}/revisions/", data=upload_body, format="multipart")
        # Only the tags vary (the file has the wrong shape, so that the task stays leased for the next example).
        wrong = io.BytesIO(nifti_bytes(world.pseudo[:, :, :4]))
        wrong.name = "label.nii.gz"
        _request(world, "a1", "post", f"/api/tasks/{target}/revisions/", format="multipart",
                 data={"file": wrong, "tags": json.dumps(tag)})
        _request(world, "a1", "post", f"/api/tasks/{target}/confirm/",
                 data={"base_revision": base, "seconds_spent": seconds}, format="json")
        _request(world, "a1", "post", f"/api/tasks/{target}/skip/", data={"reason": comment}, format="json")
    _request(world, "lead", "post", "/api/tasks/assign/", format="json",
             data={"annotator": annotator, "task_ids": task_ids, "rank_from": rank_from, "rank_to": rank_to})
    _request(world, "lead", "post", "/api/tasks/assign/", format="json",
             data={"annotator": annotator, "rank_from": rank_from, "rank_to": rank_to})
    _request(world, "lead", "post", f"/api/revisions/{pk}/review/", format="json",
             data={"decision": decision, "comment": comment})
    _request(world, "lead", "post", "/api/dashboard/quality/refresh/", format="json", data={"round": base})
