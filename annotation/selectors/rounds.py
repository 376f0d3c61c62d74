"""Read paths for rounds: their state, jobs and progress."""

from __future__ import annotations

from django.db.models import Count

from annotation.models import Job, Round, Task


def round_summary(round: Round) -> dict:
    """State, per-kind job counts and progress, tasks by status, models, and whether the loop converged."""
    jobs: dict[str, dict] = {}
    for kind, status, n in round.jobs.values_list("kind", "status").annotate(n=Count("id")).order_by():
        jobs.setdefault(kind, {})[status] = n
    running = list(round.jobs.filter(status=Job.Status.RUNNING).values("key", "progress", "message"))
    failed = list(round.jobs.filter(status=Job.Status.FAILED).values("key", "error"))
    tasks = dict(Task.objects.filter(round=round).values_list("status").annotate(n=Count("id")).order_by())
    return {"number": round.number, "status": round.status, "label_set": round.label_set.name,
            "settings": round.settings, "error": round.error, "converged": round.converged,
            "models": list(round.members.values_list("name", flat=True)), "jobs": jobs, "running": running,
            "failed": failed, "tasks": tasks}


def latest_round() -> Round | None:
    return Round.objects.order_by("-number").first()
