"""Rounds run as a state machine of jobs: train -> infer -> rank -> annotating; a second round fine-tunes.

Jobs run in this process here (the enqueue function runs them at once); the Celery path is tested with a real
worker in tests/integration.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from annotation.models import Case, Job, LabelSet, ModelVersion, OrganAttention, Prediction, Round, Task
from annotation.services import queue, revisions, rounds
from annotation.services.users import create_user
from ml_engine.io import write_nifti
from tests.annotation.loop import import_phantoms, inline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def phantoms(tmp_path):
    return import_phantoms(tmp_path / "src", first_seed=100, prefix="ph", dataset="loop")


def test_round_zero_then_one(phantoms, tmp_path, settings):
    round0 = rounds.start_round(archs=["unet", "nnunet"], steps=2, enqueue=inline)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error
    assert sorted(round0.members.values_list("arch", flat=True)) == ["nnunet", "unet"]
    assert Prediction.objects.filter(round=round0).count() == 4
    assert OrganAttention.objects.filter(round=round0).count() == 4 * 9
    jobs = Job.objects.filter(round=round0)
    assert jobs.count() == 2 + 4 + 1 and set(jobs.values_list("status", flat=True)) == {"succeeded"}
    assert set(jobs.values_list("attempts", flat=True)) == {1}
    tasks = list(Task.objects.filter(round=round0).order_by("-priority"))
    assert len(tasks) == 4
    for task in tasks:
        total = sum(OrganAttention.objects.filter(round=round0, case=task.case).values_list("size_ml", flat=True))
        assert task.priority == pytest.approx(total)
    prediction = Prediction.objects.filter(round=round0).first()
    media = Path(settings.MEDIA_ROOT)
    assert (media / prediction.pseudo_label.name).is_file()
    assert set(prediction.files["soft_pred"]) == {"unet", "nnunet"}
    assert all((media / name).is_file() for name in prediction.files["soft_pred"]["unet"].values())

    # a job delivered twice does nothing the second time
    assert rounds.run_job(jobs.first().pk, enqueue=inline) == "succeeded"
    assert Job.objects.get(pk=jobs.first().pk).attempts == 1

    # an annotator revises the top case with the truth; the next round fine-tunes from round 0
    annotator = create_user(username="ann", role="annotator", password="pw-123456789")
    task = queue.lease_next(user=annotator)
    truth = phantoms[task.case.name].labels
    upload = write_nifti(tmp_path / "rev.nii.gz", truth, np.asarray(task.case.affine), dtype=np.uint8)
    revisions.submit_revision(task_id=task.pk, user=annotator, upload=upload, base_revision=None)
    with pytest.raises(rounds.RoundError, match="--archs"):
        rounds.start_round(archs=["resnet"], enqueue=inline)
    round1 = rounds.start_round(archs=["unet", "nnunet"], steps=2, enqueue=inline)
    round1.refresh_from_db()
    round0.refresh_from_db()
    assert round1.status == Round.Status.ANNOTATING and round0.status == Round.Status.CLOSED
    for version in round1.members.all():
        assert version.parent is not None and version.parent.rounds.get() == round0
        assert task.case.name in version.metadata["training_cases"]
    assert Prediction.objects.filter(round=round1).count() == 4
    assert Task.objects.filter(round=round1).count() == 4
    assert Task.objects.get(pk=task.pk).status == "revised"  # round 0's work is kept
    # once round 1 is annotating, the file metrics of round 0 (with its revision) and round 1 are cached
    round0.refresh_from_db()
    assert round0.metrics["key"] and not round0.metrics["errors"]
    assert Round.objects.get(pk=round1.pk).metrics["key"]
    assert ModelVersion.objects.count() == 4


def test_start_round_refuses_while_one_runs(phantoms):
    queued: list[Job] = []
    round0 = rounds.start_round(archs=["unet"], steps=1, enqueue=queued.append)
    assert [j.key for j in queued] == ["round0:train:unet"]
    with pytest.raises(rounds.RoundError, match="round 0 is still training"):
        rounds.start_round(archs=["unet"], enqueue=queued.append)
    rounds.cancel_round()
    round0.refresh_from_db()
    assert round0.status == Round.Status.CANCELLED
    assert Job.objects.get().status == Job.Status.CANCELLED
    assert rounds.run_job(queued[0].pk, enqueue=queued.append) == "cancelled"  # a late delivery does nothing
    assert Case.objects.count() == 4


def test_start_round_if_none_starts_only_the_first(phantoms):
    Round.objects.create(number=0, label_set=LabelSet.objects.get(name="abdomenatlas"),
                         status=Round.Status.ANNOTATING)
    out = io.StringIO()
    call_command("start_round", "--if-none", "--wait", stdout=out)
    assert "round 0 exists (annotating): no round started" in out.getvalue()
    assert Round.objects.count() == 1 and not Job.objects.exists()
