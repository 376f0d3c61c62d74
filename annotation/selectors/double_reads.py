"""Read paths of double reads: the other read of a task, the reads a user may not take, a read that waits for the
other.

Two reads of a case are independent: an annotator never sees the other read's revisions (selectors.labels keeps
them apart), and one annotator never takes both reads (services.queue).
"""

from __future__ import annotations

from django.db.models import Q

from annotation.models import DoubleRead, Task
from annotation.selectors.labels import revisions


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


def reads_closed_to(user) -> list[int]:
    """Task ids this user may not take: the other read of each double read whose one read they hold, were assigned,
    skipped or revised (one annotator never reads a case twice). Double reads are few (a share of a round's cases):
    two small queries, none when there are none."""
    pairs = list(DoubleRead.objects.values_list("first_id", "second_id"))
    if not pairs:
        return []
    ids = {task for pair in pairs for task in pair}
    touched = set(Task.objects.filter(pk__in=ids).filter(Q(lease_holder=user) | Q(assignee=user)
                                                          | Q(revisions__author=user) | Q(skips__user=user))
                  .values_list("pk", flat=True))
    return [second if first in touched else first for first, second in pairs
            if (first in touched) != (second in touched)]


def waits_for_other_read(task_id: int) -> bool:
    """Whether this task is one read of a double read whose other read has no revision a lead did not reject yet
    (nothing to adjudicate: "next to review" passes it by)."""
    others = other_read_ids(task_id)
    return bool(others) and not revisions().filter(task_id__in=others).exists()
