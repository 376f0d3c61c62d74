"""Celery tasks: take plain arguments or ids, call one service, safe to run twice.

Jobs reach ``run_job_task`` by its name (services.dispatch sends RUN_JOB), so no service imports this module.
"""

from celery import shared_task

from annotation.services import jobs
from annotation.services.dispatch import RUN_JOB
from annotation.services.imports import import_cases


@shared_task(name="annotation.import_cases", acks_late=True)
def import_cases_task(src: str, dataset: str, label_set: str = "abdomenatlas", labels: str | None = None,
                      label_map: str | None = None) -> dict:
    """Import a file or folder on a worker. Re-running it is a no-op for cases already imported."""
    report = import_cases(src, dataset=dataset, label_set=label_set, labels=labels, label_map=label_map)
    return {"imported": report.imported, "skipped": report.skipped, "errors": report.errors}


@shared_task(name=RUN_JOB, acks_late=True, reject_on_worker_lost=True)
def run_job_task(job_id: int) -> str:
    """Run one job (train / infer / rank / metrics); a finished job is not run again."""
    return jobs.run_job(job_id)
