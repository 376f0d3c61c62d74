"""The Celery app. Configuration comes from Django settings (CELERY_* names).

At worker start the scratch folders of dead processes are removed and media storage is reconciled with the rows
(orphan files older than the grace period removed; rows without a file logged).
"""

import logging
import os

from celery import Celery
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
