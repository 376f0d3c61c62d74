"""Read paths for rounds: which round, its cases (to infer, to hold out), its state, jobs and progress."""

from __future__ import annotations

import math
import random

from django.db.models import Count, QuerySet

from annotation.errors import Conflict, NotFound
from annotation.models import Case, Job, Round, Task
from annotation.selectors.labels import open_cases, revisions
from annotation.selectors.members import round_members

DEFAULT_HOLDOUT = 0.2


def latest_round() -> Round | None:
    return Round.objects.order_by("-number").first()


def shown_round() -> Round | None:
    """The round the queues and the dashboard show: the latest one that is annotating, else the latest one."""
    return (Round.objects.select_related("label_set").filter(status=Round.Status.ANNOTATING).order_by("-number")
            .first() or Round.objects.select_related("label_set").order_by("-number").first())


def annotating_round(number: int | None = None) -> Round:
    """The round whose predictions may change now: the given number, else the latest; it must be annotating."""
    round = Round.objects.filter(number=number).first() if number is not None else latest_round()
    if round is None:
        raise NotFound(f"round {number} does not exist" if number is not None
                       else "no round yet: run start_round first", field="round" if number is not None else None)
    if round.status != Round.Status.ANNOTATING:
        raise Conflict(f"round {round.number} is {round.status}; predictions can be changed only in a round that is "
                       "annotating")
    return round


def round_cases(round: Round) -> QuerySet[Case]:
    """Every case of the round's label set."""
    return Case.objects.filter(dataset__label_set=round.label_set_id).order_by("pk")


def cases_to_infer(round: Round) -> QuerySet[Case]:
    """Cases of the round's label set that are not final (selectors.labels)."""
    return open_cases(round_cases(round))


def holdout_cases(round: Round) -> list[Case]:
    """Revised cases left out of this round's fine-tuning to validate it: a seeded share, the same for every arch.

    Only when there is a parent to compare with (round 1 on) and at least one case to spare for each side.
    """
    fraction = float(round.settings.get("holdout", DEFAULT_HOLDOUT))
    if round.number == 0 or fraction <= 0:
        return []
    revised = list(round_cases(round).filter(pk__in=revisions().values("case_id")))
    count = min(len(revised) - 1, math.floor(len(revised) * fraction))
    if count < 1:
        return []
    rng = random.Random(f"{round.settings.get('seed', 0)}:{round.number}")
    return sorted(rng.sample(revised, count), key=lambda c: c.pk)


def previous_round(round: Round) -> Round | None:
    return Round.objects.filter(number__lt=round.number).order_by("-number").first()


def round_summary(round: Round) -> dict:
    """State, per-kind job counts and progress, tasks by status, models (and members: where each comes from and
    whether this round fine-tuned it), and whether the loop converged."""
    jobs: dict[str, dict] = {}
    for kind, status, n in round.jobs.values_list("kind", "status").annotate(n=Count("id")).order_by():
        jobs.setdefault(kind, {})[status] = n
    running = list(round.jobs.filter(status=Job.Status.RUNNING).values("key", "progress", "message"))
    failed = list(round.jobs.filter(status=Job.Status.FAILED).values("key", "error"))
    tasks = dict(Task.objects.filter(round=round).values_list("status").annotate(n=Count("id")).order_by())
    return {"number": round.number, "status": round.status, "label_set": round.label_set.name,
            "settings": round.settings, "error": round.error, "converged": round.converged,
            "models": list(round.members.values_list("name", flat=True)), "members": round_members(round),
            "jobs": jobs, "running": running,
            "failed": failed, "tasks": tasks}
