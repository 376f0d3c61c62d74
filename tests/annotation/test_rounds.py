"""Rounds run as a state machine of jobs: train -> infer -> rank -> annotating; a second round fine-tunes.

Jobs run in this process here (tests/conftest.py points ATLAS_JOB_ENQUEUE at an inline runner); the Celery path is
tested with a real worker in tests/integration. The state changes of `advance` are tested on their own below, with
jobs queued but not run.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from annotation.errors import Conflict, Invalid
from annotation.models import (
    Case,
    InteractiveModel,
    Job,
    LabelCheck,
    LabelSet,
    ModelVersion,
    OrganAttention,
    Prediction,
    Round,
    Task,
)
from annotation.selectors.interactive import current_click_model
from annotation.selectors.rounds import round_summary
from annotation.services import jobs, queue, revisions, rounds
from annotation.services.users import create_user
from ml_engine.io import write_nifti
from tests.annotation import loop
from tests.annotation.loop import import_phantoms

pytestmark = pytest.mark.django_db(transaction=True)
STEPS = (Job.Kind.TRAIN, Job.Kind.INFER, Job.Kind.RANK)


@pytest.fixture
def phantoms(tmp_path):
    return import_phantoms(tmp_path / "src", first_seed=100, prefix="ph", dataset="loop")


@pytest.fixture
def queued(settings) -> list[Job]:
    """Jobs are queued, not run: the list of what was queued."""
    settings.ATLAS_JOB_ENQUEUE = "tests.annotation.loop.collect"
    loop.QUEUED.clear()
    yield loop.QUEUED
    loop.QUEUED.clear()


# the two-round test, step by step


def _round_zero_is_built(round0: Round, media: Path) -> None:
    assert round0.status == Round.Status.ANNOTATING, round0.error
    assert sorted(round0.members.values_list("arch", flat=True)) == ["nnunet", "unet"]
    assert Prediction.objects.filter(round=round0).count() == 4
    assert OrganAttention.objects.filter(round=round0).count() == 4 * 9
    steps = Job.objects.filter(round=round0, kind__in=STEPS)
    checked = Job.objects.get(round=round0, kind=Job.Kind.QC)
    assert checked.status == Job.Status.SUCCEEDED and LabelCheck.objects.filter(round=round0).count() == 4
    assert steps.count() == 2 + 4 + 1 and set(steps.values_list("status", flat=True)) == {"succeeded"}
    assert set(steps.values_list("attempts", flat=True)) == {1}
    prediction = Prediction.objects.filter(round=round0).first()
    assert (media / prediction.pseudo_label.name).is_file()
    assert set(prediction.files["soft_pred"]) == {"unet", "nnunet"}
    assert all((media / name).is_file() for name in prediction.files["soft_pred"]["unet"].values())


def _tasks_are_ranked_by_attention(round0: Round) -> None:
    tasks = list(Task.objects.filter(round=round0).order_by("-priority"))
    assert len(tasks) == 4
    for task in tasks:
        total = sum(OrganAttention.objects.filter(round=round0, case=task.case).values_list("size_ml", flat=True))
        assert task.priority == pytest.approx(total)


def _a_second_delivery_does_nothing(round0: Round) -> None:
    job = Job.objects.filter(round=round0, kind=Job.Kind.TRAIN).first()
    assert jobs.run_job(job.pk) == "succeeded"
    assert Job.objects.get(pk=job.pk).attempts == 1


def _revise_the_top_case(phantoms, tmp_path) -> Task:
    annotator = create_user(username="ann", role="annotator", password="pw-123456789")
    task = queue.lease_next(user=annotator)
    truth = phantoms[task.case.name].labels
    upload = write_nifti(tmp_path / "rev.nii.gz", truth, np.asarray(task.case.affine), dtype=np.uint8)
    revisions.submit_revision(task_id=task.pk, user=annotator, upload=upload, base_revision=None)
    return task


def _round_one_fine_tunes_round_zero(round0: Round, round1: Round, revised: Task) -> None:
    assert round1.status == Round.Status.ANNOTATING and round0.status == Round.Status.CLOSED
    for version in round1.members.all():
        assert version.parent is not None and version.parent.rounds.get() == round0
        assert revised.case.name in version.metadata["training_cases"]
    assert Prediction.objects.filter(round=round1).count() == 4
    assert Task.objects.filter(round=round1).count() == 4
    assert Task.objects.get(pk=revised.pk).status == "revised"  # round 0's work is kept
    assert ModelVersion.objects.count() == 4


def _metrics_of_both_rounds_are_cached(round0: Round, round1: Round) -> None:
    """Once round 1 is annotating, METRICS jobs cache the file metrics of round 0 (with its revision) and round 1."""
    assert round0.metrics["key"] and not round0.metrics["errors"]
    assert round1.metrics["key"]
    assert set(Job.objects.filter(kind=Job.Kind.METRICS).values_list("key", "status")) == {
        ("round0:metrics:1", "succeeded"), ("round0:metrics:2", "succeeded"), ("round1:metrics:1", "succeeded")}


def _each_round_has_its_click_model(round0: Round, round1: Round, revised: Task) -> None:
    """The CLICK job of each round: round 0 fine-tunes the shipped click model when it has labelled cases (or keeps
    it), round 1 fine-tunes round 0's on the revised case; each records its Dice after 1, 3 and 5 clicks."""
    first, second = InteractiveModel.objects.get(round=round0), InteractiveModel.objects.get(round=round1)
    assert Job.objects.get(key="round1:train:click").status == Job.Status.SUCCEEDED
    assert second.parent == first and second.metadata["fine_tuned"] is True
    assert revised.case.name in second.metadata["training_cases"]
    assert {"dice_0", "dice_1", "dice_3", "dice_5"} <= set(second.metadata["metrics"])
    assert default_storage.exists(second.checkpoint.name)
    shown = round_summary(round1)["click_model"]
    assert shown["version"] == second.name and shown["validation"]["dice_5"] is not None
    out = io.StringIO()
    call_command("round_status", "1", stdout=out)
    assert f"click model: {second.name} (fine-tuned in this round" in out.getvalue()
    assert current_click_model() == second


@pytest.mark.slow
def test_round_zero_then_one(phantoms, tmp_path, settings):
    round0 = rounds.start_round(archs=["unet", "nnunet"], steps=2)
    round0.refresh_from_db()
    _round_zero_is_built(round0, Path(settings.MEDIA_ROOT))
    _tasks_are_ranked_by_attention(round0)
    _a_second_delivery_does_nothing(round0)
    revised = _revise_the_top_case(phantoms, tmp_path)
    round1 = rounds.start_round(archs=["unet", "nnunet"], steps=2)
    round0.refresh_from_db()
    round1.refresh_from_db()
    _round_one_fine_tunes_round_zero(round0, round1, revised)
    _metrics_of_both_rounds_are_cached(round0, round1)
    _each_round_has_its_click_model(round0, round1, revised)


def test_start_round_refuses_bad_input_and_a_second_round(phantoms, queued):
    with pytest.raises(Invalid, match="resnet") as bad:
        rounds.start_round(archs=["resnet"])
    assert bad.value.field == "archs" and bad.value.as_option().startswith("--archs: ")
    round0 = rounds.start_round(archs=["unet"], steps=1)
    assert [j.key for j in queued] == ["round0:train:unet", "round0:train:click"]
    with pytest.raises(Conflict, match="round 0 is still training"):
        rounds.start_round(archs=["unet"])
    rounds.cancel_round()
    round0.refresh_from_db()
    assert round0.status == Round.Status.CANCELLED
    assert Job.objects.get().status == Job.Status.CANCELLED
    assert jobs.run_job(queued[0].pk) == "cancelled"  # a late delivery does nothing
    assert Case.objects.count() == 4


def test_start_round_if_none_starts_only_the_first(phantoms):
    Round.objects.create(number=0, label_set=LabelSet.objects.get(name="abdomenatlas"),
                         status=Round.Status.ANNOTATING)
    out = io.StringIO()
    call_command("start_round", "--if-none", "--wait", stdout=out)
    assert "round 0 exists (annotating): no round started" in out.getvalue()
    assert Round.objects.count() == 1 and not Job.objects.exists()


# rounds.advance, one state change at a time (jobs are queued, not run)


def _succeed(round: Round, kind: str) -> None:
    round.jobs.filter(kind=kind).update(status=Job.Status.SUCCEEDED)


def test_advance_moves_one_step_only_when_every_job_of_it_succeeded(phantoms, queued):
    round0 = rounds.start_round(archs=["unet", "nnunet"], steps=1)
    queued.clear()
    Job.objects.filter(key="round0:train:unet").update(status=Job.Status.SUCCEEDED)
    assert rounds.advance(round_id=round0.pk).status == Round.Status.TRAINING  # nnunet still queued
    assert queued == []

    _succeed(round0, Job.Kind.TRAIN)
    assert rounds.advance(round_id=round0.pk).status == Round.Status.TRAINING  # the click model still training
    _succeed(round0, Job.Kind.CLICK)
    assert rounds.advance(round_id=round0.pk).status == Round.Status.INFERRING
    infer = sorted(j.key for j in queued)
    assert infer == sorted(f"round0:infer:case{c.pk}" for c in Case.objects.all())  # one per case not final
    assert rounds.advance(round_id=round0.pk).status == Round.Status.INFERRING  # again: nothing new queued
    assert len(queued) == 4

    _succeed(round0, Job.Kind.INFER)
    queued.clear()
    assert rounds.advance(round_id=round0.pk).status == Round.Status.RANKING
    assert [j.key for j in queued] == ["round0:rank"]

    _succeed(round0, Job.Kind.RANK)
    queued.clear()
    assert rounds.advance(round_id=round0.pk).status == Round.Status.ANNOTATING
    # no earlier round: only this one's metrics, and the checks of its pseudo-labels
    assert [j.key for j in queued] == ["round0:metrics:1", "round0:qc:predictions:1"]


def test_a_failed_step_fails_the_round_and_resume_takes_it_up(phantoms, queued):
    round0 = rounds.start_round(archs=["unet"], steps=1, click=False)
    queued.clear()
    Job.objects.filter(kind=Job.Kind.TRAIN).update(status=Job.Status.FAILED, error="boom")
    rounds.fail(round_id=round0.pk, reason="round0:train:unet: boom")
    round0.refresh_from_db()
    assert round0.status == Round.Status.FAILED and "boom" in round0.error
    with pytest.raises(Conflict, match="no round is training"):
        rounds.cancel_round()
    round0, n = rounds.resume_round()
    assert (round0.status, n) == (Round.Status.TRAINING, 1) and [j.key for j in queued] == ["round0:train:unet"]
    assert Job.objects.get(kind=Job.Kind.TRAIN).status == Job.Status.QUEUED


def test_progress_is_written_at_most_once_an_interval(phantoms, queued):
    rounds.start_round(archs=["unet"], steps=1, click=False)
    Job.objects.update(status=Job.Status.RUNNING)  # progress lands only on a running job
    job = Job.objects.get()
    now = [0.0]
    report = jobs.progress_reporter(job, interval=1.0, clock=lambda: now[0])
    writes = []
    for step in range(1, 21):
        now[0] = step * 0.25  # 4 reports a second for 5 s
        report(step / 40, f"step {step}")
        job.refresh_from_db()
        writes.append(job.message)
    assert sorted(set(writes)) == ["step 1", "step 13", "step 17", "step 5", "step 9"]  # t = 0.25, 1.25, ... 4.25
    report(1.0, "done")  # the last one always lands
    job.refresh_from_db()
    assert (job.progress, job.message) == (1.0, "done")
