"""Sending jobs to the workers: the one place that does it.

The function that sends one job is found once, from the setting ``ATLAS_JOB_ENQUEUE`` (a dotted path; by default
``annotation.tasks.enqueue_job``, which puts a Celery task on the job's queue). Tests point it at a function that runs
the job in the same process. Nothing passes an enqueue function around.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from annotation.models import Job


def enqueue(jobs: Iterable[Job]) -> None:
    """Send these jobs once the current transaction commits (at once outside a transaction)."""
    jobs = list(jobs)
    if jobs:
        transaction.on_commit(lambda: [import_string(settings.ATLAS_JOB_ENQUEUE)(job) for job in jobs])
