"""The job runner: claim a job, run its kind's handler with progress, record how it ended.

One registry maps each job kind to its handler. Round steps (train, infer, rank) run only while their round is
being built; when one fails the round fails, and when one succeeds the round's state machine moves on
(services.rounds.advance). Other kinds (metrics, quality checks) run whenever they are delivered. A job that
succeeded, was cancelled or is running is never started again, so a task delivered twice does nothing the second
time.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from annotation.models import Job, Round
from annotation.services import ensemble, metrics, quality_checks, queue, rounds, training

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between two progress writes of one job


@dataclass(frozen=True)
class JobKind:
    run: Callable[[Job, Callable[[float, str], None]], None]  # (job, progress(fraction, message))
    heavy: bool = False  # training and inference: the GPU queue when there are GPU workers
    round_step: bool = False  # a step of the round's state machine


KINDS: dict[str, JobKind] = {
    Job.Kind.TRAIN: JobKind(training.train_job, heavy=True, round_step=True),
    Job.Kind.INFER: JobKind(lambda job, progress: ensemble.predict_case(job.case, job.round), heavy=True,
                            round_step=True),
    Job.Kind.RANK: JobKind(lambda job, progress: queue.rebuild_tasks(round=job.round), round_step=True),
    Job.Kind.METRICS: JobKind(lambda job, progress: metrics.update_round_metrics(round_id=job.round_id,
                                                                                progress=progress)),
    Job.Kind.QC: JobKind(quality_checks.run_job),
}


def _claim(job_id: int) -> Job | None:
    """Mark a job running, unless it finished, is running, or its round stopped; None means: nothing to do."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("round").get(pk=job_id)
        if job.status in (Job.Status.SUCCEEDED, Job.Status.CANCELLED, Job.Status.RUNNING):
            return None  # done, dropped, or a second delivery of a job that is running: resume_round resets
        if KINDS[job.kind].round_step and job.round.status not in Round.ACTIVE:
            return None
        job.status, job.started, job.attempts = Job.Status.RUNNING, timezone.now(), job.attempts + 1
        job.error = ""
        job.save(update_fields=["status", "started", "attempts", "error"])
        return job


def progress_reporter(job: Job, *, interval: float = PROGRESS_INTERVAL,
                      clock: Callable[[], float] = time.monotonic) -> Callable[[float, str], None]:
    """progress(fraction, message) that writes the job's row at most once per interval (and always at 100%)."""
    last = [-float("inf")]

    def report(fraction: float, message: str) -> None:
        now = clock()
        if now - last[0] < interval and fraction < 1.0:
            return
        last[0] = now
        Job.objects.filter(pk=job.pk).update(progress=min(1.0, max(0.0, fraction)), message=message[:500])

    return report


def _finish(job: Job, *, error: BaseException | None = None) -> None:
    job.finished = timezone.now()
    if error is None:
        job.status, job.progress = Job.Status.SUCCEEDED, 1.0
    else:
        job.status, job.error = Job.Status.FAILED, "".join(traceback.format_exception_only(error)).strip()
    job.save(update_fields=["status", "progress", "finished", "error"])


def run_job(job_id: int) -> str:
    """Run one job (idempotent); a round step then fails or advances its round. Returns the job's final status."""
    job = _claim(job_id)
    if job is None:
        return Job.objects.get(pk=job_id).status
    kind = KINDS[job.kind]
    try:
        kind.run(job, progress_reporter(job))
    except Exception as exc:
        log.exception("job %s failed", job.key)
        _finish(job, error=exc)
        if kind.round_step:
            rounds.fail(round_id=job.round_id, reason=f"{job.key}: {exc}")
        return Job.Status.FAILED
    _finish(job)
    if kind.round_step:
        rounds.advance(round_id=job.round_id)
    return Job.Status.SUCCEEDED
