"""Rounds of the loop as a state machine: training -> inferring -> ranking -> annotating -> closed.

Each step is a Job row with a deterministic key. Workers run jobs; after each one, `advance` looks at the
round's jobs in a transaction that locks the round row, and moves the round on (queueing the next jobs)
once every job of the step has succeeded. A job that already succeeded is never run again, so a task
delivered twice, or a round resumed after a crash, redoes nothing that finished.
"""

from __future__ import annotations

import logging
import math
import random
import traceback
from collections.abc import Callable, Sequence

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import Case, Job, LabelSet, ModelVersion, Review, Revision, Round
from annotation.services.queue import rebuild_tasks
from ml_engine.networks import ARCHITECTURES

log = logging.getLogger(__name__)

DEFAULT_HOLDOUT = 0.2
ACTIVE = (Round.Status.TRAINING, Round.Status.INFERRING, Round.Status.RANKING)
Enqueue = Callable[[Job], None]


class RoundError(ValueError):
    """A round operation that cannot be done now; str() says why."""


def _enqueue(job: Job) -> None:
    from annotation import tasks  # the Celery side; imported late so services stay importable without it

    tasks.enqueue_job(job)


def start_round(*, archs: Sequence[str] = ARCHITECTURES, size: str = "tiny", epochs: int | None = None,
                steps: int | None = None, label_set: str = "abdomenatlas", seed: int = 0,
                holdout: float = DEFAULT_HOLDOUT, enqueue: Enqueue = _enqueue) -> Round:
    """Open the next round (round 0 when none exists) and queue its training jobs.

    holdout: the share of revised cases left out of fine-tuning to validate the new models against their parents.
    """
    bad = [a for a in archs if a not in ARCHITECTURES]
    if bad or not archs:
        raise RoundError(f"--archs: {', '.join(bad) or 'none given'}; choose from {', '.join(ARCHITECTURES)}")
    if not 0.0 <= holdout < 1.0:
        raise RoundError(f"--holdout must be at least 0 and below 1, got {holdout}")
    labels = LabelSet.objects.filter(name=label_set).first()
    if labels is None:
        raise RoundError(f"label set {label_set!r} does not exist")
    with transaction.atomic():
        busy = Round.objects.select_for_update().filter(status__in=ACTIVE).first()
        if busy is not None:
            raise RoundError(f"round {busy.number} is still {busy.status}; wait for it or cancel it")
        last = Round.objects.aggregate(n=Max("number"))["n"]
        Round.objects.filter(status=Round.Status.ANNOTATING).update(status=Round.Status.CLOSED,
                                                                    finished=timezone.now())
        round = Round.objects.create(number=0 if last is None else last + 1, label_set=labels,
                                     status=Round.Status.TRAINING,
                                     settings={"archs": list(archs), "size": size, "epochs": epochs, "steps": steps,
                                               "seed": seed, "holdout": holdout})
        jobs = [Job.objects.create(key=f"round{round.number}:train:{arch}", kind=Job.Kind.TRAIN, round=round,
                                   arch=arch) for arch in archs]
        transaction.on_commit(lambda: [enqueue(job) for job in jobs])
    return round


def cancel_round(*, round: Round | None = None) -> Round:
    with transaction.atomic():
        round = round or Round.objects.select_for_update().filter(status__in=ACTIVE).order_by("-number").first()
        if round is None or round.status not in ACTIVE:
            raise RoundError("no round is training, inferring or ranking")
        round.status, round.finished = Round.Status.CANCELLED, timezone.now()
        round.save(update_fields=["status", "finished"])
        round.jobs.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).update(status=Job.Status.CANCELLED)
    return round


def round_cases(round: Round):
    return Case.objects.filter(dataset__label_set=round.label_set_id).order_by("pk")


def cases_to_infer(round: Round):
    """Cases of the round's label set that are not final (no revision accepted by a lead)."""
    final = Revision.objects.filter(review__decision=Review.Decision.ACCEPTED).values("case_id")
    return round_cases(round).exclude(pk__in=final)


def holdout_cases(round: Round) -> list[Case]:
    """Revised cases left out of this round's fine-tuning to validate it: a seeded share, the same for every arch.

    Only when there is a parent to compare with (round 1 on) and at least one case to spare for each side.
    """
    fraction = float(round.settings.get("holdout", DEFAULT_HOLDOUT))
    if round.number == 0 or fraction <= 0:
        return []
    revised = list(round_cases(round).filter(
        pk__in=Revision.objects.exclude(review__decision=Review.Decision.REJECTED).values("case_id")))
    count = min(len(revised) - 1, math.floor(len(revised) * fraction))
    if count < 1:
        return []
    rng = random.Random(f"{round.settings.get('seed', 0)}:{round.number}")
    return sorted(rng.sample(revised, count), key=lambda c: c.pk)


def _claim(job_id: int) -> Job | None:
    """Mark a job running, unless it finished or its round stopped; None means: nothing to do."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("round").get(pk=job_id)
        if job.status in (Job.Status.SUCCEEDED, Job.Status.CANCELLED, Job.Status.RUNNING):
            return None  # done, dropped, or a second delivery of a job that is running: resume_round resets
        if job.round.status not in ACTIVE:
            return None
        job.status, job.started, job.attempts = Job.Status.RUNNING, timezone.now(), job.attempts + 1
        job.error = ""
        job.save(update_fields=["status", "started", "attempts", "error"])
        return job


def _progress(job: Job) -> Callable[[float, str], None]:
    def report(fraction: float, message: str) -> None:
        Job.objects.filter(pk=job.pk).update(progress=min(1.0, max(0.0, fraction)), message=message[:500])

    return report


def _finish(job: Job, *, error: BaseException | None = None) -> None:
    job.finished = timezone.now()
    if error is None:
        job.status, job.progress = Job.Status.SUCCEEDED, 1.0
    else:
        job.status, job.error = Job.Status.FAILED, "".join(traceback.format_exception_only(error)).strip()
    job.save(update_fields=["status", "progress", "finished", "error"])


def run_job(job_id: int, *, enqueue: Enqueue = _enqueue) -> str:
    """Run one job (idempotent), then advance its round. Returns the job's final status."""
    job = _claim(job_id)
    if job is None:
        return Job.objects.get(pk=job_id).status
    try:
        {Job.Kind.TRAIN: _train, Job.Kind.INFER: _infer, Job.Kind.RANK: _rank}[job.kind](job)
    except Exception as exc:
        log.exception("job %s failed", job.key)
        _finish(job, error=exc)
        Round.objects.filter(pk=job.round_id, status__in=ACTIVE).update(
            status=Round.Status.FAILED, error=f"{job.key}: {exc}", finished=timezone.now())
        return Job.Status.FAILED
    _finish(job)
    round = advance(round_id=job.round_id, enqueue=enqueue)
    if job.kind == Job.Kind.RANK and round.status == Round.Status.ANNOTATING:
        _update_metrics(round)
    return Job.Status.SUCCEEDED


def _update_metrics(round: Round) -> None:
    """Once a round is annotating (annotators can start): the cached file metrics of the round it closed, whose
    revisions are all in now, and of this one. A failure here is logged; the round goes on."""
    from annotation.services.metrics import update_round_metrics

    previous = Round.objects.filter(number__lt=round.number).order_by("-number").first()
    for each in (previous, round):
        if each is None:
            continue
        try:
            update_round_metrics(round_id=each.pk)
        except Exception:
            log.exception("round %s: metrics could not be updated", each.number)


def _train(job: Job) -> None:
    from annotation import ml_adapter

    round = job.round
    size = round.settings.get("size", "tiny")
    parent = (ModelVersion.objects.filter(rounds__number__lt=round.number, arch=job.arch, size=size)
              .order_by("-rounds__number").first())
    name = f"round{round.number}-{job.arch}-{size}"
    storage_name = f"models/{name}.pt"
    holdout = holdout_cases(round)
    meta = ml_adapter.train_architecture(
        arch=job.arch, size=size, organs=round.label_set.organ_names(),
        cases=round_cases(round).exclude(pk__in=[c.pk for c in holdout]), holdout=holdout, parent=parent,
        steps=round.settings.get("steps"), epochs=round.settings.get("epochs"),
        seed=int(round.settings.get("seed", 0)), storage_name=storage_name, progress=_progress(job))
    with transaction.atomic():
        version, _ = ModelVersion.objects.update_or_create(
            name=name, defaults={"arch": job.arch, "size": size, "checkpoint": storage_name, "parent": parent,
                                 "metadata": meta})
        round.members.add(version)


def _infer(job: Job) -> None:
    from annotation.services.ensemble import predict_case

    predict_case(job.case, job.round)


def _rank(job: Job) -> None:
    rebuild_tasks(round=job.round)


def advance(*, round_id: int, enqueue: Enqueue = _enqueue) -> Round:
    """Move the round on while every job of its current step has succeeded; queue the next step's jobs."""
    new_jobs: list[Job] = []

    def step_done(kind: str) -> bool:
        return not round.jobs.filter(kind=kind).exclude(status=Job.Status.SUCCEEDED).exists()

    with transaction.atomic():
        round = Round.objects.select_for_update().get(pk=round_id)
        if round.status == Round.Status.TRAINING and step_done(Job.Kind.TRAIN):
            round.status = Round.Status.INFERRING
            previous = Round.objects.filter(number__lt=round.number).order_by("-number").first()
            if previous is not None:  # imported predictions of other tools stay members of the ensemble
                round.members.add(*previous.members.filter(arch=ModelVersion.Arch.EXTERNAL))
            for case in cases_to_infer(round):
                job, created = Job.objects.get_or_create(key=f"round{round.number}:infer:case{case.pk}",
                                                         defaults={"kind": Job.Kind.INFER, "round": round,
                                                                   "case": case})
                if created:
                    new_jobs.append(job)
        if round.status == Round.Status.INFERRING and step_done(Job.Kind.INFER):
            round.status = Round.Status.RANKING
            job, created = Job.objects.get_or_create(key=f"round{round.number}:rank",
                                                     defaults={"kind": Job.Kind.RANK, "round": round})
            if created:
                new_jobs.append(job)
        if round.status == Round.Status.RANKING and step_done(Job.Kind.RANK):
            round.status = Round.Status.ANNOTATING
        round.save(update_fields=["status"])
        transaction.on_commit(lambda: [enqueue(job) for job in new_jobs])
    return round


def resume_round(*, round: Round | None = None, enqueue: Enqueue = _enqueue) -> tuple[Round, int]:
    """After a crash: queue again every job of the round that has not succeeded, and let it go on.

    Jobs left running or failed by a dead worker go back to queued; a failed round returns to the step of
    its failed job. Finished jobs are not redone. Returns the round and how many jobs were queued.
    """
    step_of = {Job.Kind.TRAIN: Round.Status.TRAINING, Job.Kind.INFER: Round.Status.INFERRING,
               Job.Kind.RANK: Round.Status.RANKING}
    with transaction.atomic():
        round = round or Round.objects.order_by("-number").first()
        if round is None:
            raise RoundError("no round to resume")
        round = Round.objects.select_for_update().get(pk=round.pk)
        if round.status == Round.Status.FAILED:
            failed = round.jobs.filter(status=Job.Status.FAILED).order_by("id").first()
            if failed is None:
                raise RoundError(f"round {round.number} failed outside its jobs: {round.error}")
            round.status, round.error, round.finished = step_of[failed.kind], "", None
            round.save(update_fields=["status", "error", "finished"])
        elif round.status not in ACTIVE:
            raise RoundError(f"round {round.number} is {round.status}: nothing to resume")
        round.jobs.filter(status__in=[Job.Status.RUNNING, Job.Status.FAILED]).update(
            status=Job.Status.QUEUED, progress=0.0)
        pending = list(round.jobs.filter(status=Job.Status.QUEUED))
        transaction.on_commit(lambda: [enqueue(job) for job in pending])
    if not pending:
        advance(round_id=round.pk, enqueue=enqueue)
    return round, len(pending)
