"""Celery tasks: take plain arguments or ids, call one service, safe to run twice."""

from celery import shared_task

from annotation.services.imports import import_cases


@shared_task(name="annotation.import_cases", acks_late=True)
def import_cases_task(src: str, dataset: str, label_set: str = "abdomenatlas", labels: str | None = None,
                      label_map: str | None = None) -> dict:
    """Import a file or folder on a worker. Re-running it is a no-op for cases already imported."""
    report = import_cases(src, dataset=dataset, label_set=label_set, labels=labels, label_map=label_map)
    return {"imported": report.imported, "skipped": report.skipped, "errors": report.errors}
