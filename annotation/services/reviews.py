"""Leasing reviews: "next to review" gives a lead the first revision in the chosen order that no other lead is
reviewing, the way `next` leases a task, so two leads never review the same revision at once."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.errors import Conflict, Invalid
from annotation.models import Review, ReviewLease, Revision, Task
from annotation.roles import ANNOTATOR, role_of
from annotation.selectors.review import ORDERS, waiting_for_review
from annotation.services import revisions
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


@transaction.atomic
def decide(*, revision_id: int, reviewer, decision: str, comment: str = "", reassign_to: str | None = None) -> Review:
    """A lead's verdict (services.revisions.review), under the review lease: 409 while another lead holds it; the
    lease ends with the verdict. A rejection may send the task to another annotator (reassign_to, a username)."""
    annotator = None
    if reassign_to:
        annotator = User.objects.filter(username=reassign_to, is_active=True).first()
        if annotator is None or role_of(annotator) != ANNOTATOR:
            raise Invalid(f"{reassign_to!r} is not an annotator", field="reassign_to")
        if decision != Review.Decision.REJECTED:
            raise Invalid("only a rejection sends the task to someone", field="reassign_to")
    revision = Revision.objects.filter(pk=revision_id).first()
    if revision is not None:
        check_review_lease(revision, reviewer)
    result = revisions.review(revision_id=revision_id, reviewer=reviewer, decision=decision, comment=comment)
    if annotator is not None:
        Task.objects.filter(pk=result.revision.task_id).update(assignee=annotator)
    ReviewLease.objects.filter(revision_id=revision_id).delete()
    return result
