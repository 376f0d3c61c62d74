"""Read paths for rounds: which round, its cases (to infer, to hold out), its state, jobs and progress.

Which round is current has one home, `current_round` (and a round named by its number, `round_by_number`); every
view, command and service asks them.
"""

from __future__ import annotations

import math
import random

from django.db.models import Count, QuerySet

from annotation.errors import Conflict, NotFound
from annotation.models import Case, Job, LabelSet, Round, Task
from annotation.selectors.interactive import round_click_model
from annotation.selectors.labels import open_cases, revisions
from annotation.selectors.members import round_members

DEFAULT_HOLDOUT = 0.2


def current_round(*, annotating: bool = False, label_set: LabelSet | int | None = None) -> Round | None:
    """Which round is current: the latest by number, whatever its state; annotating=True: the latest that is
    annotating (the one annotators' queues and Slicer work on); label_set: among that label set's rounds only.
    None: there is no such round."""
    rounds = Round.objects.select_related("label_set")
    if annotating:
        rounds = rounds.filter(status=Round.Status.ANNOTATING)
    if label_set is not None:
        rounds = rounds.filter(label_set=label_set)
    return rounds.order_by("-number").first()


def round_by_number(number: int, *, field: str | None = "round") -> Round:
    """The round with this number; NotFound (404, naming `field`: the request's or option's name for it) when there
    is none."""
    found = Round.objects.select_related("label_set").filter(number=number).first()
    if found is None:
        raise NotFound(f"round {number} does not exist", field=field)
    return found


def shown_round() -> Round | None:
    """The round the queues and the dashboard show: the current one that is annotating, else the current one."""
    return current_round(annotating=True) or current_round()


def annotating_round(number: int | None = None) -> Round:
    """The round whose predictions may change now: the given number, else the current; it must be annotating."""
    round = round_by_number(number) if number is not None else current_round()
    if round is None:
        raise NotFound("no round yet: run start_round first")
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
    """Cases left out of this round's training, the same for every arch: `holdout_labelled` cases with imported
    labels (any round: they measure whether the members are ready, services.readiness), and in later rounds a seeded
    share of the revised cases to validate the fine-tuned models against their parents (only when there is at
    least one case to spare for each side).
    """
    labelled = _holdout_labelled(round)
    return sorted({c.pk: c for c in [*labelled, *_holdout_revised(round)]}.values(), key=lambda c: c.pk)


def _holdout_labelled(round: Round) -> list[Case]:
    count = int(round.settings.get("holdout_labelled") or 0)
    if count <= 0:
        return []
    imported = list(round_cases(round).filter(source_labels__isnull=False).distinct())
    count = min(count, len(imported) - 1)
    if count < 1:
        return []
    rng = random.Random(f"labelled:{round.settings.get('seed', 0)}:{round.number}")
    return rng.sample(imported, count)


def _holdout_revised(round: Round) -> list[Case]:
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
    whether this round fine-tuned it), the round's click model (version, validation), and whether the loop
    converged."""
    jobs: dict[str, dict] = {}
    for kind, status, n in round.jobs.values_list("kind", "status").annotate(n=Count("id")).order_by():
        jobs.setdefault(kind, {})[status] = n
    running = list(round.jobs.filter(status=Job.Status.RUNNING).values("key", "progress", "message"))
    failed = list(round.jobs.filter(status=Job.Status.FAILED).values("key", "error"))
    tasks = dict(Task.objects.filter(round=round).values_list("status").annotate(n=Count("id")).order_by())
    return {"number": round.number, "status": round.status, "label_set": round.label_set.name,
            "settings": round.settings, "error": round.error, "converged": round.converged,
            "models": list(round.members.values_list("name", flat=True)), "members": round_members(round),
            "click_model": round_click_model(round),
            "jobs": jobs, "running": running,
            "failed": failed, "tasks": tasks}
