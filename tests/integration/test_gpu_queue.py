"""A round with the GPU queue on: training and inference (the members' votes) run on the worker of the GPU queue;
combining the votes with attention (attend), ranking and metrics on the default queue's. On a machine with CUDA the
GPU queue's worker trains and infers on the GPU (scripts/gpu_smoke.sh runs this test); elsewhere on its CPU, the same
code path otherwise."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings

from annotation.models import Job, Prediction, Round
from annotation.services import rounds
from annotation.services.imports import import_cases
from atlas.celery import app
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case
from tests.integration.conftest import Worker, database_url
from tests.integration.test_round_worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

N_CASES = 3


def test_train_and_infer_run_on_the_gpu_queue(settings, tmp_path):
    import os

    tag = uuid.uuid4().hex[:8]
    default_queue, gpu_queue = f"test-{tag}-default", f"test-{tag}-gpu"
    settings.CELERY_TASK_DEFAULT_QUEUE = default_queue
    settings.ATLAS_GPU_WORKERS, settings.ATLAS_GPU_QUEUE = True, gpu_queue
    env = {**os.environ, "DATABASE_URL": database_url(), "ATLAS_MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "CELERY_BROKER_URL": app.conf.broker_url, "CELERY_RESULT_BACKEND": app.conf.result_backend,
           "ATLAS_BROKER_DIR": str(django_settings.BROKER_DIR), "ATLAS_DEFAULT_QUEUE": default_queue,
           "ATLAS_GPU_QUEUE": gpu_queue, "ATLAS_GPU_WORKERS": "1"}
    workers = [Worker(queue=queue, env=env, log=tmp_path / f"{name}.log").start()
               for name, queue in (("cpu", default_queue), ("gpu", gpu_queue))]
    try:
        for i in range(N_CASES):
            phantom = make_phantom(900 + i, shape=(48, 48, 40), spacing=(2.0, 2.0, 3.0), name=f"gpucase{i}")
            write_phantom_case(phantom, tmp_path / "src", organs=ORGANS if i < 2 else ())
        assert import_cases(tmp_path / "src", dataset="gpu").ok
        round0 = rounds.start_round(archs=["unet"], steps=2)
        wait_for(lambda: Round.objects.get(pk=round0.pk).status in (Round.Status.ANNOTATING, Round.Status.FAILED),
                 timeout=600, what="the round to finish", log=workers[1].log, interval=0.5)
        round0.refresh_from_db()
        assert round0.status == Round.Status.ANNOTATING, round0.error
        assert Prediction.objects.filter(round=round0).count() == N_CASES
        wait_for(lambda: set(Job.objects.filter(round=round0).values_list("status", flat=True))
                 == {Job.Status.SUCCEEDED}, timeout=300, what="every job to succeed", log=workers[0].log)
        gpu_log = workers[1].log.read_text()
        # the GPU queue's worker received the heavy jobs: one train and one infer per case at least
        received = [line for line in gpu_log.splitlines() if "Task annotation.run_job" in line and "received" in line]
        assert len(received) >= 1 + N_CASES, gpu_log[-2000:]
        heavy = Job.objects.filter(round=round0, kind__in=(Job.Kind.TRAIN, Job.Kind.INFER)).count()
        assert heavy == 1 + N_CASES
        # each case's votes were combined, and its attention written, by an attend job on the default queue's worker
        attend = Job.objects.filter(round=round0, kind=Job.Kind.ATTEND)
        assert attend.count() == N_CASES and set(attend.values_list("attempts", flat=True)) == {1}
        cpu_log = workers[0].log.read_text()
        for job in Job.objects.filter(round=round0).exclude(kind=Job.Kind.QC):
            ran_on = [name for name, log in (("cpu", cpu_log), ("gpu", gpu_log))
                      if f"job {job.key}: attempt 1 started" in log]  # services.jobs.run_job logs it
            expected = "gpu" if job.kind in Job.HEAVY else "cpu"  # training (the click model too), inference
            assert ran_on == [expected], (job.key, ran_on)
    finally:
        for worker in workers:
            worker.stop()
