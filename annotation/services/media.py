"""Reconciling media storage with the database: stored files no row names, and rows whose file is gone.

A crash between writing a file and committing its row (the revision, import and prediction services write the file
inside the transaction, so that no row ever lacks its file) leaves a file that no row names. `reconcile_media`
finds them, and removes them when asked, but only those older than a grace period (a younger one may belong to a
transaction still in flight in another process) and only in the layouts that are written with their rows
(`removable`). It never deletes a file that a row names. Rows whose file is gone
are reported, never deleted (a revision or a case is history; an admin decides).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import models
from django.utils import timezone

from annotation.storage import delete_files

log = logging.getLogger(__name__)

GRACE = timedelta(hours=1)
# Layouts whose files are written inside the transaction that inserts the row naming them: an orphan there is a
# crash's leftover, and may go. Anything else without a row (an external tool's label under CASE/external/, whose
# name is derived, not stored; a checkpoint under models/; a file someone put there) is listed, never removed.
_ROW_OWNED_PARTS = {"revisions", "source_labels", "average", "backbones"}
_ROW_OWNED_FILES = {"ct.nii.gz"}
_JSON_NAME_FIELDS = ("files",)  # JSON fields holding storage names (Prediction.files: soft preds, attention maps)


def removable(name: str) -> bool:
    """Whether an orphan file may be deleted: a temporary file of a crashed write, or one in a row-owned layout."""
    parts = name.split("/")
    if parts[-1].startswith(".") and ".tmp" in parts[-1]:  # atomic_path's temporary file
        return True
    return parts[-1] in _ROW_OWNED_FILES or bool(_ROW_OWNED_PARTS & set(parts[:-1]))


@dataclass
class MediaReport:
    """orphans: stored names no row names (removable ones only in `removable`); young: orphans within the grace
    period; removed: those deleted; missing: (model, pk, field, name) whose file is gone."""

    orphans: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    young: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    missing: list[tuple[str, int, str, str]] = field(default_factory=list)


def stored_names(prefix: str = "") -> Iterator[str]:
    """Every file name in media storage (local folder or bucket), recursively."""
    try:
        folders, files = default_storage.listdir(prefix)
    except FileNotFoundError:
        return
    for name in files:  # a temporary file left by a crashed write counts too: no row names it
        yield f"{prefix}{name}"
    for folder in folders:
        yield from stored_names(f"{prefix}{folder}/")


def named_files() -> Iterator[tuple[str, int, str, str]]:
    """(model label, pk, field, storage name) for every file a row of the annotation app names."""
    for model in apps.get_app_config("annotation").get_models():
        file_fields = [f.name for f in model._meta.get_fields() if isinstance(f, models.FileField)]
        json_fields = [f.name for f in model._meta.get_fields()
                       if isinstance(f, models.JSONField) and f.name in _JSON_NAME_FIELDS]
        if not file_fields and not json_fields:
            continue
        for row in model.objects.values("pk", *file_fields, *json_fields).iterator(chunk_size=2000):
            for name in file_fields:
                if row[name]:
                    yield model._meta.label, row["pk"], name, row[name]
            for name in json_fields:
                for value in _strings(row[name]):
                    yield model._meta.label, row["pk"], name, value


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _modified(name: str) -> datetime | None:
    try:
        return default_storage.get_modified_time(name)
    except (NotImplementedError, OSError, FileNotFoundError):
        return None


def reconcile_media(*, delete: bool = False, grace: timedelta = GRACE, now: datetime | None = None) -> MediaReport:
    """Compare storage with the rows. delete: remove removable orphan files older than grace (never a named one)."""
    now = now or timezone.now()
    report = MediaReport()
    named: set[str] = set()
    rows = list(named_files())
    for _, _, _, name in rows:
        named.add(name)
    stored = set(stored_names())
    for label, pk, field_name, name in rows:
        if name not in stored:
            report.missing.append((label, pk, field_name, name))
    for name in sorted(stored - named):
        modified = _modified(name)
        if not removable(name):
            report.kept.append(name)
        elif modified is not None and now - modified < grace:
            report.young.append(name)
        else:
            report.orphans.append(name)
    if delete and report.orphans:
        # Named again right before deleting: a row committed since the listing keeps its file.
        still = set(report.orphans) - {name for _, _, _, name in named_files()}
        gone = [name for name in report.orphans if name in still]
        delete_files(gone)
        report.removed = gone
        log.warning("reconcile_media removed %d orphan files", len(gone))
    return report
