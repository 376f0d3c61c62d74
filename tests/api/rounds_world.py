"""A database with two finished rounds, made with the real services (record_prediction, rebuild_tasks, lease_next,
submit_revision, confirm, assign, update_round_metrics): what the lead dashboard shows.

Four cases c1..c4. Round 0 (closed): three models, attention 50 / 30 / 20 / 10 mL; a1 revises the top case c1 (so the
loop has not converged), a2 confirms c2, a1 revises c3; those revisions are dated two days ago. Round 1
(annotating): models fine-tuned from round 0 with validation Dice in their metadata, attention 20 / 12 / 6 / 3 mL
(c2 on top); c4 is assigned to a2, a1 confirms the top case c2 (converged), a2 revises c4, a1 holds a lease on c1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.utils import timezone
from rest_framework.test import APIClient

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import Case, Job, LabelSet, ModelVersion, Revision, Round, Task
from annotation.selectors.labels import latest_revision
from annotation.services import queue, revisions
from annotation.services.imports import import_cases
from annotation.services.metrics import update_round_metrics
from annotation.services.predictions import record_prediction
from annotation.services.users import create_user
from tests.api.conftest import PASSWORD
from tests.conftest import affine_for, make_ct, make_labels, save_nifti

SHAPE = (24, 20, 12)
SPLEEN, LIVER = 1, 5
ARCHS = ("nnunet", "swin_unetr", "unet")
SIZES = ({"c1": 50.0, "c2": 30.0, "c3": 20.0, "c4": 10.0}, {"c2": 20.0, "c1": 12.0, "c3": 6.0, "c4": 3.0})


@dataclass
class RoundsWorld:
    rounds: list[Round]
    cases: dict[str, Case]
    users: dict
    pseudo: np.ndarray

    def client(self, name: str | None) -> APIClient:
        api = APIClient()
        if name is not None:
            api.force_authenticate(self.users[name])
        return api

    def task(self, round: int, case: str) -> Task:
        return Task.objects.get(round=self.rounds[round], case=self.cases[case])


def _shift(mask: np.ndarray, dx: int) -> np.ndarray:
    """The mask moved dx voxels along x (the models disagree along the organs' borders)."""
    out = np.zeros_like(mask)
    if dx >= 0:
        out[dx:] = mask[:mask.shape[0] - dx]
    else:
        out[:dx] = mask[-dx:]
    return out


def _soft_preds(tmp: Path, pseudo: np.ndarray, affine, round_number: int) -> dict[str, dict[str, Path]]:
    """uint8 p x 255 per architecture and organ: unet agrees with the pseudo-label, nnunet and swin_unetr are shifted
    by one voxel in round 0 and agree in round 1."""
    shifts = {"unet": 0, "nnunet": 1 if round_number == 0 else 0, "swin_unetr": -1 if round_number == 0 else 0}
    files: dict[str, dict[str, Path]] = {}
    for arch in ARCHS:
        for organ, value in (("spleen", SPLEEN), ("liver", LIVER)):
            soft = (_shift(pseudo == value, shifts[arch]) * 230).astype(np.uint8)
            files.setdefault(arch, {})[organ] = save_nifti(tmp / f"r{round_number}" / arch / f"{organ}.nii.gz", soft,
                                                           affine)
    return files


def _open_round(number: int, label_set: LabelSet, members: list[ModelVersion], cases: dict[str, Case],
                sizes: dict[str, float], tmp: Path, pseudo: np.ndarray, affine) -> Round:
    """A round whose jobs all succeeded: members, predictions, attention and tasks, now annotating."""
    round = Round.objects.create(number=number, label_set=label_set, status=Round.Status.ANNOTATING,
                                 settings={"archs": list(ARCHS), "size": "tiny", "steps": 2})
    round.members.set(members)
    pseudo_path = save_nifti(tmp / f"pseudo{number}.nii.gz", pseudo, affine)
    heat = np.zeros(SHAPE, dtype=np.uint8)
    heat[5:9, 5:9, 4:7] = 200
    heat_path = save_nifti(tmp / "heat.nii.gz", heat, affine)
    soft = _soft_preds(tmp, pseudo, affine, number)
    now = timezone.now()
    for arch in ARCHS:
        Job.objects.create(key=f"round{number}:train:{arch}", kind=Job.Kind.TRAIN, round=round, arch=arch,
                           status=Job.Status.SUCCEEDED, progress=1.0, message="step 2/2, loss 0.412", attempts=1,
                           started=now, finished=now)
    for name, total in sizes.items():
        case = cases[name]
        record_prediction(case=case, round=round, pseudo_label=pseudo_path, heatmap=heat_path,
                          attention={"liver": heat_path}, soft_pred=soft,
                          organs=[OrganAttentionInput("liver", total * 0.75, int(total * 100)),
                                  OrganAttentionInput("spleen", total * 0.25, int(total * 30))])
        Job.objects.create(key=f"round{number}:infer:case{case.pk}", kind=Job.Kind.INFER, round=round, case=case,
                           status=Job.Status.SUCCEEDED, progress=1.0, attempts=1, started=now, finished=now)
    queue.rebuild_tasks(round=round)
    Job.objects.create(key=f"round{number}:rank", kind=Job.Kind.RANK, round=round, status=Job.Status.SUCCEEDED,
                       progress=1.0, attempts=1, started=now, finished=now)
    return round


def _revise(user, tmp: Path, affine, change, *, tags: dict, seconds: float) -> Revision:
    """user leases their next task and submits the latest label with `change` applied (a function of the array)."""
    task = queue.lease_next(user=user)
    latest = latest_revision(task.case)
    base = revisions._reference(task) if latest is None else revision_array(latest)
    data = change(base.copy())
    path = save_nifti(tmp / f"upload-{task.pk}.nii.gz", data.astype(np.uint8), affine)
    return revisions.submit_revision(task_id=task.pk, user=user, upload=path,
                                     base_revision=latest.pk if latest else None, tags=tags, seconds_spent=seconds)


def _confirm(user, *, seconds: float) -> Revision:
    task = queue.lease_next(user=user)
    latest = latest_revision(task.case)
    return revisions.confirm(task_id=task.pk, user=user, base_revision=latest.pk if latest else None,
                             seconds_spent=seconds)


def revision_array(revision: Revision) -> np.ndarray:
    from annotation.storage import local_copy
    from ml_engine.io import load_nifti

    with local_copy(revision.label_file.name) as path:
        return np.asarray(load_nifti(path).data)


def grow_liver(data: np.ndarray) -> np.ndarray:
    data[3:15, 4, 3:9][data[3:15, 4, 3:9] == 0] = LIVER
    return data


def trim_spleen(data: np.ndarray) -> np.ndarray:
    data[3:6][data[3:6] == SPLEEN] = 0
    return data


def build_two_rounds(tmp_path: Path) -> RoundsWorld:
    affine = affine_for()
    names = list(SIZES[0])
    for i, name in enumerate(names):
        save_nifti(tmp_path / "in" / f"{name}.nii.gz", make_ct(SHAPE, seed=i), affine)
    assert import_cases(tmp_path / "in", dataset="rounds").ok
    cases = {name: Case.objects.get(name=name) for name in names}
    users = {name: create_user(username=name, role=role, password=PASSWORD) for name, role in
             (("a1", "annotator"), ("a2", "annotator"), ("lead", "lead"), ("boss", "admin"))}
    label_set = LabelSet.objects.get(name="abdomenatlas")
    pseudo = make_labels(SHAPE, values=(SPLEEN, LIVER))

    m0 = [ModelVersion.objects.create(name=f"round0-{arch}-tiny", arch=arch, size="tiny") for arch in ARCHS]
    round0 = _open_round(0, label_set, m0, cases, SIZES[0], tmp_path, pseudo, affine)
    _revise(users["a1"], tmp_path, affine, grow_liver, tags={"liver": ["ambiguous_boundary"]}, seconds=600)  # c1
    _confirm(users["a2"], seconds=300)  # c2
    _revise(users["a1"], tmp_path, affine, trim_spleen, tags={"spleen": ["missing_cavity"], "liver": ["other"]},
            seconds=900)  # c3
    Revision.objects.filter(task__round=round0).update(created=timezone.now() - timedelta(days=2))
    Round.objects.filter(pk=round0.pk).update(status=Round.Status.CLOSED, finished=timezone.now())

    m1 = []
    for i, (arch, parent) in enumerate(zip(ARCHS, m0, strict=True)):
        validation = {"cases": ["c3"], "dice": {"spleen": 0.9 + i / 100, "liver": 0.95 - i / 100},
                      "mean": round((0.9 + i / 100 + 0.95 - i / 100) / 2, 6),
                      "parent_dice": {"spleen": 0.8, "liver": 0.85 + i / 100},
                      "parent_mean": round((0.8 + 0.85 + i / 100) / 2, 6)}
        m1.append(ModelVersion.objects.create(name=f"round1-{arch}-tiny", arch=arch, size="tiny", parent=parent,
                                              metadata={"validation": validation}))
    round1 = _open_round(1, label_set, m1, cases, SIZES[1], tmp_path, pseudo, affine)
    queue.assign(annotator=users["a2"], task_ids=[Task.objects.get(round=round1, case=cases["c4"]).pk])
    _confirm(users["a1"], seconds=240)  # c2, the top case: converged
    _revise(users["a2"], tmp_path, affine, grow_liver, tags={"liver": ["tumour_enlarged_organ"]}, seconds=420)  # c4
    queue.lease_next(user=users["a1"])  # c1, held

    for opened in (round0, round1):
        update_round_metrics(round_id=opened.pk)
    rounds = [Round.objects.get(pk=round0.pk), Round.objects.get(pk=round1.pk)]
    return RoundsWorld(rounds=rounds, cases=cases, users=users, pseudo=pseudo)
