"""The MONAI Label protocol over Atlas's queue, leases and revisions (3D Slicer's MONAI Label module, OHIF, the Python
client `monailabel.client.MONAILabelClient`). The views in `annotation/api/monailabel.py` are thin; this is the logic.

The image id the client receives from `activelearning` is an opaque capability: a random token whose SHA-256 names an
ImageLink row (task, user, and the revision the client is about to be given: its base). The id itself says nothing
of any of them; ids older than MAX_AGE are refused everywhere and removed. It stands in for the case everywhere:

- `GET datastore/image` (Slicer downloads with no auth header) serves the CT only for an id younger than
  ATLAS_MONAILABEL_LINK_MINUTES whose user still holds the task's lease, so the CT never opens to anonymous requests
  beyond the link it just handed to its lease holder;
- `POST infer` serves the label the id was issued for (the latest counted revision, else the imported truth or the
  pseudo-label), and renews the lease: Slicer sends no heartbeat;
- `PUT datastore/label` stores a revision whose base is the id's: if another revision landed since, 409. The id and
  its user's lease are checked before the upload's body is read (annotation.api.intake).
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotation.errors import Conflict, Forbidden, Invalid, NotFound, engine_refusals
from annotation.models import ImageLink, LabelSet, Revision, Round, Task
from annotation.roles import role_of
from annotation.selectors.interactive import engine_rows
from annotation.selectors.labels import label_to_edit
from annotation.selectors.rounds import current_round
from annotation.services import interactive, queue, revisions
from annotation.services.imports.labels import OrganIndex, present_values
from annotation.storage import read_voxels
from ml_engine import labels as vocabulary
from ml_engine.interactive import MAX_POINTS
from ml_engine.interactive.engine import CROP_MM
from ml_engine.io import LABEL_SUFFIXES, load_label_image, reorient_onto, spacing_from_affine, write_nifti

STRATEGY = "attention"
MODEL = "atlas"
CLICK_MODEL = "atlas_click"  # the click model, offered as a DeepEdit-style interactive model (services.interactive)
MAX_AGE = timedelta(hours=24)  # an id older than this is refused everywhere, lease or not
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)

UPLOAD_SUFFIXES = LABEL_SUFFIXES  # what an upload may be (annotation.api.intake checks the name)


@dataclass(frozen=True)
class Capability:
    """What an image id grants: the task leased to user, and the revision it was issued with (None: no revision)."""

    task: Task
    user_id: int
    base_revision: int | None


def strategies() -> dict[str, dict]:
    return {STRATEGY: {"description": "Atlas's queue: your leased task, then the largest total attention size "
                                      "(the same queue as POST /api/tasks/next/)"}}


def _label_set() -> LabelSet | None:
    """The label set of the round being annotated (the current one), else the default one."""
    annotating = current_round(annotating=True)
    if annotating is not None:
        return annotating.label_set
    return LabelSet.objects.filter(name="abdomenatlas").first() or LabelSet.objects.order_by("id").first()


def _organs(label_set: LabelSet) -> OrganIndex:
    return label_set.organ_index()


def info(user) -> dict:
    """The app description MONAI Label clients read at connect: labels, one model, strategies, progress."""
    label_set = _label_set()
    labels = dict(_organs(label_set).values) if label_set else {}
    engine = engine_rows()[0]  # the click model the workspace uses
    tasks = Task.objects.filter(round__status=Round.Status.ANNOTATING)
    done = tasks.filter(status__in=(Task.Status.REVISED, Task.Status.CONFIRMED)).count()
    return {
        "name": "Atlas",
        "description": "Atlas annotation queue (abdominal CT), spoken through the MONAI Label protocol",
        "version": "1",
        "labels": labels,
        "models": {MODEL: {
            "type": "segmentation", "dimension": 3, "labels": labels,
            "description": "The label to correct: your latest revision, else the imported label or the ensemble's "
                           "pseudo-label (no model runs in the request)",
        },
            CLICK_MODEL: {
                "type": "deepedit", "dimension": 3, "labels": labels,
                "description": "Atlas's click model (retrained every round on the group's corrections): "
                               "foreground / background points for the current label refine its label to correct; "
                               "the answer is the whole label with that organ changed around the points",
                "config": {"engine": engine["version"], "licence": engine["licence"]},
            }},
        "trainers": {},
        "strategies": strategies(),
        "scoring": {},
        "train_stats": {},
        "datastore": {"total": tasks.count(), "completed": done, "label_set": label_set.name if label_set else None},
    }


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def issue(task: Task, user) -> str:
    """A new image id for task, leased to user, carrying the revision the client will be given as its base.

    Ids past MAX_AGE are removed here, so the table holds a day of ids at most.
    """
    shown = label_to_edit(task.case, task)  # its own read of a double read
    base = shown.revision if shown is not None and shown.revision is not None else None
    ImageLink.objects.filter(created__lt=timezone.now() - MAX_AGE).delete()
    token = secrets.token_urlsafe(32)
    ImageLink.objects.create(digest=_digest(token), task=task, user=user, base_revision=base)
    return token


def _open(image_id: str, *, max_age: timedelta) -> Capability:
    link = None
    if _TOKEN.fullmatch(image_id):
        link = ImageLink.objects.select_related("task__case__dataset__label_set").filter(
            digest=_digest(image_id)).first()
    if link is None:
        raise NotFound("no such image: image ids come from POST /activelearning/attention", field="image")
    if link.created < timezone.now() - max_age:
        raise Forbidden("this image id has expired; ask for the next sample again", field="image")
    return Capability(task=link.task, user_id=link.user_id, base_revision=link.base_revision_id)


def open_for(image_id: str, user) -> Capability:
    """The capability of image_id for a signed-in user: it must be theirs (403 otherwise)."""
    if not image_id:
        raise Invalid("missing: the image id from POST /activelearning/attention", field="image")
    capability = _open(image_id, max_age=MAX_AGE)
    if capability.user_id != user.pk:
        raise Forbidden("this image id was issued to another user", field="image")
    return capability


def next_sample(*, user, strategy: str) -> dict:
    """Lease the user's next task through the queue (as POST /api/tasks/next/); {} when nothing is left."""
    if strategy != STRATEGY:
        raise NotFound(f"unknown strategy {strategy!r}; Atlas offers {STRATEGY!r}", field="strategy")
    task = queue.lease_next(user=user)
    if task is None:
        return {}
    case = task.case
    image_id = issue(task, user)
    return {
        "id": image_id,
        # Slicer saves the download under this name (its suffix picks the reader) and caches by it: unique per case
        "name": f"atlas_{case.pk}_{case.name}.nii.gz",
        "PatientID": case.name,
        "task": task.pk,
        "case": case.name,
        "dataset": case.dataset.name,
        "priority": task.priority,
        "lease_expires": task.lease_expires.isoformat() if task.lease_expires else None,
    }


def image_for_download(image_id: str, user=None) -> str:
    """The storage name of the CT behind image_id, for a plain GET (Slicer sends no auth header).

    Without a signed-in user the id must be younger than ATLAS_MONAILABEL_LINK_MINUTES; either way its user must
    still hold the task's lease.
    """
    if not image_id:
        raise Invalid("missing: the image id from POST /activelearning/attention", field="image")
    signed_in = user is not None and user.is_authenticated
    max_age = MAX_AGE if signed_in else timedelta(minutes=settings.ATLAS_MONAILABEL_LINK_MINUTES)
    capability = _open(image_id, max_age=max_age)
    if signed_in and capability.user_id != user.pk:
        raise Forbidden("this image id was issued to another user", field="image")
    holder = get_user_model().objects.filter(pk=capability.user_id).first()
    if holder is None or not holder.is_active or role_of(holder) is None:
        raise Forbidden("the user this image id was issued to may no longer annotate", field="image")
    queue.check_lease(capability.task, holder)
    return capability.task.case.ct_file.name


@dataclass(frozen=True)
class LabelToCorrect:
    """A stored label map and the names of the values it holds ({organ: value}, present values only)."""

    storage_name: str
    label_names: dict[str, int]
    source: str
    base_revision: int | None


def label_to_correct(*, image_id: str, user, model: str) -> LabelToCorrect:
    """What `infer` answers: the label the id was issued with; renews the lease. No model runs."""
    if model not in (MODEL, CLICK_MODEL):
        raise NotFound(f"unknown model {model!r}; Atlas offers {MODEL!r} (the label to correct) and {CLICK_MODEL!r} "
                       "(clicks)", field="model")
    capability = open_for(image_id, user)
    task = queue.heartbeat(task_id=capability.task.pk, user=user)
    shown = label_to_edit(task.case, task)  # its own read of a double read
    base = shown.revision.pk if shown is not None and shown.revision is not None else None
    if base != capability.base_revision:
        latest = Revision.objects.filter(pk=base).first() if base else None
        raise Conflict("the case's label changed after this image id was issued; ask for the next sample again",
                       latest_revision=latest.pk if latest else None)
    if shown is None:
        raise NotFound("this case has no label yet (no revision, imported label or pseudo-label)", field="image")
    organs = _organs(task.case.dataset.label_set)
    values = {int(v) for v in present_values(read_voxels(shown.name))}
    names = {organ: value for organ, value in organs.values.items() if value in values}
    return LabelToCorrect(shown.name, names, shown.source, base)


def open_for_upload(*, image_id: str, user, tag: str) -> Capability:
    """Before the label's body is read (annotation.api.intake): the tag is one Atlas stores, the id is this user's,
    and they may send a revision of its task (revisions.check_may_send: the lease, as every upload door asks)."""
    if tag not in ("", "final"):
        raise Invalid(f"Atlas stores final labels only (revisions), not {tag!r}", field="tag")
    capability = open_for(image_id, user)
    revisions.check_may_send(task_id=capability.task.pk, user=user)
    return capability


def save_label(*, capability: Capability, user, upload: Path, label_info: object, workdir: Path) -> Revision:
    """Store the client's label (NIfTI or NRRD) as a revision of the capability's task (open_for_upload's), based on
    its revision.

    label_info ([{"name", "idx"}], Slicer's segments in its own numbering) maps the file's values onto the label
    set by organ names and aliases; without it the values must be the label set's. A label on the CT's grid in
    another voxel order is reordered; anything else is refused like POST /api/tasks/{id}/revisions/. The time spent is
    the time since the lease was taken.
    """
    case = capability.task.case
    organs = _organs(case.dataset.label_set)
    lookup = _value_lookup(label_info, organs)
    with engine_refusals(field="label"):
        volume = load_label_image(upload, max_bytes=min(settings.ATLAS_MAX_VOLUME_BYTES,
                                                        int(np.prod(case.shape, dtype=object)) * 8),
                                  expect_shape=tuple(case.shape))
        data, _reordered = reorient_onto(volume, np.asarray(case.affine), tuple(case.shape), upload)
        data = vocabulary.integer_labels(data)
    if lookup is not None:
        data = _translate(data, lookup)
    staged = write_nifti(workdir / "label.nii.gz", data, np.asarray(case.affine), dtype=np.uint8) \
        if int(data.max(initial=0)) < 256 else None
    if staged is None:
        raise Invalid("label values above 255 are not organs of any label set", field="label")
    return revisions.submit_revision(task_id=capability.task.pk, user=user, upload=staged,
                                     base_revision=capability.base_revision, seconds_spent=_seconds_on(capability.task))


def _seconds_on(task: Task) -> float:
    """Slicer reports no editing time: the time since the lease was taken stands in (the dashboard's pace)."""
    if task.leased_at is None:
        return 0.0
    return min(max(0.0, (timezone.now() - task.leased_at).total_seconds()), revisions.MAX_SECONDS_SPENT)


def _value_lookup(label_info: object, organs: OrganIndex) -> dict[int, int] | None:
    """{file value: label-set value} from Slicer's label_info; None when there is none."""
    if label_info in (None, "", []):
        return None
    if not isinstance(label_info, list):
        raise Invalid("expected a list of {\"name\", \"idx\"}", field="params.label_info")
    lookup: dict[int, int] = {}
    unknown: list[str] = []
    for entry in label_info:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or isinstance(entry.get("idx"), bool) or not isinstance(entry.get("idx"), int):
            raise Invalid(f"expected {{\"name\": text, \"idx\": number}}, found {str(entry)[:80]}",
                          field="params.label_info")
        name, idx = entry["name"], entry["idx"]
        if not 0 < idx < 2**16:
            raise Invalid(f"segment {name!r}: idx {idx} is not a label value", field="params.label_info")
        organ = organs.resolve(name)
        if organ is None:
            unknown.append(name)
            continue
        lookup[idx] = organs.values[organ]
    if unknown:
        raise Invalid(f"segments {', '.join(repr(n[:40]) for n in unknown[:8])} are not organs of the label set "
                      f"{organs.name} ({', '.join(organs.values)}); rename or remove them", field="params.label_info")
    return lookup


def _translate(data: np.ndarray, lookup: dict[int, int]) -> np.ndarray:
    present = [int(v) for v in present_values(data) if v != 0]
    missing = [v for v in present if v not in lookup]
    if missing:
        raise Invalid(f"label values {', '.join(map(str, missing[:8]))} have no segment in params.label_info",
                      field="label")
    table = np.zeros(max(present, default=0) + 1, dtype=np.uint8)
    for source, target in lookup.items():
        if source < table.size:
            table[source] = target
    return table[data]


def _points(params: dict, key: str) -> list[list[int]]:
    value = params.get(key) or []
    if not isinstance(value, list) or len(value) > MAX_POINTS or not all(
            isinstance(p, list) and len(p) == 3 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                         and math.isfinite(v) for v in p) for p in value):
        raise Invalid(f"expected at most {MAX_POINTS} points [i, j, k]", field=f"params.{key}")
    return [[int(round(v)) for v in p] for p in value]


def click_points(params: dict, organs: OrganIndex) -> tuple[str, list[list[int]], list[list[int]]]:
    """(organ, foreground, background) from Slicer's params: `label` names the current segment; its points are
    `foreground` (DeepGrow's key) or the segment's own name (DeepEdit's), and `background`."""
    name = params.get("label")
    if not isinstance(name, str) or not name:
        raise Invalid("name the segment to refine (params.label)", field="params.label")
    organ = organs.resolve(name)
    if organ is None:
        raise Invalid(f"{name[:40]!r} is not an organ of the label set {organs.name}", field="params.label")
    foreground = _points(params, "foreground") or _points(params, name)
    background = _points(params, "background")
    if not foreground and not background:
        raise Invalid("no points: send params.foreground and / or params.background", field="params.foreground")
    return organ, foreground, background


def click_label(*, image_id: str, user, params: dict, workdir: Path) -> tuple[Path, dict]:
    """`infer/atlas_click`: the label to correct with the current organ refined by the click model around the
    points (IJK voxel indices of the downloaded image); renews the lease. Returns the label file and its params."""
    shown = label_to_correct(image_id=image_id, user=user, model=CLICK_MODEL)
    case = open_for(image_id, user).task.case
    organs = _organs(case.dataset.label_set)
    organ, foreground, background = click_points(params, organs)
    data = read_voxels(shown.storage_name).astype(np.uint8)
    points = np.asarray(foreground + background)
    spacing = np.asarray(spacing_from_affine(np.asarray(case.affine)))
    margin = np.ceil(CROP_MM / 2 / spacing).astype(int)
    shape = np.asarray(case.shape)
    if (points < 0).any() or (points >= shape).any():
        raise Invalid(f"points lie outside the image of {' x '.join(map(str, case.shape))}", field="params.foreground")
    lo = np.maximum(points.min(axis=0) - margin, 0)
    hi = np.minimum(points.max(axis=0) + margin, shape - 1)
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
    value = organs.values[organ]
    current = data[box] == value
    answer = interactive.click(case, interactive.ClickRequest(
        organ=organ, box=([int(v) for v in lo], [int(v) for v in hi]), label=interactive.pack_mask(current),
        positive=foreground, negative=background))
    mask = interactive.unpack_mask(answer["mask"], current.shape, field="mask")
    crop = data[box]
    crop[current & ~mask] = 0
    crop[mask] = value  # the organ's voxels as the engine drew them (over any other organ's, as Slicer's edit does)
    path = write_nifti(workdir / "label.nii.gz", data, np.asarray(case.affine), dtype=np.uint8)
    names = {o: v for o, v in organs.values.items() if v in {int(x) for x in present_values(data)}}
    return path, {"label_names": names, "source": f"{shown.source} + {answer['engine']['name']}",
                  "base_revision": shown.base_revision, "organ": organ, "changed": answer["changed"],
                  "engine": answer["engine"], "seconds": answer["seconds"]}
