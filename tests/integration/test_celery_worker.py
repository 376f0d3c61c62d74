"""A real Celery worker process runs a real task against the configured broker and database.

CI runs the suite twice: with the embedded defaults (kombu filesystem broker, SQLite) and with
Redis + PostgreSQL, so this test exercises both brokers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from annotation.models import Case
from annotation.tasks import import_cases_task
from tests.conftest import affine_for, make_ct, make_labels, save_nifti

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_imports_a_case(worker, tmp_path, settings):
    queue, process, log = worker.queue, worker.process, worker.log
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
