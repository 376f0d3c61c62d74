"""Read paths of double reads: which tasks are the other read of a task, which reads are not settled yet.

Two reads of a case are independent: an annotator never sees the other read's revisions (selectors.labels keeps
them apart through these), and one annotator never takes both reads (services.queue).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet

from annotation.models import DoubleRead, Revision, Task


def double_read_of(task: Task | int) -> DoubleRead | None:
    task_id = task if isinstance(task, int) else task.pk
    return (DoubleRead.objects.select_related("first", "second", "case", "round")
            .filter(Q(first_id=task_id) | Q(second_id=task_id)).first())


def other_read_ids(task: Task | int | None) -> list[int]:
    """The task ids of the other read of this task's double read (empty: a single read)."""
    if task is None:
        return []
    pair = double_read_of(task)
    if pair is None:
        return []
    task_id = task if isinstance(task, int) else task.pk
    return [pair.second_id if pair.first_id == task_id else pair.first_id]


def unsettled_read_tasks() -> QuerySet[DoubleRead]:
    """Task ids of both reads of every double read no lead has adjudicated yet (a values queryset)."""
    pending = DoubleRead.objects.filter(adjudicated__isnull=True)
    return Task.objects.filter(Q(pk__in=pending.values("first_id")) | Q(pk__in=pending.values("second_id"))
                               ).values("pk")


def tasks_touched_by(user) -> QuerySet[Task]:
    """Tasks this user holds, is assigned, skipped or wrote a revision of (one annotator never reads a case twice)."""
    return Task.objects.filter(Q(lease_holder=user) | Q(assignee=user) | Q(revisions__author=user)
                               | Q(skips__user=user)).values("pk")


def reads_closed_to(user) -> QuerySet[Task]:
    """Tasks this user may not take: the other read of a double read whose one read they touched."""
    touched = tasks_touched_by(user)
    pairs = DoubleRead.objects.filter(Q(first_id__in=touched) | Q(second_id__in=touched))
    return Task.objects.filter(Q(pk__in=pairs.values("first_id")) | Q(pk__in=pairs.values("second_id"))
                               ).exclude(pk__in=touched).values("pk")


def latest_of_read(task: Task) -> Revision | None:
    """The newest revision of this task's own read (its revisions only)."""
    return Revision.objects.filter(task=task).order_by("-number").first()
