"""Sending jobs to the workers: the one place that does it.

A job leaves as a Celery message naming the task ``annotation.run_job`` (RUN_JOB, which annotation.tasks registers)
with the job's id, on the job's queue: heavy kinds (``Job.HEAVY``: training, inference) on ATLAS_GPU_QUEUE when
ATLAS_GPU_WORKERS is on, every other on the default queue. It is sent by name, so nothing here imports the tasks
module (which imports the job runner, which imports the round's state machine, which imports this).

The function that sends one job is found from the setting ``ATLAS_JOB_ENQUEUE`` (a dotted path; by default
``annotation.services.dispatch.send_to_worker``, below). Tests point it at a function that runs the job in the same
process. Nothing passes an enqueue function around.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

from annotation.models import Job

RUN_JOB = "annotation.run_job"  # the Celery task that runs one job (annotation.tasks)


def queue_for(job: Job) -> str:
    """The queue a job goes to: the GPU queue for heavy kinds when GPU workers exist, else the default queue."""
    if job.kind in Job.HEAVY and settings.ATLAS_GPU_WORKERS:
        return settings.ATLAS_GPU_QUEUE
    return settings.CELERY_TASK_DEFAULT_QUEUE


def send_to_worker(job: Job) -> None:
    """The default ATLAS_JOB_ENQUEUE: put the job's RUN_JOB message on its queue."""
    current_app.send_task(RUN_JOB, args=[job.pk], queue=queue_for(job))


def enqueue(jobs: Iterable[Job]) -> None:
    """Send these jobs once the current transaction commits (at once outside a transaction)."""
    jobs = list(jobs)
    if jobs:
        transaction.on_commit(lambda: [import_string(settings.ATLAS_JOB_ENQUEUE)(job) for job in jobs])
