"""services.dispatch: a job leaves as the Celery task `annotation.run_job`, sent by name, on its kind's queue."""

from __future__ import annotations

import pytest
from celery import Celery, current_app

from annotation.models import Job
from annotation.services import dispatch
from atlas import celery_app


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """What send_task was asked to send: (name, args, queue); nothing reaches a broker."""
    calls: list[tuple] = []
    monkeypatch.setattr(Celery, "send_task", lambda app, name, args=None, queue=None, **kw: calls.append(
        (app, name, args, queue)))
    return calls


@pytest.mark.parametrize("gpu_workers", [False, True])
def test_each_kind_goes_to_its_queue(settings, sent, gpu_workers):
    settings.ATLAS_GPU_WORKERS, settings.ATLAS_GPU_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE = gpu_workers, "g", "d"
    for pk, kind in enumerate(Job.Kind, start=1):
        dispatch.send_to_worker(Job(pk=pk, kind=kind))
    heavy = "g" if gpu_workers else "d"
    assert [(name, args, queue) for _, name, args, queue in sent] == [
        ("annotation.run_job", [pk], heavy if kind in (Job.Kind.TRAIN, Job.Kind.INFER, Job.Kind.CLICK) else "d")
        for pk, kind in enumerate(Job.Kind, start=1)]
    assert all(app is celery_app for app, *_ in sent)  # the project's app, whose broker the workers read


def test_the_default_sender_is_the_one_here():
    import atlas.settings  # the project's default (tests/conftest.py points the live setting at an inline runner)

    assert atlas.settings.ATLAS_JOB_ENQUEUE == "annotation.services.dispatch.send_to_worker"
    assert current_app._get_current_object() is celery_app
