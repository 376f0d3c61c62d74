"""The loop end to end through a real Celery worker: round 0, revisions of the top cases, start_round, better labels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.management import call_command

from annotation.models import Job, OrganAttention, Prediction, Round, Task
from annotation.services import queue, revisions
from annotation.services.imports import import_cases
from annotation.services.users import create_user
from annotation.storage import local_copy
from ml_engine.io import load_nifti, write_nifti
from ml_engine.metrics import dice
from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

N_CASES, TOP_K = 6, 3


def organ_dice(round: Round, case_name: str, truth: np.ndarray) -> dict[str, float]:
    prediction = Prediction.objects.get(round=round, case__name=case_name)
    with local_copy(prediction.pseudo_label.name) as path:
        label = np.asarray(load_nifti(path).data)
    return {organ: dice(label == i + 1, truth == i + 1) for i, organ in enumerate(ORGANS)}


def start_round(*args) -> str:
    out = io.StringIO()
    call_command("start_round", "--archs", "unet", *args, "--wait", "--timeout", 600, verbosity=0, stdout=out)
    return out.getvalue()


def test_revisions_make_the_next_round_better(worker, tmp_path):
    truth = {}
    for i in range(N_CASES):  # the shipped checkpoints' domain; two cases come with labels
        phantom = make_phantom(500 + i, name=f"loop{i:02d}")
        write_phantom_case(phantom, tmp_path / "src", organs=ORGANS if i < 2 else ())
        truth[phantom.name] = phantom
    assert import_cases(tmp_path / "src", dataset="loop").ok

    out = start_round("--steps", 1)  # round 0: the shipped U-Net, barely touched
    assert "round 0 is annotating: 6 tasks ranked" in out, worker.log.read_text()[-3000:]
    round0 = Round.objects.get(number=0)

    annotator = create_user(username="ann", role="annotator", password="pw-123456789")
    ranked = list(Task.objects.filter(round=round0).order_by("-priority", "id").values_list("case__name", flat=True))
    revised = []
    for _ in range(TOP_K):  # the simulated annotator uploads the truth for the top cases of the queue
        task = queue.lease_next(user=annotator)
        upload = write_nifti(tmp_path / f"{task.case.name}.nii.gz", truth[task.case.name].labels,
                             np.asarray(task.case.affine), dtype=np.uint8)
        revisions.submit_revision(task_id=task.pk, user=annotator, upload=upload, base_revision=None)
        revised.append(task.case.name)
    assert revised == ranked[:TOP_K]
    before = {name: organ_dice(round0, name, truth[name].labels) for name in revised}

    out = start_round("--steps", 40)
    assert "round 1 is annotating: 6 tasks ranked" in out, worker.log.read_text()[-3000:]
    round1 = Round.objects.get(number=1)
    round0.refresh_from_db()
    assert round0.status == Round.Status.CLOSED

    # fine-tuned from round 0 on the revisions (with the imported labels)
    model = round1.members.get()
    assert model.parent.rounds.get() == round0
    assert set(revised) | {"loop00", "loop01"} == set(model.metadata["training_cases"])
    # every case's prediction and attention were refreshed by round 1's model, once each
    infer = Job.objects.filter(round=round1, kind=Job.Kind.INFER)
    assert infer.count() == N_CASES and set(infer.values_list("attempts", flat=True)) == {1}
    assert Prediction.objects.filter(round=round1).count() == N_CASES
    assert OrganAttention.objects.filter(round=round1).count() == N_CASES * len(ORGANS)
    # the queue was re-ranked by round 1's attention
    for task in Task.objects.filter(round=round1):
        sizes = OrganAttention.objects.filter(round=round1, case=task.case).values_list("size_ml", flat=True)
        assert task.priority == pytest.approx(sum(sizes))
    assert Task.objects.filter(round=round0, status=Task.Status.REVISED).count() == TOP_K  # round 0's work kept

    after = {name: organ_dice(round1, name, truth[name].labels) for name in revised}
    mean_before = np.mean([np.mean(list(d.values())) for d in before.values()])
    mean_after = np.mean([np.mean(list(d.values())) for d in after.values()])
    print(f"revised cases' mean Dice: round 0 {mean_before:.4f} -> round 1 {mean_after:.4f}")
    assert mean_after > mean_before
    for name in revised:
        assert np.mean(list(after[name].values())) > np.mean(list(before[name].values())), (name, before, after)
