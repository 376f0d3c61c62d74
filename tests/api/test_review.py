"""Review for leads: quality checks as revisions land, the review queue, "next to review" leases, flags as CSV."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from annotation.api.review.export import csv_cell
from annotation.models import Job, LabelCheck, ReviewLease
from annotation.services import queue, reviews, revisions
from annotation.services.users import create_user
from tests.api.conftest import at_once, build_world
from tests.conftest import save_nifti

SPLEEN, LIVER = 1, 5


def _revise(world, user: str, change) -> int:
    task = queue.lease_next(user=world.users[user])
    data = change(world.pseudo.copy())
    upload = save_nifti(world.tmp / f"{user}-{task.pk}.nii.gz", data.astype(np.uint8), np.asarray(task.case.affine))
    return revisions.submit_revision(task_id=task.pk, user=world.users[user], upload=upload, base_revision=None).pk


def erase_spleen(label):
    label[label == SPLEEN] = 0
    return label


def liver_as_spleen(label):
    label[label == LIVER] = SPLEEN
    return label


def small_edit(label):
    label[5, 6, 5] = LIVER if label[5, 6, 5] != LIVER else 0
    return label


@pytest.fixture
def reviewed(world, django_capture_on_commit_callbacks):
    """a1 erases the spleen of big (top), a2 labels the liver of mid as spleen, a1 touches one voxel of small."""
    with django_capture_on_commit_callbacks(execute=True):
        ids = {"big": _revise(world, "a1", erase_spleen), "mid": _revise(world, "a2", liver_as_spleen),
               "small": _revise(world, "a1", small_edit)}
    return ids


@pytest.mark.django_db
def test_a_landing_revision_is_checked_and_its_flags_listed(world, reviewed):
    job = Job.objects.get(revision_id=reviewed["big"])
    assert job.kind == Job.Kind.QC and job.status == Job.Status.SUCCEEDED
    check = LabelCheck.objects.get(revision_id=reviewed["big"])
    assert check.volumes["spleen"] == 0.0
    lead = world.client("lead")
    erased = lead.get("/api/quality/flags/", {"kind": "erased"}).json()
    assert [(r["case"], r["organ"], r["source"], r["revision"]) for r in erased] == [
        ("big", "spleen", "revision", reviewed["big"]), ("mid", "liver", "revision", reviewed["mid"])]
    assert "were erased" in erased[0]["reason"]
    assert lead.get("/api/quality/flags/", {"kind": "erased", "case": "small"}).json() == []
    response = lead.get("/api/quality/flags/", {"kind": "erased", "export": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["case", "round", "source", "revision_number", "organ", "kind", "reason"]
    assert rows[1][:6] == ["big", "0", "revision", "1", "spleen", "erased"]
    assert lead.get("/api/quality/flags/", {"kind": "nope"}).status_code == 400
    assert world.client("a1").get("/api/quality/flags/").status_code == 403


def test_csv_cells_never_start_a_formula():
    assert [csv_cell(v) for v in ("=1+1", "+x", "-2", "@SUM", "liver", None, 3)] == [
        "'=1+1", "'+x", "'-2", "'@SUM", "liver", "", "3"]


@pytest.mark.django_db
def test_the_review_queue_in_each_order(world, reviewed):
    lead = world.client("lead")

    def order(**query):
        return [r["case"] for r in lead.get("/api/review/queue/", query).json()]

    assert order(order="voxels") == ["mid", "big", "small"]  # 1080 changed voxels, 540, 1
    assert order(order="age") == ["big", "mid", "small"]
    assert order(order="attention") == ["big", "mid", "small"]  # 50, 30, 10 mL
    assert order(order="flags")[-1] == "small"  # big and mid each erased an organ
    assert order(annotator="a2") == ["mid"]
    assert order(organ="pancreas") == []  # nobody changed it and no check flagged it
    assert order(organ="liver", order="age") == ["big", "mid", "small"]  # mid, small changed it; big's is flagged
    assert {f["organ"] for f in lead.get("/api/quality/flags/", {"case": "big"}).json()} >= {"liver", "spleen"}
    assert lead.get("/api/review/queue/", {"order": "sideways"}).status_code == 400
    reviews.decide(revision_id=reviewed["mid"], reviewer=world.users["lead"], decision="accepted")
    assert order(order="age") == ["big", "small"]  # reviewed: out of the queue


@pytest.mark.django_db
def test_next_to_review_leases_a_revision_to_one_lead(world, reviewed):
    lead, boss = world.client("lead"), world.client("boss")
    first = lead.post("/api/review/next/", {"order": "voxels"}, format="json").json()
    assert first["case"] == "mid" and first["reviewer"] == "lead"
    second = boss.post("/api/review/next/", {"order": "voxels"}, format="json").json()
    assert second["case"] == "big"  # mid is leased to the lead
    assert lead.post("/api/review/next/", {"order": "age"}, format="json").json()["id"] == first["id"]  # held
    assert [r["reviewer"] for r in lead.get("/api/review/queue/", {"order": "age"}).json()] == ["boss", "lead", None]
    reviews.decide(revision_id=first["id"], reviewer=world.users["lead"], decision="accepted")
    assert lead.post("/api/review/next/", {}, format="json").json()["case"] == "small"
    assert world.client("a1").post("/api/review/next/", {}, format="json").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_leads_racing_for_next_to_review_never_share_a_revision(tmp_path, settings):
    world = build_world(tmp_path, {f"case{i:02d}": float(100 - i) for i in range(8)})
    for i in range(8):
        _revise(world, "a1" if i % 2 else "a2", small_edit)
    leads = [create_user(username=f"lead{i}", role="lead", password="pw-123456789") for i in range(6)]
    got = at_once(leads, "/api/review/next/", {"order": "age"})
    assert len(got) == 6 and len(set(got.values())) == 6, got
    assert ReviewLease.objects.count() == 6


@pytest.mark.django_db
def test_a_verdict_respects_the_review_lease_and_may_reassign(world, reviewed):
    lead, boss = world.client("lead"), world.client("boss")
    held = lead.post("/api/review/next/", {"order": "voxels"}, format="json").json()["id"]  # mid, a2's
    busy = boss.post(f"/api/revisions/{held}/review/", {"decision": "accepted"}, format="json")
    assert busy.status_code == 409 and "lead is reviewing" in busy.json()["detail"]
    bad = lead.post(f"/api/revisions/{held}/review/", {"decision": "rejected", "comment": "liver is spleen",
                                                       "reassign_to": "lead"}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "reassign_to"
    done = lead.post(f"/api/revisions/{held}/review/", {"decision": "rejected", "comment": "liver is spleen",
                                                        "reassign_to": "a1"}, format="json")
    assert done.status_code == 200
    assert not ReviewLease.objects.filter(revision_id=held).exists()  # the verdict ends the lease
    task = world.task("mid")
    assert (task.status, task.assignee.username, task.review_comment) == ("pending", "a1", "liver is spleen")
    assert queue.lease_next(user=world.users["a1"]).pk == task.pk  # a1 gets it back first (assigned)
    assert boss.post(f"/api/revisions/{reviewed['big']}/review/", {"decision": "accepted"},
                     format="json").status_code == 200  # nobody held big


@pytest.mark.django_db
def test_the_review_view_shows_what_a_revision_changed_and_serves_its_files(world, reviewed):
    from annotation.models import Case
    from ml_engine.label_diff import ADDED, REMOVED
    from tests.api.test_workflow import volume

    lead = world.client("lead")
    detail = lead.get(f"/api/review/revisions/{reviewed['big']}/").json()
    spleen = int((world.pseudo == SPLEEN).sum())
    voxel_ml = float(np.prod(Case.objects.get(name="big").spacing)) / 1000
    rows = {row["organ"]: row for row in detail["diff"]["organs"]}
    assert detail["diff"]["reference"] == {"source": "pseudo_label", "revision": None, "number": None}
    assert (rows["spleen"]["added"], rows["spleen"]["removed"], rows["spleen"]["after_ml"]) == (0, spleen, 0.0)
    assert rows["spleen"]["change_ml"] == pytest.approx(-spleen * voxel_ml, abs=1e-3)
    assert (rows["liver"]["added"], rows["liver"]["removed"], rows["liver"]["centre"]) == (0, 0, None)
    spleen_at = np.argwhere(world.pseudo == SPLEEN)
    assert rows["spleen"]["centre"] == [int(v) for v in (spleen_at.min(0) + spleen_at.max(0)) // 2]
    assert "erased" in [f["kind"] for f in detail["flag_rows"]] and detail["review"] is None
    assert detail["author"] == "a1" and detail["annotators"] == ["a1", "a2"] and detail["double_read"] is None
    label = lead.get(detail["urls"]["label"])
    assert np.array_equal(volume(b"".join(label.streaming_content)), erase_spleen(world.pseudo.copy()))
    parent = lead.get(detail["urls"]["parent"])
    assert np.array_equal(volume(b"".join(parent.streaming_content)), world.pseudo)
    diff = volume(lead.get(detail["urls"]["diff"], {"organ": "spleen"}).content)
    assert set(np.unique(diff).tolist()) == {0, REMOVED} and np.array_equal(diff == REMOVED, world.pseudo == SPLEEN)
    assert not (volume(lead.get(detail["urls"]["diff"], {"organ": "liver"}).content) == ADDED).any()
    assert lead.get(detail["urls"]["diff"], {"organ": "lung"}).status_code == 400
    assert lead.get("/api/review/revisions/999999/").status_code == 404
    assert world.client("a1").get(f"/api/review/revisions/{reviewed['big']}/").status_code == 403


@pytest.mark.django_db
def test_edit_and_accept_and_the_time_a_review_takes(world, reviewed):
    from annotation.models import Review, Revision
    from tests.api.test_workflow import nifti_bytes

    lead, boss = world.client("lead"), world.client("boss")
    held = lead.post("/api/review/next/", {"order": "voxels"}, format="json").json()["id"]  # mid
    url = f"/api/review/revisions/{held}/edit-accept/"
    edited = liver_as_spleen(world.pseudo.copy())
    edited[2, 2, 2] = LIVER

    def post(api, data, name="label.nii.gz", **extra):
        from django.core.files.uploadedfile import SimpleUploadedFile

        return api.post(url, {"file": SimpleUploadedFile(name, data), **extra}, format="multipart")

    assert post(boss, nifti_bytes(edited)).status_code == 409  # the lead holds it
    bad = post(lead, b"not a nifti")
    assert bad.status_code == 400 and bad.json()["field"] == "file"
    assert post(lead, nifti_bytes(edited), name="x.png").status_code == 400
    assert Revision.objects.count() == 3  # nothing stored
    done = post(lead, nifti_bytes(edited), comment="one liver voxel", seconds_spent="42")
    assert done.status_code == 201, done.content
    child = Revision.objects.get(pk=done.json()["id"])
    assert (child.parent_id, child.author.username) == (held, "lead")
    assert Review.objects.get(revision_id=held).decision == "edited"
    assert Review.objects.get(revision_id=held).seconds == 42.0
    assert Review.objects.get(revision=child).decision == "accepted"
    assert post(lead, nifti_bytes(edited)).status_code == 409  # reviewed already
    # a verdict without the page's clock takes the time since the review lease
    other = lead.post("/api/review/next/", {"order": "voxels"}, format="json").json()["id"]
    assert lead.post(f"/api/revisions/{other}/review/", {"decision": "accepted"}, format="json").status_code == 200
    assert Review.objects.get(revision_id=other).seconds >= 0.0
    assert lead.post(f"/api/revisions/{other}/review/", {"decision": "edited"}, format="json").status_code == 400


@pytest.mark.django_db
def test_a_tasks_flags_are_for_its_annotator_and_leads(world, reviewed):
    from annotation.models import Revision

    task = Revision.objects.get(pk=reviewed["big"]).task
    mine = world.client("a1").get(f"/api/tasks/{task.pk}/flags/")
    assert mine.status_code == 200
    erased = [f for f in mine.json() if f["kind"] == "erased"]
    assert [(f["organ"], f["source"], f["revision"]) for f in erased] == [("spleen", "revision", reviewed["big"])]
    assert world.client("lead").get(f"/api/tasks/{task.pk}/flags/").json() == mine.json()
    assert world.client("a2").get(f"/api/tasks/{task.pk}/flags/").status_code == 404
    assert world.client("nobody").get(f"/api/tasks/{task.pk}/flags/").status_code == 403
