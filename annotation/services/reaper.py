"""Jobs whose worker died: queued again, or failed after too many attempts.

A running job's worker refreshes its heartbeat (services.jobs). Every worker calls `reap` periodically
(atlas/celery.py): a job running whose heartbeat is older than ATLAS_JOB_STALE_SECONDS, by the database's clock, is
taken back with one guarded UPDATE (still running, same attempt, still stale), so that of two reapers only one takes
it, and a worker that was only slow and beats again in time keeps it. A job taken back goes to its queue again
through services.dispatch. A job whose worker was lost on its ATLAS_JOB_MAX_ATTEMPTS-th attempt fails, and a round
step fails its round, with the reason: a case that kills every worker stops the round instead of looping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from annotation.models import Job
from annotation.services import rounds
from annotation.services.dispatch import enqueue
from annotation.services.jobs import KINDS


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)  # job keys
    failed: list[str] = field(default_factory=list)


def _stale():
    """Running jobs not heard of for ATLAS_JOB_STALE_SECONDS (the database's clock, the same for every machine)."""
    return Job.objects.filter(status=Job.Status.RUNNING,
                              heartbeat_at__lt=Now() - timedelta(seconds=settings.ATLAS_JOB_STALE_SECONDS))


def stale_jobs() -> list[Job]:
    return list(_stale().order_by("id"))


def reclaim(job: Job) -> str | None:
    """Take back one job seen stale: queue it again (returns "queued") or, past the attempt cap, fail it and its
    round ("failed"). None when it is no longer this stale attempt (another reaper took it, it finished, or its worker
    beat again): nothing is written then."""
    held = _stale().filter(pk=job.pk, attempts=job.attempts)
    stale_for = f"no heartbeat for {settings.ATLAS_JOB_STALE_SECONDS:g} s"
    with transaction.atomic():
        if job.attempts >= settings.ATLAS_JOB_MAX_ATTEMPTS:
            reason = (f"its worker was lost on each of {job.attempts} attempts ({stale_for}); not retried "
                      "(ATLAS_JOB_MAX_ATTEMPTS)")
            if not held.update(status=Job.Status.FAILED, error=reason, finished=timezone.now()):
                return None
            if KINDS[job.kind].round_step:
                rounds.fail(round_id=job.round_id, reason=f"{job.key}: {reason}")
            return Job.Status.FAILED
        if not held.update(status=Job.Status.QUEUED, progress=0.0,
                           message=f"queued again: the worker of attempt {job.attempts} was lost ({stale_for})"):
            return None
        enqueue([job])  # sent once this transaction commits
    return Job.Status.QUEUED


def reap() -> ReapReport:
    """Take back every stale running job (see the module's docstring)."""
    report = ReapReport()
    for job in stale_jobs():
        outcome = reclaim(job)
        if outcome == Job.Status.QUEUED:
            report.requeued.append(job.key)
        elif outcome == Job.Status.FAILED:
            report.failed.append(job.key)
    return report
