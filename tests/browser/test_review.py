"""Review in a real browser, signed in as a lead: accept, reject with a comment (the annotator's queue shows it and
they get the task back), edit and accept, and adjudicate a double read. Each checks the stored revisions, verdicts
and task states."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.models import DoubleRead, Review, Revision, Task
from annotation.services import double_reads, queue, reviews, revisions
from tests.browser.conftest import ScreenMap, revision_data, sign_in
from tests.conftest import save_nifti

pytestmark = pytest.mark.django_db(transaction=True)

SPLEEN, LIVER = 1, 5


def revise(world, user: str, change, task=None) -> Revision:
    """The annotator leases their next task (or `task`, already leased) and submits the pseudo-label changed."""
    task = task or queue.lease_next(user=world.users[user])
    data = change(world.pseudo.copy())
    upload = save_nifti(world.tmp / f"{user}-{task.pk}.nii.gz", data.astype(np.uint8), np.asarray(task.case.affine))
    return revisions.submit_revision(task_id=task.pk, user=world.users[user], upload=upload, base_revision=None)


def erase_spleen(label):
    label[label == SPLEEN] = 0
    return label


def open_review(page, base_url: str, revision: Revision) -> None:
    sign_in(page, base_url, "lead")
    page.click("[data-action=review]")
    page.wait_for_selector(f"[data-page=review-queue][data-state=ready] [data-row='{revision.pk}']")
    page.click("[data-action=next-review]")
    page.wait_for_selector(f"[data-page=review][data-revision='{revision.pk}'][data-state=ready]", timeout=30_000)


def test_a_lead_reviews_the_diff_and_accepts(page, live_server, world):
    revision = revise(world, "a1", erase_spleen)
    spleen = int((world.pseudo == SPLEEN).sum())
    open_review(page, live_server.url, revision)
    row = page.locator("[data-table=diff] [data-row=spleen]")
    assert row.get_attribute("data-added") == "0" and row.get_attribute("data-removed") == str(spleen)
    assert page.locator("[data-table=diff] [data-row=liver]").get_attribute("data-removed") == "0"
    page.locator("[data-table=diff] [data-row=spleen]").click()  # the spleen's diff alone
    page.wait_for_selector("[data-page=review][data-organ=spleen][data-state=ready]", timeout=30_000)
    page.click("[data-action=accept]")
    page.wait_for_selector("[data-page=review-queue] [data-flash]")
    review = Review.objects.get(revision=revision)
    assert review.decision == Review.Decision.ACCEPTED and review.reviewer == world.users["lead"]
    assert review.seconds is not None and review.seconds > 0
    assert Task.objects.get(pk=revision.task_id).status == Task.Status.REVISED
    assert Revision.objects.filter(case=revision.case).count() == 1
    assert page.locator(f"[data-row='{revision.pk}']").count() == 0
    assert page.errors == []


def test_a_rejection_goes_back_to_the_annotator_with_the_comment(page, browser, live_server, world):
    revision = revise(world, "a1", erase_spleen)
    open_review(page, live_server.url, revision)
    page.click("[data-action=reject]")
    page.fill("[data-input=comment]", "the spleen is there: put it back")
    page.click("[data-action=confirm-reject]")
    page.wait_for_selector("[data-page=review-queue] [data-flash]")
    review = Review.objects.get(revision=revision)
    assert review.decision == Review.Decision.REJECTED and review.comment == "the spleen is there: put it back"
    task = Task.objects.get(pk=revision.task_id)
    assert (task.status, task.assignee, task.review_comment) == (
        Task.Status.PENDING, world.users["a1"], "the spleen is there: put it back")
    annotator = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    sign_in(annotator, live_server.url, "a1")
    row = annotator.locator(f"[data-task='{task.pk}']")
    assert row.get_attribute("data-status") == "pending"
    assert "the spleen is there: put it back" in row.inner_text()
    annotator.click("[data-action=next-case]")
    annotator.wait_for_selector(f"[data-page=workspace][data-state=ready][data-task='{task.pk}']", timeout=30_000)
    assert "put it back" in annotator.inner_text(".flash")
    # the quality checks' flag on their revision shows in the workspace
    annotator.wait_for_selector("[data-section=flags] [data-flag=erased][data-organ=spleen][data-source=revision]")
    # the workspace opens the pseudo-label again: the rejected revision counts nowhere
    assert annotator.get_attribute("[data-page=workspace]", "data-base-revision") == str(revision.pk)
    annotator.context.close()


def test_edit_and_accept_stores_the_leads_edits_as_a_child_revision(page, live_server, world):
    revision = revise(world, "a1", erase_spleen)
    before = revision_data(revision)
    open_review(page, live_server.url, revision)
    page.select_option("[data-choose=organ]", str(LIVER))
    page.click("[data-section=edit] [data-tool=brush]")
    page.wait_for_selector("[data-page=review][data-tool=brush]")
    screen = ScreenMap(page)
    screen.stroke((2, 2), (2, 6))
    page.wait_for_selector("[data-page=review][data-dirty=yes]")
    page.fill("[data-input=comment]", "liver extended")
    page.click("[data-action=edit-accept]")
    page.wait_for_selector("[data-page=review-queue] [data-flash]", timeout=20_000)
    child = Revision.objects.get(case=revision.case, number=2)
    assert (child.parent_id, child.author, child.task_id) == (revision.pk, world.users["lead"], revision.task_id)
    assert Review.objects.get(revision=revision).decision == Review.Decision.EDITED
    assert Review.objects.get(revision=child).decision == Review.Decision.ACCEPTED
    after = revision_data(child)
    changed = np.argwhere(after != before)
    assert len(changed) > 0 and set(after[tuple(changed.T)].tolist()) == {LIVER}
    assert {int(v) for v in changed[:, 2]} == {screen.z} and {int(v) for v in changed[:, 0]} == {2}
    assert Task.objects.get(pk=revision.task_id).status == Task.Status.REVISED
    assert page.errors == []


def test_a_lead_adjudicates_a_double_read_per_organ(page, live_server, world):
    pairs = double_reads.set_share(round=world.round, share=0.34)
    assert len(pairs) == 1
    pair = pairs[0]
    first = Task.objects.get(pk=pair.first_id)
    second = Task.objects.get(pk=pair.second_id)
    queue.assign(annotator=world.users["a1"], task_ids=[first.pk])
    queue.assign(annotator=world.users["a2"], task_ids=[second.pk])

    def liver_grown(label):
        label[2:4, 2:8, :] = LIVER
        return label

    read1 = revise(world, "a1", erase_spleen)
    read2 = revise(world, "a2", liver_grown)
    assert (read1.task_id, read2.task_id) == (first.pk, second.pk)
    open_review(page, live_server.url, read1)
    assert page.get_attribute("[data-page=review]", "data-double-read") == "1"
    assert page.locator("[data-action=accept]").count() == 0  # a read is adjudicated, never accepted alone
    page.wait_for_selector(f"[data-section=adjudicate][data-other='{read2.pk}']")
    page.select_option("[data-choose=take]", "1")
    page.select_option("[data-choose-organ=liver]", "2")
    page.click("[data-action=adjudicate]")
    page.wait_for_selector("[data-page=review-queue] [data-flash]", timeout=20_000)
    final = DoubleRead.objects.get(pk=pair.pk).adjudicated
    assert final is not None and final.author == world.users["lead"] and final.parent_id == read1.pk
    assert Review.objects.get(revision=final).decision == Review.Decision.ACCEPTED
    assert {Review.objects.get(revision=r).decision for r in (read1, read2)} == {Review.Decision.ADJUDICATED}
    data, one, two = revision_data(final), revision_data(read1), revision_data(read2)
    assert np.array_equal(data == LIVER, two == LIVER)  # the liver of read 2
    assert np.array_equal(data == SPLEEN, one == SPLEEN)  # the rest of read 1 (no spleen)
    assert {Task.objects.get(pk=t).status for t in (first.pk, second.pk)} == {Task.Status.REVISED}
    assert page.errors == []


def test_the_dashboard_shows_verdicts_and_sets_double_reads(page, live_server, world):
    revision = revise(world, "a1", erase_spleen)
    reviews.decide(revision_id=revision.pk, reviewer=world.users["lead"], decision="accepted", seconds_spent=75.0)
    sign_in(page, live_server.url, "lead")
    page.click("[data-action=dashboard]")
    page.wait_for_selector("[data-section=reviews] [data-table=review-leads] [data-row=lead]", timeout=20_000)
    row = page.locator("[data-table=review-leads] [data-row=lead]")
    assert row.locator("[data-col=accepted]").get_attribute("data-value") == "1"
    assert row.locator("[data-col=median_seconds]").get_attribute("data-value") == "75"
    annotator = page.locator("[data-table=review-annotators] [data-row=a1]")
    assert annotator.locator("[data-col=accepted_share]").get_attribute("data-value") == "1"
    page.fill("[data-input=double-read-share]", "50")
    page.click("[data-action=set-double-reads]")
    page.wait_for_selector("[data-section=reviews] .flash")
    assert DoubleRead.objects.filter(round=world.round).count() == 2  # half of 3 cases, rounded
    world.round.refresh_from_db()
    assert world.round.double_read_share == 0.5
    assert page.errors == []
