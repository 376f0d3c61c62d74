"""Revisions: uploads of corrected label maps, confirmations, and the lead's review.

A revision is immutable. Its number counts from 1 per case; the upload names the revision it started
from (None: the pseudo-label), and if another landed since, RevisionConflict and nothing is stored.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from annotation.models import Case, ErrorTag, Organ, Prediction, Review, Revision, RevisionTag, Round, Task
from annotation.services import quality_checks
from annotation.services.imports.labels import integer_labels, present_values
from annotation.services.queue import check_lease
from annotation.storage import delete_files, read_voxels, store_file
from ml_engine.io import ImageError, check_gzip_whole, load_nifti, same_geometry, sha256_file, write_nifti


class UploadError(ValueError):
    """An upload that cannot be a revision; str() names the field and the problem."""


class RevisionConflict(Exception):
    """Another revision landed after the one the upload started from."""

    def __init__(self, latest: Revision):
        self.latest = latest
        super().__init__(f"revision {latest.number} (id {latest.pk}) landed after the one this edit started from")


def latest_revision(case: Case) -> Revision | None:
    return Revision.objects.filter(case=case).order_by("-number").first()


def check_label_upload(path: Path, case: Case) -> np.ndarray:
    """Read an uploaded label map and check it against its case: (x, y, z) uint8 in the label set's values."""
    try:
        if path.name.endswith(".gz"):
            check_gzip_whole(path)
        volume = load_nifti(path, max_bytes=settings.ATLAS_MAX_VOLUME_BYTES)
    except ImageError as exc:
        raise UploadError(f"file: {exc.problem.replace(str(path), 'the upload')}") from exc
    if list(volume.shape) != list(case.shape):
        raise UploadError(f"file: shape {tuple(volume.shape)} differs from the CT's {tuple(case.shape)}")
    if not same_geometry(volume.affine, np.asarray(case.affine)):
        raise UploadError("file: affine differs from the CT's")
    try:
        data = integer_labels(volume, path)
    except ImageError as exc:
        raise UploadError(f"file: {exc.problem}") from exc
    allowed = set(Organ.objects.filter(label_set=case.dataset.label_set_id).values_list("value", flat=True))
    foreign = [int(v) for v in present_values(data) if int(v) not in allowed]
    if foreign:
        raise UploadError(f"file: label values {', '.join(map(str, foreign[:8]))} are not in the label set "
                          f"{case.dataset.label_set.name}")
    return data.astype(np.uint8)


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
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="atlas-revision-") as tmp:
        staged = write_nifti(Path(tmp) / "label.nii.gz", data, np.asarray(case.affine), dtype=np.uint8)
        checksum = sha256_file(staged)
        try:
            with transaction.atomic():
                Case.objects.select_for_update().filter(pk=case.pk).first()  # one writer per case at a time
                locked = Task.objects.select_for_update().get(pk=task.pk)
                check_lease(locked, user, now=now)
                latest = latest_revision(case)
                if (latest.pk if latest else None) != base_revision:
                    raise RevisionConflict(latest)
                number = (latest.number if latest else 0) + 1
                name = f"{Path(case.ct_file.name).parent.as_posix()}/revisions/{number}.nii.gz"
                written.append(store_file(name, staged))
                revision = Revision.objects.create(
                    task=locked, case=case, number=number, parent=latest, author=user, kind=kind,
                    label_file=name, checksum=checksum, changed_voxels=changed, dice=dice,
                    seconds_spent=max(0.0, float(seconds_spent)))
                RevisionTag.objects.bulk_create([RevisionTag(revision=revision, organ_id=organ_id, tag=tag)
                                                 for organ_id, tag in tag_rows])
                locked.status = Task.Status.CONFIRMED if kind == Revision.Kind.CONFIRM else Task.Status.REVISED
                locked.lease_holder, locked.lease_expires = None, None
                locked.save(update_fields=["status", "lease_holder", "lease_expires", "updated"])
                _record_stopping(locked, unchanged=not any(changed.values()))
                quality_checks.request_revision_check(revision)
        except BaseException:
            delete_files(written)
            raise
    return revision


def _record_stopping(task: Task, *, unchanged: bool) -> None:
    """The paper's stopping rule: the loop has converged when the round's top-priority case needs no revision."""
    top = Task.objects.filter(round=task.round_id).order_by("-priority", "id").values_list("pk", flat=True).first()
    if top == task.pk:
        Round.objects.filter(pk=task.round_id).update(converged=unchanged)


def _tag_rows(tags: dict[str, list[str]], organ_values: dict[str, int], *, label_set_id: int
              ) -> list[tuple[int, ErrorTag]]:
    known = {t.code: t for t in ErrorTag.objects.all()}
    rows = []
    if not isinstance(tags, dict):
        raise UploadError("tags: expected an object {organ: [tag codes]}")
    organ_ids = dict(Organ.objects.filter(label_set=label_set_id, name__in=list(tags)).values_list("name", "id")
                     ) if tags else {}
    for organ, codes in tags.items():
        if organ not in organ_values:
            raise UploadError(f"tags: {organ!r} is not an organ of this case's label set")
        if not isinstance(codes, list):
            raise UploadError(f"tags: {organ}: expected a list of tag codes")
        for code in codes:
            if code not in known:
                raise UploadError(f"tags: {code!r} is not an error tag ({', '.join(known)})")
            rows.append((organ_ids[organ], known[code]))
    return rows


def submit_revision(*, task_id: int, user, upload: Path, base_revision: int | None,
                    tags: dict[str, list[str]] | None = None, seconds_spent: float = 0.0,
                    now: datetime | None = None) -> Revision:
    """Store an uploaded label map (a local NIfTI file) as the case's next revision.

    Raises UploadError (bad file or tags: nothing stored), QueueError (no live lease), RevisionConflict.
    """
    task = Task.objects.select_related("case__dataset__label_set").get(pk=task_id)
    check_lease(task, user, now=now)
    data = check_label_upload(upload, task.case)
    return _store(task=task, user=user, data=data, base_revision=base_revision, kind=Revision.Kind.REVISION,
                  seconds_spent=seconds_spent, tags=tags or {}, now=now)


def confirm(*, task_id: int, user, base_revision: int | None, seconds_spent: float = 0.0,
            now: datetime | None = None) -> Revision:
    """Record "no change needed": a revision equal to its parent (or to the pseudo-label)."""
    task = Task.objects.select_related("case__dataset__label_set").get(pk=task_id)
    check_lease(task, user, now=now)
    parent = Revision.objects.filter(pk=base_revision).first() if base_revision else None
    if parent is not None:
        data = np.asarray(read_voxels(parent.label_file.name), dtype=np.uint8)
    else:
        data = _reference(task)
        if data is None:
            raise UploadError("base_revision: this case has no pseudo-label to confirm; upload a revision instead")
        data = data.astype(np.uint8)
    return _store(task=task, user=user, data=data, base_revision=base_revision, kind=Revision.Kind.CONFIRM,
                  seconds_spent=seconds_spent, tags={}, now=now)


@transaction.atomic
def review(*, revision_id: int, reviewer, decision: str, comment: str = "") -> Review:
    """A lead accepts or rejects a revision; a rejection sends the task back to the queue with the comment."""
    if decision not in Review.Decision.values:
        raise ValueError(f"decision: expected one of {', '.join(Review.Decision.values)}")
    revision = Revision.objects.select_for_update().select_related("task").get(pk=revision_id)
    if Review.objects.filter(revision=revision).exists():
        raise ValueError(f"revision {revision_id} was already reviewed")
    if decision == Review.Decision.REJECTED and not comment.strip():
        raise ValueError("comment: a rejection needs a comment for the annotator")
    result = Review.objects.create(revision=revision, reviewer=reviewer, decision=decision, comment=comment)
    if decision == Review.Decision.REJECTED:
        task = Task.objects.select_for_update().get(pk=revision.task_id)
        task.status, task.review_comment = Task.Status.PENDING, comment
        task.lease_holder = task.lease_expires = None
        task.save(update_fields=["status", "review_comment", "lease_holder", "lease_expires", "updated"])
    return result
