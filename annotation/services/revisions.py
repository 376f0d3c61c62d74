"""Revisions: uploads of corrected label maps and confirmations (a lead's verdict: services.reviews.decide).

A revision is immutable. Its number counts from 1 per case; the upload names the revision it started
from (None: the pseudo-label), and if another landed since, RevisionConflict and nothing is stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from annotation.errors import Conflict, Invalid, NotFound, engine_refusals
from annotation.models import Case, ErrorTag, Organ, Prediction, Revision, RevisionTag, Round, Task
from annotation.selectors.labels import label_to_edit, latest_revision, revisions
from annotation.services import audit, quality_checks
from annotation.services.imports.labels import integer_labels, present_values
from annotation.services.queue import check_lease
from annotation.storage import delete_files, read_voxels, scratch_dir, store_file
from ml_engine.io import NIFTI_SUFFIXES, load_nifti, same_geometry, sha256_file, write_nifti

MAX_SECONDS_SPENT = 7 * 24 * 3600.0  # a week on one case: more is a client's mistake, not a measurement

UPLOAD_SUFFIXES = NIFTI_SUFFIXES  # what an upload may be (annotation.api.intake checks the name)


class UploadError(Invalid):
    """An upload that cannot be a revision (400); str() names the field and the problem."""


class RevisionConflict(Conflict):
    """Another revision landed after the one the upload started from (409, with latest_revision: its id)."""

    def __init__(self, latest: Revision):
        self.latest = latest
        super().__init__(f"revision {latest.number} (id {latest.pk}) landed after the one this edit started from",
                         latest_revision=latest.pk)


def check_label_upload(path: Path, case: Case) -> np.ndarray:
    """Read an uploaded label map and check it against its case: (x, y, z) uint8 in the label set's values."""
    with engine_refusals(field="file", refusal=UploadError, upload=path):
        # The header decides before any voxel is read: the case's shape, an integer type, no scaling to floats.
        # The voxels are then read once, inflating no further than that shape allows; trailing data is refused.
        # So a revision costs at most the case's voxel count times the header type's size, whatever the file says.
        volume = load_nifti(path, expect_shape=case.shape, allow_float=False,
                            max_bytes=min(settings.ATLAS_MAX_VOLUME_BYTES, _voxels(case) * 8))
        if not same_geometry(volume.affine, np.asarray(case.affine)):
            raise UploadError("affine differs from the CT's", field="file")
        data = integer_labels(volume, path)
    allowed = set(Organ.objects.filter(label_set=case.dataset.label_set_id).values_list("value", flat=True))
    foreign = [int(v) for v in present_values(data) if int(v) not in allowed]
    if foreign:
        raise UploadError(f"label values {', '.join(map(str, foreign[:8]))} are not in the label set "
                          f"{case.dataset.label_set.name}", field="file")
    return data.astype(np.uint8)


def _voxels(case: Case) -> int:
    return int(np.prod([int(n) for n in case.shape], dtype=object))


def organ_changes(new: np.ndarray, reference: np.ndarray | None, organs: dict[int, str]
                  ) -> tuple[dict[str, int], dict[str, float]]:
    """Per organ: voxels that changed and Dice, new (x, y, z) uint8 against reference (same shape) or nothing.

    One pass: a confusion matrix from bincount. Both empty: Dice 1 (FLARE's convention).
    """
    if reference is None:
        reference = np.zeros_like(new)
    k = int(max(new.max(initial=0), reference.max(initial=0), max(organs, default=0))) + 1
    joint = np.bincount((reference.astype(np.int64) * k + new).ravel(), minlength=k * k).reshape(k, k)
    changed, dice = {}, {}
    for value, name in organs.items():
        ref_n, new_n, both = int(joint[value, :].sum()), int(joint[:, value].sum()), int(joint[value, value])
        changed[name] = ref_n + new_n - 2 * both
        dice[name] = 1.0 if ref_n + new_n == 0 else round(2.0 * both / (ref_n + new_n), 6)
    return changed, dice


def _reference(task: Task) -> np.ndarray | None:
    """The pseudo-label of the task's round, for the per-organ statistics."""
    prediction = Prediction.objects.filter(case=task.case_id, round=task.round_id).first()
    if prediction is None or not prediction.pseudo_label:
        return None
    return read_voxels(prediction.pseudo_label.name)


def _store(*, task: Task, user, data: np.ndarray, base_revision: int | None, kind: str, seconds_spent: float,
           tags: dict[str, list[str]], now: datetime | None) -> Revision:
    case = task.case
    organs = dict(Organ.objects.filter(label_set=case.dataset.label_set_id).values_list("value", "name"))
    by_name = {name: value for value, name in organs.items()}
    tag_rows = _tag_rows(tags, by_name, label_set_id=case.dataset.label_set_id)
    changed, dice = organ_changes(data, _reference(task), organs)
    with _staging(case, data) as (staged, written), transaction.atomic():
        Case.objects.select_for_update().filter(pk=case.pk).first()  # one writer per case at a time
        locked = Task.objects.select_for_update().get(pk=task.pk)
        latest = latest_revision(case, locked)
        # The base first: when two edits of one base race, the loser's lease was ended by the winner's
        # revision, and what it must hear is 409 with the revision to reload, not "not leased to you".
        # Only a user who held the lease when the request began gets here (checked before the upload).
        if (latest.pk if latest else None) != base_revision:
            raise RevisionConflict(latest)
        check_lease(locked, user, now=now)
        revision = _land(task=locked, parent=latest, author=user, kind=kind, staged=staged,
                         changed=changed, dice=dice, seconds_spent=seconds_spent, written=written)
        RevisionTag.objects.bulk_create([RevisionTag(revision=revision, organ_id=organ_id, tag=tag)
                                         for organ_id, tag in tag_rows])
        locked.status = Task.Status.CONFIRMED if kind == Revision.Kind.CONFIRM else Task.Status.REVISED
        locked.lease_holder, locked.lease_expires = None, None
        locked.save(update_fields=["status", "lease_holder", "lease_expires", "updated"])
        record_stopping(locked, unchanged=not any(changed.values()))
        if audit.is_audit_task(locked.pk):
            audit.record_audit_stopping(locked.round_id)
    return revision


@contextmanager
def _staging(case: Case, data: np.ndarray) -> Iterator[tuple[Path, list[str]]]:
    """The label map (x, y, z) written to a scratch file, and a list for the stored names the block writes: they are
    removed if the block fails, so a failed revision leaves no file behind."""
    written: list[str] = []
    with scratch_dir("revision") as tmp:
        staged = write_nifti(Path(tmp) / "label.nii.gz", data, np.asarray(case.affine), dtype=np.uint8)
        try:
            yield staged, written
        except BaseException:
            delete_files(written)
            raise


def _land(*, task: Task, parent: Revision | None, author, kind: str, staged: Path, changed: dict, dice: dict,
          seconds_spent: float, written: list[str]) -> Revision:
    """Store a staged label file as the case's next revision (inside the caller's transaction, the case locked) and
    queue its quality checks. The stored name goes into `written`, for the caller to remove if the transaction
    fails."""
    case = task.case
    number = (Revision.objects.filter(case=case).aggregate(n=Max("number"))["n"] or 0) + 1
    name = f"{Path(case.ct_file.name).parent.as_posix()}/revisions/{number}.nii.gz"
    written.append(store_file(name, staged))
    revision = Revision.objects.create(
        task=task, case=case, number=number, parent=parent, author=author, kind=kind, label_file=name,
        checksum=sha256_file(staged), changed_voxels=changed, dice=dice,
        seconds_spent=check_seconds(seconds_spent))
    quality_checks.request_revision_check(revision)
    return revision


def store_lead_revision(*, parent: Revision, author, data: np.ndarray, seconds_spent: float = 0.0) -> Revision:
    """A lead's own label of a case (edit-and-accept, adjudication): the next revision, child of `parent` and on its
    task, whose status and lease stay as they are. Call inside a transaction that has checked the parent is still
    the newest of its read; a failure leaves no file behind."""
    task = Task.objects.select_related("case__dataset").get(pk=parent.task_id)
    case = task.case
    organs = dict(Organ.objects.filter(label_set=case.dataset.label_set_id).values_list("value", "name"))
    changed, dice = organ_changes(data, _reference(task), organs)
    with _staging(case, data) as (staged, written), transaction.atomic():
        Case.objects.select_for_update().filter(pk=case.pk).first()
        return _land(task=task, parent=parent, author=author, kind=Revision.Kind.REVISION, staged=staged,
                     changed=changed, dice=dice, seconds_spent=seconds_spent, written=written)


def record_stopping(task: Task, *, unchanged: bool | None) -> None:
    """The paper's stopping rule: the loop has converged when the round's top-priority case needs no revision.

    unchanged None: the top case's outcome was withdrawn (its revision rejected), so nothing is known yet.
    """
    top = Task.objects.filter(round=task.round_id).order_by("-priority", "id").values_list("pk", flat=True).first()
    if top == task.pk:
        Round.objects.filter(pk=task.round_id).update(converged=unchanged)
        audit.record_top_case_stopping(task.round_id, unchanged=unchanged)


def _tag_rows(tags: dict[str, list[str]], organ_values: dict[str, int], *, label_set_id: int
              ) -> list[tuple[int, ErrorTag]]:
    known = {t.code: t for t in ErrorTag.objects.all()}
    rows = []
    if not isinstance(tags, dict):
        raise UploadError("expected an object {organ: [tag codes]}", field="tags")
    for organ in tags:  # checked before any query names them (PostgreSQL refuses text holding NUL: a 500)
        if organ not in organ_values:
            raise UploadError(f"{organ!r} is not an organ of this case's label set", field="tags")
    organ_ids = dict(Organ.objects.filter(label_set=label_set_id, name__in=list(tags)).values_list("name", "id")
                     ) if tags else {}
    for organ, codes in tags.items():
        if not isinstance(codes, list) or not all(isinstance(code, str) for code in codes):
            raise UploadError(f"{organ}: expected a list of tag codes (strings)", field="tags")
        for code in codes:
            if code not in known:
                raise UploadError(f"{code!r} is not an error tag ({', '.join(known)})", field="tags")
            rows.append((organ_ids[organ], known[code]))
    return rows


def submit_revision(*, task_id: int, user, upload: Path, base_revision: int | None,
                    tags: dict[str, list[str]] | None = None, seconds_spent: float = 0.0,
                    now: datetime | None = None) -> Revision:
    """Store an uploaded label map (a local NIfTI file) as the case's next revision.

    Raises UploadError (bad file or tags: nothing stored), QueueError (no live lease), RevisionConflict.
    """
    task = _task(task_id)
    _check_turn(task, user, base_revision, now=now)
    _check_base(task, base_revision)
    check_seconds(seconds_spent)
    label_set_id = task.case.dataset.label_set_id
    _tag_rows(tags or {}, dict(Organ.objects.filter(label_set=label_set_id).values_list("name", "value")),
              label_set_id=label_set_id)  # the cheap checks first, then the file
    data = check_label_upload(upload, task.case)
    return _store(task=task, user=user, data=data, base_revision=base_revision, kind=Revision.Kind.REVISION,
                  seconds_spent=seconds_spent, tags=tags or {}, now=now)


def confirm(*, task_id: int, user, base_revision: int | None, seconds_spent: float = 0.0,
            now: datetime | None = None) -> Revision:
    """Record "no change needed": a revision equal to the label the annotator was shown (selectors.labels'
    label to edit: the latest revision no lead rejected, else imported truth, else the pseudo-label)."""
    task = _task(task_id)
    _check_turn(task, user, base_revision, now=now)
    _check_base(task, base_revision)
    check_seconds(seconds_spent)
    shown = label_to_edit(task.case, task)
    if shown is None:
        raise UploadError("this case has no label to confirm; upload a revision instead", field="base_revision")
    data = np.asarray(read_voxels(shown.name), dtype=np.uint8)
    return _store(task=task, user=user, data=data, base_revision=base_revision, kind=Revision.Kind.CONFIRM,
                  seconds_spent=seconds_spent, tags={}, now=now)


def _task(task_id: int) -> Task:
    task = Task.objects.select_related("case__dataset__label_set").filter(pk=task_id).first()
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    return task


def _own_revision_ended_lease(task: Task, user) -> Revision | None:
    """The user's own revision of task that landed last and so ended their lease (a double submit, two tabs, a retry
    racing the first try), else None."""
    latest = latest_revision(task.case, task)
    if (latest is not None and latest.task_id == task.pk and latest.author_id == user.pk
            and task.lease_holder_id != user.pk):
        return latest
    return None


def check_may_send(*, task_id: int, user) -> None:
    """Before an upload's body is read (annotation.api.intake): the user holds the task's lease, or their own revision
    of it landed last (submit_revision then answers 409 with it). NotFound, QueueError (403), LeaseExpired (409)."""
    task = _task(task_id)
    if _own_revision_ended_lease(task, user) is None:
        check_lease(task, user)


def _check_turn(task: Task, user, base_revision: int | None, *, now: datetime | None) -> None:
    """The user may store a revision of task: they hold its lease (QueueError, 403; LeaseExpired, 409).

    Except that when their own revision of this task landed after the base they name (a double submit, two tabs,
    a retry racing the first try), the answer is RevisionConflict (409, with the revision to reload): the lease
    ended because of that revision, and the page's reload-and-keep-edits flow is what helps them.
    """
    own = _own_revision_ended_lease(task, user)
    if own is not None and own.pk != base_revision:
        raise RevisionConflict(own)
    check_lease(task, user, now=now)


def _check_base(task: Task, base_revision: int | None) -> Revision | None:
    """The revision an edit started from, which must be one of this case's that this task's reader may see (None: the
    pseudo-label). The other read of a double read is answered exactly as a revision that does not exist."""
    if base_revision is None:
        return None
    parent = (revisions(rejected=True, seen_from=task).filter(case=task.case_id, pk=base_revision).first()
              if 0 < base_revision < 2**63 else None)
    if parent is None:
        raise UploadError(f"{base_revision} is no revision of case {task.case.name}", field="base_revision")
    return parent


def check_seconds(value: float) -> float:
    seconds = float(value)
    if not math.isfinite(seconds) or not 0.0 <= seconds <= MAX_SECONDS_SPENT:
        raise UploadError(f"expected a number of seconds from 0 to {MAX_SECONDS_SPENT:.0f}", field="seconds_spent")
    return seconds
