"""The job runner: claim a job, run its kind's handler with progress, record how it ended.

One registry maps each job kind to its handler. Round steps (train, click, infer, attend, rank) run only while their
round is being built; when one fails the round fails, and when one succeeds the round's state machine moves on
(services.rounds.advance). Other kinds (metrics, quality checks) run whenever they are delivered. A job that
succeeded, was cancelled or is running is never started again, so a task delivered twice does nothing the second
time.

While a handler runs, a thread beside it refreshes the job's heartbeat (and each progress write does too). When the
worker dies, services.reaper queues the job again once its heartbeat is stale. Each claim increments `attempts`,
which fences the attempt: heartbeats, progress and the finish only land while the row is still running under that
attempt, so a slow worker whose job was reclaimed meanwhile cannot finish it a second time (its outcome is dropped).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models.functions import Now
from django.utils import timezone

from annotation.models import Job, Round
from annotation.services import (
    audit,
    ensemble,
    interactive,
    metrics,
    quality_checks,
    queue,
    readiness,
    rounds,
    training,
)

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # seconds between two progress writes of one job


@dataclass(frozen=True)
class JobKind:
    run: Callable[[Job, Callable[[float, str], None]], None]  # (job, progress(fraction, message))
    round_step: bool = False  # a step of the round's state machine


def _infer(job: Job, progress: Callable[[float, str], None]) -> None:
    """Infer one case. With GPU workers the job (on the GPU queue) only runs the members and stores their votes,
    then queues the case's ATTEND job (default queue) for the CPU-only rest, so writing and attention never hold the
    GPU worker; without, one job does it all (no extra round trip)."""
    if not settings.ATLAS_GPU_WORKERS:
        ensemble.predict_case(job.case, job.round)
        return
    ensemble.stage_case(job.case, job.round)
    progress(0.99, "votes stored; attention queued")
    rounds.queue_attend(job)


def _rank(round) -> int:
    """Decide which organs the members are fit to rank (services.readiness), then rank the queue."""
    readiness.assess_round(round=round)
    return queue.rebuild_tasks(round=round)


KINDS: dict[str, JobKind] = {
    Job.Kind.TRAIN: JobKind(training.train_job, round_step=True),
    Job.Kind.CLICK: JobKind(interactive.click_train_job, round_step=True),
    Job.Kind.INFER: JobKind(_infer, round_step=True),
    Job.Kind.ATTEND: JobKind(lambda job, progress: ensemble.attend_case(job.case, job.round), round_step=True),
    Job.Kind.RANK: JobKind(lambda job, progress: _rank(job.round), round_step=True),
    Job.Kind.METRICS: JobKind(lambda job, progress: metrics.update_round_metrics(round_id=job.round_id,
                                                                                progress=progress)),
    Job.Kind.QC: JobKind(lambda job, progress: _qc(job, progress)),
    Job.Kind.AUDIT: JobKind(audit.audit_job),
}


def _qc(job: Job, progress: Callable[[float, str], None]) -> None:
    """The quality checks, and for a read of an audit case its NSD against the pseudo-label (services.audit)."""
    quality_checks.qc_job(job, progress)
    if job.revision_id is not None:
        audit.measure_read(job.revision)


class JobReclaimed(Exception):
    """Raised by a job's progress reporter when the job no longer belongs to this attempt (the reaper queued it
    again, or resume_round did): the handler stops, and its outcome is dropped."""


def _claim(job_id: int) -> Job | None:
    """Mark a job running, unless it finished, is running, or its round stopped; None means: nothing to do."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("round").get(pk=job_id)
        if job.status in (Job.Status.SUCCEEDED, Job.Status.CANCELLED, Job.Status.RUNNING):
            return None  # done, dropped, or a second delivery of a job that is running (the reaper watches it)
        if KINDS[job.kind].round_step and job.round.status not in Round.ACTIVE:
            return None
        job.status, job.started, job.attempts = Job.Status.RUNNING, timezone.now(), job.attempts + 1
        job.error = ""
        Job.objects.filter(pk=job.pk).update(status=job.status, started=job.started, attempts=job.attempts,
                                             error="", heartbeat_at=Now())
        return job


def _held(job: Job):
    """The job's row while this attempt holds it: running, and claimed no later than `job`."""
    return Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, attempts=job.attempts)


def progress_reporter(job: Job, *, interval: float = PROGRESS_INTERVAL,
                      clock: Callable[[], float] = time.monotonic) -> Callable[[float, str], None]:
    """progress(fraction, message) that writes the job's row at most once per interval (and always at 100%), and
    its heartbeat with it; raises JobReclaimed when the job no longer belongs to this attempt."""
    last = [-float("inf")]

    def report(fraction: float, message: str) -> None:
        now = clock()
        if now - last[0] < interval and fraction < 1.0:
            return
        last[0] = now
        if not _held(job).update(progress=min(1.0, max(0.0, fraction)), message=message[:500], heartbeat_at=Now()):
            raise JobReclaimed(f"{job.key}: attempt {job.attempts} no longer holds the job")

    return report


@contextmanager
def _heartbeat(job: Job) -> Iterator[None]:
    """Refresh the job's heartbeat every ATLAS_JOB_HEARTBEAT_SECONDS from a thread (its own connection), while the
    block runs. The thread stops when the job no longer belongs to this attempt."""
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.ATLAS_JOB_HEARTBEAT_SECONDS):
                try:
                    if not _held(job).update(heartbeat_at=Now()):
                        log.warning("job %s: attempt %d was reclaimed while it ran", job.key, job.attempts)
                        return
                except DatabaseError:  # a locked or restarting database: the next beat tries again
                    log.warning("job %s: heartbeat not written", job.key, exc_info=True)
        finally:
            connections.close_all()  # this thread's connections

    thread = threading.Thread(target=beat, name=f"heartbeat:{job.key}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _finish(job: Job, *, error: BaseException | None = None) -> bool:
    """Record how the attempt ended; False (nothing written) when the job no longer belongs to it."""
    if error is None:
        fields = {"status": Job.Status.SUCCEEDED, "progress": 1.0}
    else:
        fields = {"status": Job.Status.FAILED, "error": "".join(traceback.format_exception_only(error)).strip()}
    return bool(_held(job).update(finished=timezone.now(), **fields))


def run_job(job_id: int) -> str:
    """Run one job (idempotent); a round step then fails or advances its round. Returns the job's final status
    (or, when the job was reclaimed while it ran, its status now)."""
    job = _claim(job_id)
    if job is None:
        return Job.objects.get(pk=job_id).status
    kind = KINDS[job.kind]
    log.info("job %s: attempt %d started", job.key, job.attempts)
    error = None
    with _heartbeat(job):
        try:
            kind.run(job, progress_reporter(job))
        except Exception as exc:
            error = exc
    if not _finish(job, error=error):
        outcome = "stopped" if isinstance(error, JobReclaimed) else "failed" if error else "succeeded"
        log.warning("job %s: attempt %d was reclaimed while it ran; its outcome (%s) is dropped", job.key,
                    job.attempts, outcome)
        return Job.objects.get(pk=job_id).status
    if error is not None:
        log.error("job %s failed", job.key, exc_info=error)
        if kind.round_step:
            rounds.fail(round_id=job.round_id, reason=f"{job.key}: {error}")
        return Job.Status.FAILED
    if kind.round_step:
        rounds.advance(round_id=job.round_id)
    return Job.Status.SUCCEEDED
