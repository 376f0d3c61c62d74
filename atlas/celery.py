"""The Celery app. Configuration comes from Django settings (CELERY_* names).

At worker start the scratch folders of dead processes are removed and media storage is reconciled with the rows
(orphan files older than the grace period removed; rows without a file logged). While it runs, every worker takes
back the jobs of dead workers (annotation.services.reaper) every ATLAS_JOB_HEARTBEAT_SECONDS, on the worker's own
timer: no beat process, and nothing runs beside the pool's forks in the worker's main process.
"""

import logging
import os

from celery import Celery, bootsteps
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "atlas.settings")

app = Celery("atlas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

log = logging.getLogger(__name__)


@worker_ready.connect
def _tidy_at_start(**kwargs) -> None:
    from annotation.services.media import reconcile_media
    from annotation.storage import clean_scratch

    try:
        clean_scratch()
        report = reconcile_media(delete=True)
    except Exception:  # a worker that cannot tidy still works; the command can be run by hand
        log.exception("reconcile_media at worker start failed")
        return
    for label, pk, field, name in report.missing:
        log.warning("media: %s %s %s names %s, which is missing", label, pk, field, name)
    if report.removed:
        log.warning("media: removed %d orphan files at worker start", len(report.removed))


class JobReaper(bootsteps.StartStopStep):
    """Reaps stale jobs on the worker's timer (the event loop's, or the pool's timer thread without one)."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.timer_entry = None

    def start(self, worker) -> None:
        from django.conf import settings

        self.timer_entry = worker.timer.call_repeatedly(settings.ATLAS_JOB_HEARTBEAT_SECONDS, reap_once)

    def stop(self, worker) -> None:
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None


def reap_once() -> None:
    from django.db import close_old_connections

    from annotation.services.reaper import reap

    try:
        report = reap()
    except Exception:  # a database that does not answer now: the next tick tries again
        log.exception("reaping stale jobs failed")
        return
    finally:
        close_old_connections()
    if report.requeued:
        log.warning("jobs whose worker was lost, queued again: %s", ", ".join(report.requeued))
    if report.failed:
        log.error("jobs whose worker was lost too often, failed: %s", ", ".join(report.failed))


app.steps["worker"].add(JobReaper)
