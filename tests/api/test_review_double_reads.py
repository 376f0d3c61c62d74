"""Double reads: a share of a round's cases read twice by two different annotators who never see each other's work;
their agreement; the label policies while the pair is open and once a lead adjudicates it."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.models import DoubleRead, Review, Revision, Task
from annotation.selectors.labels import final_label, label_to_edit, label_to_train_on
from annotation.services import double_reads, queue, reviews, revisions
from annotation.services.read_agreement import organ_agreement
from annotation.storage import read_voxels
from tests.api.test_review import erase_spleen
from tests.api.test_workflow import volume
from tests.conftest import save_nifti

SPLEEN, LIVER = 1, 5


def _submit(world, user: str, task: Task, data: np.ndarray, base=None) -> Revision:
    upload = save_nifti(world.tmp / f"{user}-{task.pk}-{base}.nii.gz", data.astype(np.uint8),
                        np.asarray(task.case.affine))
    return revisions.submit_revision(task_id=task.pk, user=world.users[user], upload=upload, base_revision=base)


@pytest.fixture
def pair(world) -> DoubleRead:
    """The top case (big) read twice: its first read assigned to a1."""
    pairs = double_reads.set_share(round=world.round, share=1.0)
    assert len(pairs) == 3
    double_reads.set_share(round=world.round, share=0.34)
    pair = DoubleRead.objects.get()
    pair.first.refresh_from_db()
    return pair


@pytest.mark.django_db
def test_the_share_makes_second_reads_and_lowering_it_removes_unstarted_ones(world):
    assert double_reads.set_share(round=world.round, share=0.0) == []
    pairs = double_reads.set_share(round=world.round, share=0.5)  # 1.5 of 3 cases: 2
    assert len(pairs) == 2 and Task.objects.filter(round=world.round, read=2).count() == 2
    second = Task.objects.get(pk=pairs[0].second_id)
    assert second.priority == Task.objects.get(pk=pairs[0].first_id).priority
    assert [p.case.name for p in double_reads.set_share(round=world.round, share=0.5)] == \
        [p.case.name for p in pairs]  # the same draw again
    assert len(double_reads.set_share(round=world.round, share=0.2)) == 1
    assert Task.objects.filter(round=world.round, read=2).count() == 1
    Task.objects.filter(round=world.round).update(priority=1.0)
    assert queue.rebuild_tasks(round=world.round) == 4  # re-ranking refreshes both reads' priority
    kept = DoubleRead.objects.get()
    assert kept.first.priority == kept.second.priority == Task.objects.get(pk=kept.first_id).priority > 1.0
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(double_reads.Invalid):
            double_reads.set_share(round=world.round, share=bad)
    lead = world.client("lead")
    response = lead.post("/api/review/double-reads/", {"round": 0, "share": 1.0}, format="json")
    assert response.status_code == 200 and len(response.json()) == 3
    assert lead.post("/api/review/double-reads/", {"round": 9, "share": 0.1}, format="json").status_code == 404
    assert world.client("a1").post("/api/review/double-reads/", {"round": 0, "share": 0.1},
                                   format="json").status_code == 403


@pytest.mark.django_db
def test_two_reads_go_to_two_annotators_who_never_see_each_others_work(world, pair):
    a1, a2 = world.users["a1"], world.users["a2"]
    first = queue.lease_next(user=a1)
    assert first.pk == pair.first_id
    read1 = _submit(world, "a1", first, erase_spleen(world.pseudo.copy()))
    # a1 never gets the second read of the case they read
    again = queue.lease_next(user=a1)
    assert again is not None and again.case_id != pair.case_id
    queue.skip(task_id=again.pk, user=a1, reason="later")
    third = queue.lease_next(user=a1)
    assert third is None or third.case_id != pair.case_id
    with pytest.raises(queue.Invalid, match="twice"):
        queue.assign(annotator=a1, task_ids=[pair.second_id])
    second = queue.lease_next(user=a2)
    assert second.pk == pair.second_id
    # a2's read starts from the pseudo-label, not a1's revision: file, base revision, confirm
    api = world.client("a2")
    task_json = api.post("/api/tasks/next/").json()
    assert task_json["id"] == second.pk and task_json["base_revision"] is None
    label = api.get(f"/api/cases/{pair.case_id}/label.nii.gz")
    assert np.array_equal(volume(b"".join(label.streaming_content)), world.pseudo)  # not a1's (no spleen)
    mine = world.client("a1").get(f"/api/cases/{pair.case_id}/label.nii.gz")
    assert np.array_equal(volume(b"".join(mine.streaming_content)), erase_spleen(world.pseudo.copy()))
    assert label_to_edit(pair.case, second).source == "pseudo_label"
    assert label_to_edit(pair.case, first).revision == read1
    confirmed = revisions.confirm(task_id=second.pk, user=a2, base_revision=None)
    assert confirmed.parent is None and np.array_equal(read_voxels(confirmed.label_file.name), world.pseudo)
    assert label_to_edit(pair.case, first).revision == read1  # a1's chain is still their own
    # while the pair is open neither read is trained on; a read is not accepted alone
    assert label_to_train_on(pair.case) is None or label_to_train_on(pair.case).source != "revision"
    with pytest.raises(reviews.Conflict, match="adjudicate"):
        reviews.decide(revision_id=read1.pk, reviewer=world.users["lead"], decision="accepted")
    assert final_label(pair.case).source == "pseudo_label"


@pytest.mark.django_db
def test_adjudication_merges_per_organ_and_settles_the_label_policies(world, pair, django_capture_on_commit_callbacks):
    a1, a2, lead = world.users["a1"], world.users["a2"], world.users["lead"]
    with django_capture_on_commit_callbacks(execute=True):
        read1 = _submit(world, "a1", queue.lease_next(user=a1), erase_spleen(world.pseudo.copy()))
        # the other read is not in: "next to review" passes the pair by
        assert world.client("lead").post("/api/review/next/", {}, format="json").status_code == 204
        grown = world.pseudo.copy()
        grown[2:4, 2:8, :] = LIVER
        read2 = _submit(world, "a2", queue.lease_next(user=a2), grown)
    pair.refresh_from_db()
    assert pair.agreement_key == f"r{read1.pk}:r{read2.pk}"
    assert pair.agreement["spleen"] == {"dice": 0.0, "nsd": 0.0}
    assert 0.0 < pair.agreement["liver"]["dice"] < 1.0
    api = world.client("lead")
    detail = api.get(f"/api/review/revisions/{read1.pk}/").json()
    assert detail["double_read"]["read"] == 1 and detail["double_read"]["other"]["id"] == read2.pk
    assert api.post(f"/api/review/revisions/{read1.pk}/adjudicate/", {"take": 3}, format="json").status_code == 400
    assert api.post(f"/api/review/revisions/{read1.pk}/adjudicate/", {"take": 1, "organs": {"lung": 2}},
                    format="json").status_code == 400
    response = api.post(f"/api/review/revisions/{read2.pk}/adjudicate/", {"take": 1, "organs": {"liver": 2}},
                        format="json")
    assert response.status_code == 201, response.content
    final = Revision.objects.get(pk=response.json()["id"])
    assert (final.author, final.parent_id, final.task_id) == (lead, read1.pk, read1.task_id)
    assert api.post(f"/api/review/revisions/{read2.pk}/adjudicate/", {"take": 2},
                    format="json").status_code == 409  # once only
    assert [r.decision for r in Review.objects.filter(revision__in=[read1, read2])] == ["adjudicated"] * 2
    assert final_label(pair.case).revision == final
    assert label_to_train_on(pair.case).revision == final
    assert DoubleRead.objects.get(pk=pair.pk).adjudicated == final
    # no revision of the pair waits for review any more
    assert api.get("/api/review/queue/").json() == []


def test_merge_reads_takes_each_organ_from_its_read():
    one = np.array([[[1, 5, 0, 5]]], dtype=np.uint8)
    two = np.array([[[1, 1, 5, 0]]], dtype=np.uint8)
    organs = {1: "spleen", 5: "liver"}
    assert double_reads.merge_reads(one, two, organs, 1, {}).tolist() == one.tolist()
    assert double_reads.merge_reads(one, two, organs, 1, {"spleen": 2, "liver": 2}).tolist() == two.tolist()
    assert double_reads.merge_reads(one, two, organs, 1, {"liver": 2}).tolist() == [[[1, 0, 5, 0]]]
    assert double_reads.merge_reads(one, two, organs, 2, {"liver": 1}).tolist() == [[[1, 5, 0, 5]]]


def test_organ_agreement_is_dice_and_nsd_per_organ():
    a = np.zeros((12, 12, 12), dtype=np.uint8)
    a[2:8, 2:8, 2:8] = 5
    b = a.copy()
    b[2:8, 2:8, 7] = 0  # one slice less
    result = organ_agreement(a, b, {1: "spleen", 5: "liver"}, [1.0, 1.0, 1.0])
    assert set(result) == {"liver"}  # the spleen is in neither
    assert result["liver"]["dice"] == pytest.approx(2 * 180 / (216 + 180), abs=1e-6)
    assert result["liver"]["nsd"] == 1.0  # 1 mm off, within the liver's 5 mm
    assert organ_agreement(a, a, {5: "liver"}, [1, 1, 1]) == {"liver": {"dice": 1.0, "nsd": 1.0}}


@pytest.mark.django_db
def test_the_dashboard_shows_verdicts_review_time_and_agreement(world, pair, django_capture_on_commit_callbacks):
    from annotation.services.metrics import update_round_metrics

    a1, a2, lead = world.users["a1"], world.users["a2"], world.users["lead"]
    with django_capture_on_commit_callbacks(execute=True):
        read1 = _submit(world, "a1", queue.lease_next(user=a1), erase_spleen(world.pseudo.copy()))
        _submit(world, "a2", queue.lease_next(user=a2), world.pseudo.copy())
        other = _submit(world, "a1", queue.lease_next(user=a1), world.pseudo.copy())
    pair.refresh_from_db()
    reviews.decide(revision_id=other.pk, reviewer=lead, decision="rejected", comment="look again", seconds_spent=30.0)
    double_reads.adjudicate(revision_id=read1.pk, reviewer=lead, take=2, seconds=90.0)
    board = world.client("lead").get("/api/dashboard/reviews/").json()
    assert board["leads"] == [{"lead": "lead", "reviews": 2, "accepted": 0, "rejected": 1, "edited": 0,
                               "adjudicated": 1, "median_seconds": 60.0, "mean_seconds": 60.0}]
    assert {r["annotator"]: (r["rejected"], r["adjudicated"]) for r in board["annotators"]} == {
        "a1": (1, 1), "a2": (0, 1)}
    assert board["double_reads"]["pairs"] == 1 and board["double_reads"]["adjudicated"] == 1
    organs = {row["organ"]: row for row in board["double_reads"]["organs"]}
    assert organs["spleen"]["dice"] == 0.0 and organs["liver"]["dice"] == 1.0 and organs["liver"]["pairs"] == 1
    assert world.client("a1").get("/api/dashboard/reviews/").status_code == 403
    bias = update_round_metrics(round_id=world.round.pk)["label_bias"]
    annotators = bias["sources"].index("annotators")
    assert bias["organs"]["spleen"][annotators][annotators] == 0.0  # the two reads disagree on the spleen
    assert bias["organs"]["liver"][annotators][annotators] == 1.0
    assert bias["organs"]["liver"][0][0] == 1.0
