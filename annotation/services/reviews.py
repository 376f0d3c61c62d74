"""A lead's review: "next to review" gives a lead the first revision in the chosen order that no other lead is
reviewing, the way `next` leases a task, so two leads never review the same revision at once; the verdict (`decide`)
and edit-and-accept, under that lease."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from annotation.errors import Conflict, Forbidden, Invalid, NotFound
from annotation.models import Review, ReviewLease, Revision, Task
from annotation.roles import ANNOTATOR, role_of
from annotation.selectors.double_reads import other_read_ids, waits_for_other_read
from annotation.selectors.labels import latest_revision
from annotation.selectors.review import ORDERS, waiting_for_review
from annotation.services import audit, revisions
from annotation.services.queue import lease_duration


def lease_next_review(*, user, order: str = "voxels", annotator: str | None = None, organ: str | None = None,
                      now: datetime | None = None) -> Revision | None:
    """The revision this lead reviews next (their own live lease first, renewed); None when none is waiting.

    The unique lease per revision decides races: of two leads creating a lease on one revision, one fails and moves
    on to the next candidate.
    """
    if order not in ORDERS:
        raise Invalid(f"{order!r} is not one of {', '.join(ORDERS)}", field="order")
    now = now or timezone.now()
    expires = now + lease_duration()
    held = ReviewLease.objects.filter(holder=user, expires__gt=now, revision__review__isnull=True).first()
    if held is not None:
        ReviewLease.objects.filter(pk=held.pk).update(expires=expires)
        return held.revision
    for candidate in waiting_for_review(order=order, annotator=annotator, organ=organ, free_for=user):
        if waits_for_other_read(candidate.task_id):
            continue  # a double read is adjudicated once both reads are in
        try:
            with transaction.atomic():
                ReviewLease.objects.filter(revision=candidate, expires__lte=now).delete()
                ReviewLease.objects.create(revision=candidate, holder=user, leased_at=now, expires=expires)
        except IntegrityError:
            continue  # another lead took it a moment ago
        return candidate
    return None


def check_review_lease(revision: Revision, user, *, now: datetime | None = None) -> None:
    """Refuse (409) a verdict on a revision that another lead is reviewing under a live lease."""
    now = now or timezone.now()
    lease = ReviewLease.objects.filter(revision=revision, expires__gt=now).exclude(holder=user).first()
    if lease is not None:
        raise Conflict(f"{lease.holder.username} is reviewing revision {revision.pk} until "
                       f"{lease.expires:%H:%M} UTC")


def review_seconds(revision: Revision, reviewer, *, now: datetime | None = None) -> float | None:
    """How long this lead has been reviewing the revision: since they took its review lease (None: no lease)."""
    lease = ReviewLease.objects.filter(revision=revision, holder=reviewer).first()
    if lease is None:
        return None
    return max(0.0, ((now or timezone.now()) - lease.leased_at).total_seconds())


def check_may_edit(*, revision_id: int, reviewer) -> Revision:
    """The lead may send their edit of this revision (checked again, locked, when it lands; the upload intake asks
    before it reads the file): it exists, is not theirs, is no read of a double read, has no verdict, and no other
    lead is reviewing it."""
    revision = Revision.objects.select_related("case__dataset", "task").filter(pk=revision_id).first()
    if revision is None:
        raise NotFound(f"no revision with id {revision_id}")
    if revision.author_id == reviewer.pk:
        raise Forbidden("you may not review your own revision")
    if other_read_ids(revision.task_id):
        raise Conflict(f"revision {revision_id} is one read of a double read: adjudicate the pair instead")
    if Review.objects.filter(revision=revision).exists():
        raise Conflict(f"revision {revision_id} was reviewed already")
    check_review_lease(revision, reviewer)
    return revision


@transaction.atomic
def decide(*, revision_id: int, reviewer, decision: str, comment: str = "", reassign_to: str | None = None,
           seconds_spent: float | None = None) -> Review:
    """A lead's verdict: accept or reject a revision; a rejection sends the task back to the queue with the comment,
    to its annotator's own queue or to another annotator (reassign_to, a username; a double read's other reader may
    not get it).

    Under the review lease: 409 while another lead holds it; the lease ends with the verdict. Nobody reviews their own
    revision. A read of a double read is not accepted alone: the lead adjudicates the pair (services.double_reads);
    it may be rejected (back to its annotator). Rejecting the latest revision of a round's top case undoes what it
    said about convergence (the round's top case has no outcome again until it is revised or confirmed anew).
    seconds_spent: the review's time as the page measured it (else the time since the lead's review lease was taken).
    """
    annotator = None
    if reassign_to:
        annotator = User.objects.filter(username=reassign_to, is_active=True).first()
        if annotator is None or role_of(annotator) != ANNOTATOR:
            raise Invalid(f"{reassign_to!r} is not an annotator", field="reassign_to")
        if decision != Review.Decision.REJECTED:
            raise Invalid("only a rejection sends the task to someone", field="reassign_to")
    seconds = seconds_spent
    if (found := Revision.objects.filter(pk=revision_id).first()) is not None:
        check_review_lease(found, reviewer)
        if seconds is None:
            seconds = review_seconds(found, reviewer)
        if annotator is not None and Task.objects.filter(pk__in=other_read_ids(found.task_id)).filter(
                Q(assignee=annotator) | Q(revisions__author=annotator)).exists():
            raise Invalid(f"{reassign_to} did the other read of this double read", field="reassign_to")
    if decision not in Review.VERDICTS:
        raise Invalid(f"expected one of {', '.join(Review.VERDICTS)}", field="decision")
    revision = Revision.objects.select_for_update().select_related("task", "author").filter(pk=revision_id).first()
    if revision is None:
        raise NotFound(f"no revision with id {revision_id}")
    if revision.author_id == reviewer.pk:
        raise Forbidden("you may not review your own revision")
    if Review.objects.filter(revision=revision).exists():
        raise Invalid(f"revision {revision_id} was already reviewed")
    if decision == Review.Decision.REJECTED and not comment.strip():
        raise Invalid("a rejection needs a comment for the annotator", field="comment")
    if decision == Review.Decision.ACCEPTED and other_read_ids(revision.task_id):
        raise Conflict(f"revision {revision_id} is one read of a double read: adjudicate the pair instead")
    result = Review.objects.create(revision=revision, reviewer=reviewer, decision=decision, comment=comment,
                                   seconds=seconds)
    if decision == Review.Decision.REJECTED:
        task = Task.objects.select_for_update().get(pk=revision.task_id)
        task.status, task.review_comment = Task.Status.PENDING, comment
        task.lease_holder = task.lease_expires = None
        task.save(update_fields=["status", "review_comment", "lease_holder", "lease_expires", "updated"])
        if latest_revision(revision.case, task) == revision:
            revisions.record_stopping(task, unchanged=None)
        if audit.is_audit_task(task.pk):  # the audit read drops out of the estimate
            audit.record_audit_stopping(task.round_id)
        # back to its annotator's own queue (or to the one named), so that it shows there with the comment
        annotator = annotator or (revision.author if role_of(revision.author) == ANNOTATOR else None)
    if annotator is not None:
        Task.objects.filter(pk=revision.task_id).update(assignee=annotator)
    ReviewLease.objects.filter(revision_id=revision_id).delete()
    return result


def edit_and_accept(*, revision_id: int, reviewer, upload: Path, seconds_spent: float | None = None,
                    comment: str = "") -> Revision:
    """The lead corrects a revision and accepts the correction: their label map (a local NIfTI file, checked like an
    annotator's upload) becomes a new revision whose parent is the annotator's; the annotator's gets the verdict
    "edited", the new one "accepted". 409: another lead is reviewing it, or a newer revision of its read landed."""
    revision = check_may_edit(revision_id=revision_id, reviewer=reviewer)
    if seconds_spent is not None:
        revisions.check_seconds(seconds_spent)
    data = revisions.check_label_upload(upload, revision.case)
    with transaction.atomic():
        locked = Revision.objects.select_for_update().get(pk=revision_id)
        check_review_lease(locked, reviewer)
        if Review.objects.filter(revision=locked).exists():
            raise Conflict(f"revision {revision_id} was reviewed already")
        latest = latest_revision(revision.case, revision.task)
        if latest is not None and latest.pk != locked.pk:
            raise Conflict(f"revision {latest.number} of {revision.case.name} landed after this one; review that one")
        seconds = seconds_spent if seconds_spent is not None else review_seconds(locked, reviewer)
        result = revisions.store_lead_revision(parent=locked, author=reviewer, data=data)
        Review.objects.create(revision=locked, reviewer=reviewer, decision=Review.Decision.EDITED, comment=comment,
                              seconds=seconds)
        Review.objects.create(revision=result, reviewer=reviewer, decision=Review.Decision.ACCEPTED, comment=comment)
        ReviewLease.objects.filter(revision=locked).delete()
    return result
