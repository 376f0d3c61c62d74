"""A real Celery worker process runs a real task against the configured broker and database.

CI runs the suite twice: with the embedded defaults (kombu filesystem broker, SQLite) and with
Redis + PostgreSQL, so this test exercises both brokers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from annotation.models import Case
from annotation.tasks import import_cases_task
from atlas.celery import app
from tests.conftest import REPO, affine_for, make_ct, make_labels, save_nifti

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def database_url() -> str:
    """The URL of the test database this process uses, for the worker to share it."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@pytest.fixture
def worker(settings, tmp_path):
    """Start `celery -A atlas worker` on a queue of its own; yield the queue name; stop it."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ATLAS_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": app.conf.broker_url,
        "CELERY_RESULT_BACKEND": app.conf.result_backend,
        "ATLAS_BROKER_DIR": str(django_settings.BROKER_DIR),
    }
    log = tmp_path / "worker.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "atlas", "worker", "-Q", queue, "--concurrency", "1",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{queue}@%h"],
            cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        yield queue, process, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_worker_imports_a_case(worker, tmp_path, settings):
    queue, process, log = worker
    affine = affine_for()
    src = save_nifti(tmp_path / "in" / "worker_case.nii.gz", make_ct(seed=7), affine)
    lab = save_nifti(tmp_path / "in" / "worker_case_seg.nii.gz", make_labels(values=(5,)), affine)
    result = import_cases_task.apply_async(args=[str(src), "celery"], kwargs={"labels": str(lab)}, queue=queue)
    try:
        outcome = result.get(timeout=120)
    except Exception:
        raise AssertionError(f"worker did not run the task; its log:\n{log.read_text()[-4000:]}") from None
    assert outcome == {"imported": ["worker_case"], "skipped": [], "errors": []}
    case = Case.objects.get(name="worker_case")  # written by the worker process, read here
    assert case.dataset.name == "celery"
    assert (Path(settings.MEDIA_ROOT) / case.ct_file.name).is_file()
    assert {o.name for o in case.source_labels.get().organs.all()} == {"liver"}
    # delivered twice, the task finds the work done
    again = import_cases_task.apply_async(args=[str(src), "celery"], queue=queue).get(timeout=120)
    assert again == {"imported": [], "skipped": ["worker_case"], "errors": []}
    assert Case.objects.count() == 1
    assert process.poll() is None, "worker died"
    assert "succeeded" in _wait_for(log, "succeeded")


def _wait_for(log: Path, text: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text()
        if text in content:
            return content
        time.sleep(0.2)
    return log.read_text()
