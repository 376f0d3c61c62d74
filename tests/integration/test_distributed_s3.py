"""The distributed stack, proven (issue 14, item 7): a whole round on PostgreSQL + Redis with media in a real
S3-compatible server (moto's standalone server, started here) and two Celery workers that share no filesystem: one
on the `default` queue, one on `gpu`, each with its own var/ (scratch, temp files) and its own, unused, media folder.

The round reaches `annotating`; every file a row names is in the bucket, and the bucket holds nothing else; no
local media folder got a file. Runs in CI's PostgreSQL + Redis pass; skips elsewhere (a filesystem broker or an
SQLite file would be a shared filesystem).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation.models import Job, ModelVersion, OrganAttention, Prediction, Round, Task
from annotation.services import rounds
from annotation.services.imports import import_cases
from annotation.services.media import named_files, stored_names
from atlas.celery import app
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case
from tests.conftest import free_port
from tests.integration.conftest import Worker, database_url
from tests.integration.test_round_worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

N_CASES = 4
BUCKET = "atlas-media"


@pytest.fixture
def s3_server(tmp_path):
    """moto's standalone S3 server in its own process, with an empty bucket. Yields its endpoint URL."""
    pytest.importorskip("moto.server", reason="moto[server] is in requirements-dev.txt")
    import boto3

    port = free_port()
    log = open(tmp_path / "moto.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield endpoint, client
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _bucket_keys(client) -> set[str]:
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys |= {item["Key"] for item in page.get("Contents", [])}
    return keys


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_round_on_postgresql_redis_s3_and_two_workers_sharing_no_filesystem(s3_server, settings, tmp_path):
    if connection.vendor != "postgresql" or not app.conf.broker_url.startswith(("redis://", "rediss://")):
        pytest.skip("needs PostgreSQL and a Redis broker (CI's second pass: DATABASE_URL=postgres://..., "
                    "CELERY_BROKER_URL=redis://...): an SQLite file or a filesystem broker is a shared filesystem")
    endpoint, client = s3_server
    s3_env = {"ATLAS_S3_BUCKET": BUCKET, "ATLAS_S3_ENDPOINT_URL": endpoint, "ATLAS_S3_REGION": "us-east-1",
              "ATLAS_S3_ADDRESSING_STYLE": "path", "AWS_ACCESS_KEY_ID": "testing",
              "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    test_media = tmp_path / "test-media"
    settings.MEDIA_ROOT = test_media
    settings.STORAGES = {**django_settings.STORAGES, "default": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": endpoint, "region_name": "us-east-1",
                    "file_overwrite": False, "default_acl": None, "addressing_style": "path",
                    "access_key": "testing", "secret_key": "testing"}}}
    tag = uuid.uuid4().hex[:8]  # queues of this test only: the Redis server may be shared
    default_queue, gpu_queue = f"test-{tag}-default", f"test-{tag}-gpu"
    settings.CELERY_TASK_DEFAULT_QUEUE = default_queue
    settings.ATLAS_GPU_WORKERS, settings.ATLAS_GPU_QUEUE = True, gpu_queue

    workers = []
    try:
        for name, queue in (("cpu", default_queue), ("gpu", gpu_queue)):
            home = tmp_path / name  # this worker's machine: nothing here is shared with the other
            env = {**os.environ, **s3_env,
                   "DATABASE_URL": database_url(), "CELERY_BROKER_URL": app.conf.broker_url,
                   "CELERY_RESULT_BACKEND": app.conf.result_backend,
                   "ATLAS_VAR_DIR": str(home / "var"), "ATLAS_MEDIA_ROOT": str(home / "media"),
                   "ATLAS_SCRATCH_DIR": str(home / "var" / "tmp"), "TMPDIR": str(home / "tmp"),
                   "ATLAS_DEFAULT_QUEUE": default_queue, "ATLAS_GPU_QUEUE": gpu_queue, "ATLAS_GPU_WORKERS": "1"}
            (home / "tmp").mkdir(parents=True)
            workers.append(Worker(queue=queue, env=env, log=tmp_path / f"{name}.log").start())

        for i in range(N_CASES):
            phantom = make_phantom(700 + i, shape=(48, 48, 40), spacing=(2.0, 2.0, 3.0), name=f"s3case{i}")
            write_phantom_case(phantom, tmp_path / "src", organs=ORGANS if i < 2 else ())
        assert import_cases(tmp_path / "src", dataset="s3").ok

        round0 = rounds.start_round(archs=["unet"], steps=2)
        wait_for(lambda: Round.objects.get(pk=round0.pk).status in (Round.Status.ANNOTATING, Round.Status.FAILED),
                 timeout=600, what="the round to finish", log=workers[1].log, interval=0.5)
        round0.refresh_from_db()
        logs = "\n".join(w.log.read_text()[-3000:] for w in workers)
        assert round0.status == Round.Status.ANNOTATING, (round0.error, logs)

        # Each queue's work ran on its own worker: training and inference on gpu, the rest (ranking, metrics) on
        # default, which may still be finishing the metrics job queued once the round was ranked.
        jobs = Job.objects.filter(round=round0)
        wait_for(lambda: set(jobs.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}, timeout=300,
                 what="every job of the round to succeed", log=workers[0].log, interval=0.5)
        for worker in workers:  # a job row is marked succeeded just before its Celery task returns and logs
            wait_for(lambda w=worker: "Task annotation.run_job" in w.log.read_text()
                     and "succeeded in" in w.log.read_text(), timeout=60, what="a task done", log=worker.log)
        assert Prediction.objects.filter(round=round0).count() == N_CASES
        assert OrganAttention.objects.filter(round=round0).count() == N_CASES * len(ORGANS)
        assert Task.objects.filter(round=round0).count() == N_CASES
        assert ModelVersion.objects.filter(rounds=round0).exclude(checkpoint="").exists()

        # Every file a row names is in the bucket, and the bucket holds nothing else (no orphans).
        named = {name for _, _, _, name in named_files()}
        keys = _bucket_keys(client)
        assert named and named <= keys, sorted(named - keys)[:10]
        assert keys == named, sorted(keys - named)[:10]
        assert set(stored_names()) == keys  # what reconcile_media sees is the bucket
        # Nothing was written to a local media folder: not the test's, not either worker's.
        for folder in (test_media, tmp_path / "cpu" / "media", tmp_path / "gpu" / "media"):
            assert _files_under(folder) == [], folder
    finally:
        for worker in workers:
            worker.stop()
