"""A small annotating round: three imported cases with pseudo-labels, attention rows and tasks, and users."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from rest_framework.test import APIClient

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import Case, LabelSet, Round, Task
from annotation.services.imports import import_cases
from annotation.services.predictions import record_prediction
from annotation.services.queue import rebuild_tasks
from annotation.services.users import create_user
from tests.conftest import affine_for, make_ct, make_labels, save_nifti

SHAPE = (24, 20, 12)
PASSWORD = "correct-horse-battery-1"


@dataclass
class World:
    round: Round
    cases: dict[str, Case]
    pseudo: np.ndarray
    users: dict
    tmp: Path

    def client(self, name: str | None) -> APIClient:
        api = APIClient()
        if name is not None:
            api.force_authenticate(self.users[name])
        return api

    def task(self, case: str) -> Task:
        return Task.objects.get(case=self.cases[case], round=self.round)


def build_world(tmp_path: Path, sizes: dict[str, float]) -> World:
    """Cases named by `sizes` with total attention sizes (mL) split over liver and spleen."""
    affine = affine_for()
    pseudo = make_labels(SHAPE, values=(1, 5))
    for i, name in enumerate(sizes):
        save_nifti(tmp_path / "in" / f"{name}.nii.gz", make_ct(SHAPE, seed=i), affine)
    assert import_cases(tmp_path / "in", dataset="work").ok
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                   label_set=LabelSet.objects.get(name="abdomenatlas"))
    pseudo_path = save_nifti(tmp_path / "pseudo.nii.gz", pseudo, affine)
    heat = np.zeros(SHAPE, dtype=np.uint8)
    heat[5:9, 5:9, 4:7] = 200
    heat_path = save_nifti(tmp_path / "heat.nii.gz", heat, affine)
    liver_heat = save_nifti(tmp_path / "heat_liver.nii.gz", (heat // 2).astype(np.uint8), affine)
    cases = {}
    for name, total in sizes.items():
        case = Case.objects.get(name=name)
        cases[name] = case
        record_prediction(case=case, round=round0, pseudo_label=pseudo_path, heatmap=heat_path,
                          attention={"liver": liver_heat},
                          organs=[OrganAttentionInput("liver", total * 0.75, int(total * 100),
                                                      [{"voxels": 10, "ml": 1.0, "centroid": [6, 6, 5],
                                                        "bbox": [[5, 5, 4], [8, 8, 6]]}]),
                                  OrganAttentionInput("spleen", total * 0.25, int(total * 30))])
    rebuild_tasks(round=round0)
    users = {name: create_user(username=name, role=role, password=PASSWORD) for name, role in
             (("a1", "annotator"), ("a2", "annotator"), ("lead", "lead"), ("boss", "admin"))}
    from django.contrib.auth.models import User

    users["nobody"] = User.objects.create_user("nobody", password=PASSWORD)
    return World(round=round0, cases=cases, pseudo=pseudo, users=users, tmp=tmp_path)


def at_once(users, url: str, body: dict | None = None) -> dict[str, int]:
    """Every user POSTs url at the same moment (one thread each, released by a barrier); username -> the id each got.

    Fails on any error or non-200 answer.
    """
    barrier = threading.Barrier(len(users))
    got: dict[str, int] = {}
    errors: list[BaseException] = []

    def ask(user):
        try:
            api = APIClient()
            api.force_authenticate(user)
            barrier.wait()
            response = api.post(url, body or {}, format="json")
            assert response.status_code == 200, response.content
            got[user.username] = response.json()["id"]
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return got


@pytest.fixture
def world(tmp_path, settings, db) -> World:
    return build_world(tmp_path, {"mid": 30.0, "big": 50.0, "small": 10.0})
