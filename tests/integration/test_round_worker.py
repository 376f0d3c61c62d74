"""A round through a real Celery worker, which is killed in the middle of inference: a new worker takes the lost job
back by itself (annotation.services.reaper) and the round reaches annotating with no one typing resume_round.

Both CI passes run it: SQLite with kombu's filesystem broker (which drops the message a killed worker had taken) and
PostgreSQL with Redis (which keeps it unacknowledged for its visibility timeout, an hour): in neither does the
broker hand the job over again in time, so the recovery seen here is the reaper's.
"""

from __future__ import annotations

import time

import pytest

from annotation.models import Job, OrganAttention, Prediction, Round, Task
from annotation.services import rounds
from annotation.services.imports import import_cases
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

N_CASES = 8
STALE_SECONDS = 8


@pytest.fixture
def worker_env() -> dict[str, str]:
    """Short timeouts: a job whose worker was not heard of for 8 s is taken back."""
    return {"ATLAS_JOB_HEARTBEAT_SECONDS": "0.5", "ATLAS_JOB_STALE_SECONDS": str(STALE_SECONDS)}


def wait_for(predicate, *, timeout: float, what: str, log=None, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    tail = log.read_text()[-3000:] if log is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


def kill_mid_inference(worker, infer) -> Job:
    """SIGKILL the worker while it runs an inference job, after it finished at least one; returns that job.

    The worker is frozen (SIGSTOP) while the test looks, so the job seen running is the one it was killed in."""
    for _ in range(50):
        wait_for(lambda: infer.filter(status=Job.Status.SUCCEEDED).exists()
                 and infer.filter(status=Job.Status.RUNNING).exists(), timeout=300,
                 what="an inference job running after one finished", log=worker.log, interval=0.02)
        worker.freeze()
        running = list(infer.filter(status=Job.Status.RUNNING))
        if running:
            worker.kill()
            return running[0]
        worker.thaw()  # it finished between the two looks: try again on the next case
    raise AssertionError("never caught the worker in the middle of a case")


def test_a_round_recovers_from_a_worker_killed_mid_inference(worker, tmp_path):
    for i in range(N_CASES):
        phantom = make_phantom(200 + i, shape=(48, 48, 40), spacing=(2.0, 2.0, 3.0), name=f"case{i:02d}")
        write_phantom_case(phantom, tmp_path / "src", organs=ORGANS if i < 2 else ())
    assert import_cases(tmp_path / "src", dataset="crash").ok

    round0 = rounds.start_round(archs=["unet"], steps=2)
    infer = Job.objects.filter(round=round0, kind=Job.Kind.INFER)
    lost = kill_mid_inference(worker, infer)
    done_before = set(infer.filter(status=Job.Status.SUCCEEDED).values_list("pk", flat=True))
    assert Round.objects.get(pk=round0.pk).status == Round.Status.INFERRING
    assert 0 < len(done_before) < N_CASES and lost.attempts == 1
    log_before = len(worker.log.read_text())

    worker.start()  # a new worker; nobody runs resume_round
    wait_for(lambda: Round.objects.get(pk=round0.pk).status in (Round.Status.ANNOTATING, Round.Status.FAILED),
             timeout=300, what="the round to reach annotating", log=worker.log, interval=0.5)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error

    # every case inferred once: one claim per job, two for the lost one (whose first attempt never finished)
    assert infer.count() == N_CASES
    assert set(infer.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}
    attempts = dict(infer.values_list("pk", "attempts"))
    assert attempts == {pk: 2 if pk == lost.pk else 1 for pk in attempts}
    assert infer.get(pk=lost.pk).message == (f"queued again: the worker of attempt 1 was lost (no heartbeat for "
                                             f"{STALE_SECONDS} s)")
    assert f"queued again: {lost.key}" in worker.log.read_text()[log_before:]  # the new worker's reaper took it
    assert Prediction.objects.filter(round=round0).count() == N_CASES
    assert OrganAttention.objects.filter(round=round0).count() == N_CASES * len(ORGANS)
    assert Task.objects.filter(round=round0).count() == N_CASES
    assert set(Job.objects.filter(round=round0, kind__in=[Job.Kind.TRAIN, Job.Kind.RANK]).values_list(
        "attempts", flat=True)) == {1}
    assert worker.alive()
