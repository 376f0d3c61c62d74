"""Read paths of the lead dashboard: queues, leases, progress and pace, the ranked task list, jobs and rounds.

Queue figures are for one round (the latest annotating one unless asked); progress and pace count every round.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.figures import rounded
from annotation.models import Job, OrganAttention, Revision, RevisionTag, Round, Skip, Task
from annotation.roles import ANNOTATOR
from annotation.selectors.rounds import round_summary, shown_round

REMAINING = (Task.Status.PENDING, Task.Status.LEASED, Task.Status.SKIPPED)



def annotator_names() -> list[str]:
    """Usernames of the annotators (whom tasks can be assigned to)."""
    return list(User.objects.filter(groups__name=ANNOTATOR, is_active=True).order_by("username")
                .values_list("username", flat=True).distinct())


def _median_minutes(seconds: list[float]) -> float | None:
    return rounded(statistics.median(seconds) / 60, 2) if seconds else None


def _pace(hours_per_day: float, remaining: int, minutes: float) -> dict:
    hours = remaining * minutes / 60
    return {"minutes_per_case": rounded(minutes, 2), "hours": rounded(hours, 2),
            "working_days": rounded(hours / hours_per_day, 2), "hours_per_day": hours_per_day}


def _annotator_row() -> dict:
    return {"assigned": 0, "leased": 0, "revised": 0, "confirmed": 0, "skipped": 0, "revised_all": 0,
            "confirmed_all": 0, "median_minutes": None}


def _by_annotator(round: Round | None) -> dict[str, dict]:
    """Per user: open tasks assigned and leased in the round, revisions, confirmations and skips in the round and in
    all rounds, and their median minutes per case. Every annotator has a row, and so has anyone else who worked."""
    rows = {name: _annotator_row() for name in annotator_names()}

    def row(name: str) -> dict:
        return rows.setdefault(name, _annotator_row())

    tasks = Task.objects.filter(round=round)
    for name, n in (tasks.filter(status__in=REMAINING, assignee__isnull=False).values_list("assignee__username")
                    .annotate(n=Count("id")).order_by()):
        row(name)["assigned"] = n
    for name, n in (tasks.filter(status=Task.Status.LEASED).values_list("lease_holder__username")
                    .annotate(n=Count("id")).order_by()):
        row(name)["leased"] = n
    for name, kind, in_round, n in (Revision.objects.values_list("author__username", "kind")
                                    .annotate(in_round=Count("id", filter=Q(task__round=round)), n=Count("id"))
                                    .order_by()):
        prefix = "revised" if kind == Revision.Kind.REVISION else "confirmed"
        row(name)[prefix] += in_round
        row(name)[f"{prefix}_all"] += n
    skips = Skip.objects.filter(task__round=round).values_list("user__username").annotate(n=Count("id")).order_by()
    for name, n in skips:
        row(name)["skipped"] = n
    seconds: dict[str, list[float]] = defaultdict(list)
    for name, s in Revision.objects.filter(seconds_spent__gt=0).values_list("author__username", "seconds_spent"):
        seconds[name].append(s)
    for name, values in seconds.items():
        row(name)["median_minutes"] = _median_minutes(values)
    return {name: rows[name] for name in sorted(rows)}


def _by_organ(round: Round | None) -> dict[str, dict]:
    organs: dict[str, dict] = {}

    def row(name: str) -> dict:
        return organs.setdefault(name, {"attention_ml": 0.0, "cases": 0, "revised_cases": 0, "revised_voxels": 0,
                                        "tags": 0})

    for name, total, n in (OrganAttention.objects.filter(round=round, size_ml__gt=0).values_list("organ__name")
                           .annotate(total=Sum("size_ml"), n=Count("id")).order_by("organ__value")):
        row(name).update(attention_ml=rounded(total or 0.0, 3), cases=n)
    for changed in (Revision.objects.filter(task__round=round, kind=Revision.Kind.REVISION)
                    .values_list("changed_voxels", flat=True)):
        for name, n in (changed or {}).items():
            if int(n):
                row(name)["revised_voxels"] += int(n)
                row(name)["revised_cases"] += 1
    for name, n in (RevisionTag.objects.filter(revision__task__round=round).values_list("organ__name")
                    .annotate(n=Count("id")).order_by()):
        row(name)["tags"] = n
    return organs


def _leases(round: Round | None, now: datetime) -> list[dict]:
    rows = (Task.objects.filter(round=round, status=Task.Status.LEASED)
            .select_related("case", "lease_holder").order_by("leased_at", "id"))
    return [{"task": t.pk, "case": t.case.name, "priority": rounded(t.priority, 3), "holder": t.lease_holder.username,
             "leased_at": t.leased_at.isoformat() if t.leased_at else None,
             "expires": t.lease_expires.isoformat() if t.lease_expires else None,
             "held_minutes": rounded((now - t.leased_at).total_seconds() / 60, 1) if t.leased_at else None,
             "expired": bool(t.lease_expires and t.lease_expires < now)} for t in rows]


def _per_day(since: datetime) -> tuple[list[dict], list[dict]]:
    revisions = Revision.objects.filter(created__gte=since).annotate(day=TruncDate("created"))
    counts = dict(r=Count("id", filter=Q(kind=Revision.Kind.REVISION)),
                  c=Count("id", filter=Q(kind=Revision.Kind.CONFIRM)))
    per_day = [{"day": d.isoformat(), "revised": r, "confirmed": c}
               for d, r, c in revisions.values_list("day").annotate(**counts).order_by("day")]
    per_annotator = [{"day": d.isoformat(), "annotator": name, "revised": r, "confirmed": c}
                     for d, name, r, c in revisions.values_list("day", "author__username").annotate(**counts)
                     .order_by("day", "author__username")]
    return per_day, per_annotator


def overview(round: Round | None = None, *, now: datetime | None = None) -> dict:
    """Queues of a round (tasks by status, annotator and organ; leases) and progress over every round (cases
    revised and confirmed per day and per annotator, median minutes per case, time left at that pace)."""
    now = now or timezone.now()
    round = round or shown_round()
    by_status = {s: 0 for s in Task.Status.values}
    by_status.update(dict(Task.objects.filter(round=round).values_list("status").annotate(n=Count("id")).order_by()))
    per_day, per_day_by_annotator = _per_day(now - timedelta(days=30))
    seconds = list(Revision.objects.filter(seconds_spent__gt=0).values_list("seconds_spent", flat=True))
    measured = _median_minutes(seconds)
    median = measured if measured is not None else settings.ATLAS_MINUTES_PER_CASE
    remaining = sum(by_status[s] for s in REMAINING)
    hours_per_day = settings.ATLAS_HOURS_PER_DAY
    return {
        "round": None if round is None else {"number": round.number, "status": round.status,
                                             "converged": round.converged},
        "tasks_by_status": by_status,
        "by_annotator": _by_annotator(round),
        "by_organ": _by_organ(round),
        "leases": _leases(round, now),
        "annotators": annotator_names(),
        "throughput_per_day": per_day,
        "per_day_by_annotator": per_day_by_annotator,
        "median_minutes_per_case": rounded(median, 2),
        "pace": "measured" if measured is not None else "default",
        "timed_revisions": len(seconds),
        "remaining_tasks": remaining,
        "time_left": _pace(hours_per_day, remaining, median),
        "time_left_at_default_pace": _pace(hours_per_day, remaining, settings.ATLAS_MINUTES_PER_CASE),
    }


def ranked_tasks(round: Round, *, offset: int = 0, limit: int = 100, status: str | None = None) -> dict:
    """A page of the round's ranked list. rank: place among all its tasks; open_rank: place among its open tasks
    (pending, skipped), the numbers POST /api/tasks/assign/ takes as rank_from / rank_to."""
    order = list(Task.objects.filter(round=round).order_by("-priority", "id").values_list("id", "status"))
    ranks, open_ranks, n_open = {}, {}, 0
    for i, (pk, task_status) in enumerate(order):
        ranks[pk] = i + 1
        if task_status in Task.OPEN:
            n_open += 1
            open_ranks[pk] = n_open
    ids = [pk for pk, s in order if status is None or s == status]
    page = ids[offset:offset + limit]
    tasks = Task.objects.filter(pk__in=page).select_related("case", "assignee", "lease_holder").in_bulk()
    return {"round": round.number, "count": len(ids), "open": n_open, "offset": offset, "limit": limit,
            "results": [_task_row(tasks[pk], ranks[pk], open_ranks.get(pk)) for pk in page]}


def _task_row(t: Task, rank: int, open_rank: int | None) -> dict:
    return {"id": t.pk, "rank": rank, "open_rank": open_rank, "case": t.case.name, "case_id": t.case_id,
            "priority": rounded(t.priority, 3), "status": t.status,
            "assignee": t.assignee.username if t.assignee_id else None,
            "lease_holder": t.lease_holder.username if t.lease_holder_id else None,
            "lease_expires": t.lease_expires.isoformat() if t.lease_expires else None}


def _job_row(job: Job) -> dict:
    return {"id": job.pk, "key": job.key, "kind": job.kind, "arch": job.arch, "case": job.case.name
            if job.case_id else None, "status": job.status, "progress": rounded(job.progress, 4),
            "message": job.message, "error": job.error, "attempts": job.attempts,
            "started": job.started.isoformat() if job.started else None,
            "finished": job.finished.isoformat() if job.finished else None}


def jobs(round: Round | None = None, *, recent: int = 20) -> dict:
    """The rounds with their state and step progress, and one round's running, failed and recent jobs."""
    rounds = list(Round.objects.select_related("label_set").order_by("-number")[:20])
    round = round or (rounds[0] if rounds else None)
    steps: dict[int, dict] = defaultdict(dict)
    for round_id, kind, total, done in (Job.objects.filter(round__in=rounds).values_list("round_id", "kind")
                                        .annotate(total=Count("id"),
                                                  done=Count("id", filter=Q(status=Job.Status.SUCCEEDED)))
                                        .order_by()):
        steps[round_id][kind] = {"total": total, "succeeded": done}
    result = {
        "active": Round.objects.filter(status__in=Round.ACTIVE).exists(),
        "rounds": [{"number": r.number, "status": r.status, "converged": r.converged, "error": r.error,
                    "label_set": r.label_set.name, "settings": r.settings,
                    "created": r.created.isoformat(), "finished": r.finished.isoformat() if r.finished else None,
                    "steps": steps.get(r.pk, {})} for r in rounds],
        "round": None, "running": [], "failed": [], "recent": [],
    }
    if round is None:
        return result
    js = Job.objects.filter(round=round).select_related("case")
    result.update(
        round=round_summary(round),
        running=[_job_row(j) for j in js.filter(status=Job.Status.RUNNING).order_by("started", "id")],
        failed=[_job_row(j) for j in js.filter(status=Job.Status.FAILED).order_by("-finished", "-id")],
        recent=[_job_row(j) for j in js.exclude(status__in=[Job.Status.RUNNING, Job.Status.QUEUED])
                .order_by("-finished", "-id")[:recent]],
        queued=js.filter(status=Job.Status.QUEUED).count(),
    )
    return result
