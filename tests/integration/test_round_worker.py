"""A round through a real Celery worker, which is killed in the middle of inference and restarted."""

from __future__ import annotations

import time

import pytest

from annotation.models import Job, OrganAttention, Prediction, Round, Task
from annotation.services import rounds
from annotation.services.imports import import_cases
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

N_CASES = 10


def wait_for(predicate, *, timeout: float, what: str, log=None, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = log.read_text()[-3000:] if log is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def test_round_survives_a_killed_worker(worker, tmp_path):
    for i in range(N_CASES):
        phantom = make_phantom(200 + i, shape=(48, 48, 40), spacing=(2.0, 2.0, 3.0), name=f"case{i:02d}")
        write_phantom_case(phantom, tmp_path / "src", organs=ORGANS if i < 2 else ())
    assert import_cases(tmp_path / "src", dataset="crash").ok

    round0 = rounds.start_round(archs=["unet"], steps=2)
    infer = Job.objects.filter(round=round0, kind=Job.Kind.INFER)
    wait_for(lambda: infer.filter(status=Job.Status.SUCCEEDED).count() >= 2, timeout=300,
             what="two cases inferred", log=worker.log)
    worker.kill()
    done_before = set(infer.filter(status=Job.Status.SUCCEEDED).values_list("pk", flat=True))
    round0.refresh_from_db()
    assert round0.status == Round.Status.INFERRING, "the round finished before the worker was killed"
    assert len(done_before) < N_CASES

    worker.start()
    _, queued = rounds.resume_round(round=round0)
    assert queued == N_CASES - len(done_before)
    wait_for(lambda: Round.objects.get(pk=round0.pk).status == Round.Status.ANNOTATING, timeout=300,
             what="the round to reach annotating", log=worker.log, interval=0.5)

    assert Prediction.objects.filter(round=round0).count() == N_CASES  # every case, once
    assert set(infer.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}
    assert set(infer.filter(pk__in=done_before).values_list("attempts", flat=True)) == {1}  # not redone
    assert max(infer.values_list("attempts", flat=True)) <= 2
    assert OrganAttention.objects.filter(round=round0).count() == N_CASES * len(ORGANS)
    assert Task.objects.filter(round=round0).count() == N_CASES
    assert worker.alive()
