"""The queue: building tasks from attention, leasing the next one, heartbeats, skips, assignment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from annotation.errors import Conflict, Forbidden, Invalid, NotFound
from annotation.models import AuditCase, AutoAccept, OrganAttention, Round, Skip, Task
from annotation.selectors.double_reads import reads_closed_to
from annotation.selectors.readiness import ranked_organs
from annotation.selectors.rounds import current_round


class QueueError(Forbidden):
    """A queue operation the user may not do: the task is not leased to them (403)."""


class LeaseExpired(QueueError, Conflict):
    """The user's lease ran out; they may ask for the next task again (409)."""

    status_code = Conflict.status_code


def _task_for_update(task_id: int) -> Task:
    task = Task.objects.select_for_update().filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    return task


def lease_duration() -> timedelta:
    return timedelta(minutes=settings.ATLAS_LEASE_MINUTES)


@transaction.atomic
def rebuild_tasks(*, round: Round) -> int:
    """One task per case that has attention in the round, priority = total attention (mL) of the organs whose
    members are fit to rank (selectors.readiness: organs not ready are left out; none ready: every priority is 0, so
    the queue follows the cases' import order).

    Existing tasks keep their status, lease and assignee; only their priority is refreshed. Returns the
    number of tasks in the round.
    """
    counted, _ = ranked_organs(round)
    rows = OrganAttention.objects.filter(round=round)
    totals = list(rows.values("case_id").annotate(total=Sum("size_ml")).order_by())
    if counted is not None:
        kept = dict(rows.filter(organ__name__in=counted).values("case_id").annotate(total=Sum("size_ml"))
                    .order_by().values_list("case_id", "total"))
        totals = [{"case_id": row["case_id"], "total": kept.get(row["case_id"]) or 0.0} for row in totals]
    existing: dict[int, list[Task]] = {}
    for t in Task.objects.filter(round=round):
        existing.setdefault(t.case_id, []).append(t)
    new, changed = [], []
    for row in totals:
        tasks = existing.get(row["case_id"])
        if not tasks:
            new.append(Task(case_id=row["case_id"], round=round, priority=row["total"] or 0.0))
        for task in tasks or []:  # both reads of a double read
            if task.priority != row["total"]:
                task.priority = row["total"] or 0.0
                changed.append(task)
    Task.objects.bulk_create(new, batch_size=2000)
    Task.objects.bulk_update(changed, ["priority"], batch_size=2000)
    return Task.objects.filter(round=round).count()


def release_expired(*, now: datetime | None = None) -> int:
    """Leases past their expiry go back to the pool. Returns how many."""
    now = now or timezone.now()
    return Task.objects.filter(status=Task.Status.LEASED, lease_expires__lt=now).update(
        status=Task.Status.PENDING, lease_holder=None, lease_expires=None, updated=now)


def lease_next(*, user, now: datetime | None = None) -> Task | None:
    """Lease the requesting annotator's next task, atomically; None when nothing is left.

    A task the user already holds comes back first (renewed). Then the highest-priority open task assigned
    to them, then the highest unassigned one, in rounds that are annotating, never one they skipped. On
    PostgreSQL rows are locked with SKIP LOCKED so concurrent requests take different tasks; SQLite
    serialises writers (transactions start IMMEDIATE).
    """
    now = now or timezone.now()
    expires = now + lease_duration()
    with transaction.atomic():
        release_expired(now=now)
        held = (Task.objects.select_for_update(of=("self",))
                .filter(status=Task.Status.LEASED, lease_holder=user).order_by("-priority", "id").first())
        if held is not None:
            held.lease_expires = expires
            held.save(update_fields=["lease_expires", "updated"])
            return held
        open_tasks = (Task.objects.filter(round__status=Round.Status.ANNOTATING, status__in=Task.OPEN)
                      .exclude(id__in=Skip.objects.filter(user=user).values("task_id"))
                      .exclude(id__in=reads_closed_to(user))  # never both reads of a double read
                      .exclude(case_id__in=_accepted_unaudited()))
        for candidates in (open_tasks.filter(assignee=user), open_tasks.filter(assignee__isnull=True)):
            task = (candidates.order_by("-priority", "id")
                    .select_for_update(skip_locked=True, of=("self",)).first())
            if task is not None:
                task.status, task.lease_holder, task.lease_expires = Task.Status.LEASED, user, expires
                task.leased_at = now
                task.save(update_fields=["status", "lease_holder", "lease_expires", "leased_at", "updated"])
                return task
    return None


def _accepted_unaudited():
    """Cases the auto-accept rule made final that no audit drew: they are done, nobody's task."""
    return AutoAccept.objects.exclude(case_id__in=AuditCase.objects.values("case_id")).values("case_id")


def check_lease(task: Task, user, *, now: datetime | None = None) -> None:
    """Raise QueueError unless user holds a live lease on task."""
    now = now or timezone.now()
    if task.status != Task.Status.LEASED or task.lease_holder_id != user.pk:
        raise QueueError(f"task {task.pk} is not leased to you")
    if task.lease_expires is None or task.lease_expires < now:
        raise LeaseExpired(f"your lease on task {task.pk} expired; ask for the next task again")


@transaction.atomic
def heartbeat(*, task_id: int, user, now: datetime | None = None) -> Task:
    """Renew the user's lease on a task."""
    now = now or timezone.now()
    task = _task_for_update(task_id)
    check_lease(task, user, now=now)
    task.lease_expires = now + lease_duration()
    task.save(update_fields=["lease_expires", "updated"])
    return task


@transaction.atomic
def skip(*, task_id: int, user, reason: str, now: datetime | None = None) -> Task:
    """Give a leased task back with a reason; it will not be offered to this user again this round."""
    reason = reason.strip()
    if not reason:
        raise Invalid("a skip needs a reason", field="reason")
    task = _task_for_update(task_id)
    check_lease(task, user, now=now)
    Skip.objects.create(task=task, user=user, reason=reason)
    task.status, task.lease_holder, task.lease_expires = Task.Status.SKIPPED, None, None
    task.save(update_fields=["status", "lease_holder", "lease_expires", "updated"])
    return task


@transaction.atomic
def assign(*, annotator, task_ids: Sequence[int] | None = None, rank_from: int | None = None,
           rank_to: int | None = None, round: Round | None = None) -> int:
    """Assign tasks to an annotator (None: unassign): by id, or a slice of the ranked list of open tasks.

    rank_from / rank_to are 1-based and inclusive, over the open tasks of the round in priority order.
    Returns how many tasks were assigned.
    """
    if task_ids is not None:
        tasks = Task.objects.filter(pk__in=task_ids)
        missing = set(task_ids) - set(tasks.values_list("pk", flat=True))
        if missing:
            raise Invalid(f"no task with id {', '.join(map(str, sorted(missing)[:20]))}", field="task_ids")
    else:
        if rank_from is None or rank_to is None or rank_from < 1 or rank_to < rank_from:
            raise Invalid("give task ids, or rank_from and rank_to with 1 <= rank_from <= rank_to",
                          field="rank_from")
        round = round or current_round(annotating=True)
        if round is None:
            raise Conflict("no round is annotating")
        ranked = Task.objects.filter(round=round, status__in=Task.OPEN).order_by("-priority", "id")
        tasks = Task.objects.filter(pk__in=list(ranked.values_list("pk", flat=True)[rank_from - 1:rank_to]))
    if annotator is not None:
        both = [t.case.name for t in tasks.filter(pk__in=reads_closed_to(annotator)).select_related("case")]
        both += [t.case.name for t in tasks.filter(double_read_first__second__in=tasks)]
        if both:
            raise Invalid(f"{annotator.username} would read {', '.join(sorted(set(both))[:5])} twice: the two reads "
                          "of a double read go to two different annotators", field="annotator")
    return tasks.update(assignee=annotator)
