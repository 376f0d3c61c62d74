"""Jobs of dead workers are taken back: the reaper's compare-and-set, the attempt cap, heartbeats, late finishers.

The handlers here are small functions put in the job registry in place of the real ones, so that a test can act
(reap, claim again) at a chosen point of a job's run; tests/integration/test_round_worker.py kills a real worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db.models.functions import Now

from annotation.models import Job, LabelSet, Round
from annotation.services import jobs, reaper
from tests.annotation import loop
from tests.conftest import REPO, at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued(settings) -> list[Job]:
    settings.ATLAS_JOB_ENQUEUE = "tests.annotation.loop.collect"
    settings.ATLAS_JOB_STALE_SECONDS = 60.0
    settings.ATLAS_JOB_MAX_ATTEMPTS = 3
    loop.QUEUED.clear()
    yield loop.QUEUED
    loop.QUEUED.clear()


@pytest.fixture
def round0() -> Round:
    return Round.objects.create(number=0, label_set=LabelSet.objects.get(name="abdomenatlas"),
                                status=Round.Status.RANKING)


def running_job(round0: Round, *, kind: str = Job.Kind.RANK, attempts: int = 1, silent_for: float = 3600) -> Job:
    """A job claimed `attempts` times whose worker was last heard of `silent_for` seconds ago."""
    job = Job.objects.create(key=f"round0:{kind}", kind=kind, round=round0, status=Job.Status.RUNNING,
                             attempts=attempts)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=Now() - timedelta(seconds=silent_for), started=Now())
    return Job.objects.get(pk=job.pk)


def beat(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(heartbeat_at=Now())


def test_two_reapers_take_a_stale_job_back_once(round0, queued):
    job = running_job(round0)
    seen_by_a, seen_by_b = reaper.stale_jobs(), reaper.stale_jobs()
    assert [j.pk for j in seen_by_a] == [j.pk for j in seen_by_b] == [job.pk]
    assert reaper.reclaim(seen_by_b[0]) == Job.Status.QUEUED
    assert reaper.reclaim(seen_by_a[0]) is None  # B took it between A's look and A's update
    assert [j.pk for j in queued] == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.progress) == (Job.Status.QUEUED, 1, 0.0)
    assert "worker of attempt 1 was lost" in job.message
    assert reaper.reap().requeued == []  # nothing stale left


def test_reapers_racing_in_threads_queue_the_job_once(round0, queued):
    job = running_job(round0)
    outcomes = at_once(reaper.reap, 4)
    assert sorted(len(report.requeued) for report in outcomes) == [0, 0, 0, 1]
    assert [j.pk for j in queued] == [job.pk]


def test_a_job_that_beats_again_in_time_is_left_alone(round0, queued):
    job = running_job(round0)
    [seen] = reaper.stale_jobs()
    beat(job)  # the worker was slow, not dead
    assert reaper.reclaim(seen) is None
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING and queued == []


def test_a_fresh_heartbeat_is_not_stale(round0, queued):
    running_job(round0, silent_for=30)  # ATLAS_JOB_STALE_SECONDS is 60
    assert reaper.stale_jobs() == [] and reaper.reap().requeued == []


def test_a_job_that_kills_its_worker_every_time_fails_its_round(round0, queued):
    job = running_job(round0, attempts=3)
    report = reaper.reap()
    assert (report.requeued, report.failed) == ([], [job.key])
    job.refresh_from_db()
    round0.refresh_from_db()
    assert job.status == Job.Status.FAILED and "lost on each of 3 attempts" in job.error
    assert round0.status == Round.Status.FAILED
    assert round0.error.startswith("round0:rank: its worker was lost on each of 3 attempts")
    assert queued == []


def test_a_job_outside_the_round_steps_fails_alone(round0, queued):
    job = running_job(round0, kind=Job.Kind.QC, attempts=3)
    assert reaper.reap().failed == [job.key]
    assert Round.objects.get(pk=round0.pk).status == Round.Status.RANKING


def _handler(monkeypatch, run) -> None:
    """Put `run(job, progress)` in the registry as the handler of rank jobs (a round step)."""
    monkeypatch.setitem(jobs.KINDS, Job.Kind.RANK, jobs.JobKind(run, round_step=True))


def _reclaimed_and_claimed_again(job: Job) -> None:
    """What the reaper and a second worker do while `job`'s first worker is too slow to beat."""
    Job.objects.filter(pk=job.pk).update(heartbeat_at=Now() - timedelta(hours=1))
    assert reaper.reap().requeued == [job.key]
    assert jobs._claim(job.pk).attempts == 2


def test_a_late_worker_cannot_finish_a_job_taken_back(round0, queued, monkeypatch):
    job = Job.objects.create(key="round0:rank", kind=Job.Kind.RANK, round=round0)
    _handler(monkeypatch, lambda job, progress: _reclaimed_and_claimed_again(job))
    assert jobs.run_job(job.pk) == Job.Status.RUNNING  # the first attempt's success is dropped
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished) == (Job.Status.RUNNING, 2, None)
    assert Round.objects.get(pk=round0.pk).status == Round.Status.RANKING  # not advanced by the late worker
    assert jobs._finish(job) is True  # the second attempt's finish lands
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED


def test_a_late_failure_does_not_fail_the_round(round0, queued, monkeypatch):
    job = Job.objects.create(key="round0:rank", kind=Job.Kind.RANK, round=round0)

    def late_and_broken(job, progress):
        Job.objects.filter(pk=job.pk).update(heartbeat_at=Now() - timedelta(hours=1))
        reaper.reap()
        raise RuntimeError("out of memory")

    _handler(monkeypatch, late_and_broken)
    assert jobs.run_job(job.pk) == Job.Status.QUEUED
    assert Job.objects.get(pk=job.pk).error == ""
    assert Round.objects.get(pk=round0.pk).status == Round.Status.RANKING


def test_progress_stops_a_handler_whose_job_was_taken_back(round0, queued, monkeypatch):
    job = Job.objects.create(key="round0:rank", kind=Job.Kind.RANK, round=round0)
    steps = []

    def long_job(job, progress):
        progress(0.5, "halfway")
        steps.append("halfway")
        _reclaimed_and_claimed_again(job)
        progress(1.0, "done")  # raises JobReclaimed
        steps.append("done")

    _handler(monkeypatch, long_job)
    assert jobs.run_job(job.pk) == Job.Status.RUNNING
    assert steps == ["halfway"]
    job.refresh_from_db()
    assert (job.attempts, job.progress, job.error) == (2, 0.0, "")  # nothing written by the first attempt after
    assert job.message.startswith("queued again: the worker of attempt 1 was lost")


def test_a_running_job_beats_while_its_handler_works(round0, queued, monkeypatch, settings):
    settings.ATLAS_JOB_HEARTBEAT_SECONDS = 0.05
    job = Job.objects.create(key="round0:rank", kind=Job.Kind.RANK, round=round0)
    beats = []

    def busy(job, progress):  # never reports progress
        first = Job.objects.get(pk=job.pk).heartbeat_at
        for _ in range(400):
            now = Job.objects.get(pk=job.pk).heartbeat_at
            if now != first and now not in beats:
                beats.append(now)
            if len(beats) >= 3:
                return
            time.sleep(0.05)
        raise AssertionError("no heartbeat while the handler ran")

    _handler(monkeypatch, lambda job, progress: busy(job, progress))
    assert jobs.run_job(job.pk) == Job.Status.SUCCEEDED
    assert beats == sorted(beats) and len(beats) == 3


@pytest.mark.parametrize(("env", "message"), [
    ({"ATLAS_JOB_HEARTBEAT_SECONDS": "10", "ATLAS_JOB_STALE_SECONDS": "20"},
     "ATLAS_JOB_STALE_SECONDS (20) must be at least three heartbeats (ATLAS_JOB_HEARTBEAT_SECONDS = 10, above 0)"),
    ({"ATLAS_JOB_MAX_ATTEMPTS": "0"}, "ATLAS_JOB_MAX_ATTEMPTS must be at least 1, got 0"),
    ({"ATLAS_CPU_RUNTIME": "onnx"}, "ATLAS_CPU_RUNTIME must be torch or openvino, got 'onnx'"),
])
def test_settings_refuse_timeouts_that_would_reap_live_jobs(env, message, tmp_path):
    result = subprocess.run([sys.executable, "-c", "import atlas.settings"], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "ATLAS_VAR_DIR": str(tmp_path), **env}, timeout=60)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
