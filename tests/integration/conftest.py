"""A real Celery worker process on a queue of its own, sharing the test database and media folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from atlas.celery import app
from tests.conftest import REPO


def database_url() -> str:
    """The URL of the test database this process uses, for the worker to share it."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


@dataclass
class Worker:
    """Starts and stops `celery -A atlas worker` processes consuming `queue` (also the default queue)."""

    queue: str
    env: dict
    log: Path
    process: subprocess.Popen | None = None

    def start(self) -> Worker:
        handle = open(self.log, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "atlas", "worker", "-Q", self.queue, "--concurrency", "1",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"{self.queue}-{uuid.uuid4().hex[:4]}@%h"],
            cwd=REPO, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP the worker and its pool children: nothing they do changes while the test looks."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        os.killpg(self.process.pid, signal.SIGCONT)  # a frozen worker must wake to stop
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@pytest.fixture
def worker_env() -> dict[str, str]:
    """More environment for the worker (a test module overrides this fixture, e.g. for short job timeouts)."""
    return {}


@pytest.fixture
def worker(settings, tmp_path, worker_env) -> Iterator[Worker]:
    """A started worker on a queue of its own, which is also the default queue of this test and the worker."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "ATLAS_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CELERY_BROKER_URL": app.conf.broker_url,
        "CELERY_RESULT_BACKEND": app.conf.result_backend,
        "ATLAS_BROKER_DIR": str(django_settings.BROKER_DIR),
        "ATLAS_DEFAULT_QUEUE": queue,
        "ATLAS_GPU_WORKERS": "0",
        **worker_env,
    }
    handle = Worker(queue=queue, env=env, log=tmp_path / "worker.log").start()
    try:
        yield handle
    finally:
        handle.stop()


