"""Split inference (ATLAS_GPU_WORKERS on): the infer job, on the GPU queue, only runs the members and stores their
votes; the case's attend job, on the default queue, combines them, writes the pseudo-label and attention and records
the prediction. Jobs run in this process here; tests/integration/test_gpu_queue.py runs the two queues' workers."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from annotation import ml_adapter
from annotation.models import Job, OrganAttention, Prediction, Round
from annotation.services import dispatch, ensemble, jobs, rounds
from annotation.storage import read_volume
from tests.annotation import loop
from tests.annotation.loop import import_phantoms

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def phantoms(tmp_path):
    return import_phantoms(tmp_path / "src", first_seed=300, prefix="sp", dataset="split", n=3)


def _assert_same_file(stored_name: str, local_path) -> None:
    from ml_engine.io import load_nifti

    stored, local = read_volume(stored_name), load_nifti(local_path)
    assert np.array_equal(np.asarray(stored.data), np.asarray(local.data)), stored_name
    assert np.allclose(stored.affine, local.affine), stored_name


def test_the_split_path_records_what_the_one_step_path_does(settings, phantoms, tmp_path):
    settings.ATLAS_GPU_WORKERS = True
    round0 = rounds.start_round(archs=["unet"], steps=2)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error
    attend = Job.objects.filter(round=round0, kind=Job.Kind.ATTEND)
    assert attend.count() == 3 and set(attend.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}
    assert set(attend.values_list("attempts", flat=True)) == {1}

    versions = list(round0.members.all())
    for prediction in Prediction.objects.filter(round=round0).select_related("case"):
        one_step = ml_adapter.infer_case(case=prediction.case, versions=versions,
                                         workdir=tmp_path / prediction.case.name)
        _assert_same_file(prediction.pseudo_label.name, one_step.pseudo_label)
        _assert_same_file(prediction.heatmap.name, one_step.heatmap)
        # the votes' list is named by the row (reconcile_media keeps it; the S3 test finds every stored file named)
        assert prediction.files["votes"] == ensemble.votes_manifest(prediction.case, round0)
        assert set(prediction.files["attention"]) == set(one_step.attention)
        for organ, path in one_step.attention.items():
            _assert_same_file(prediction.files["attention"][organ], path)
        for member, per_organ in one_step.soft_pred.items():
            for organ, path in per_organ.items():
                _assert_same_file(prediction.files["soft_pred"][member][organ], path)
        rows = {a.organ.name: a for a in OrganAttention.objects.filter(round=round0, case=prediction.case)
                .select_related("organ")}
        assert set(rows) == {o.organ for o in one_step.organs}
        for organ in one_step.organs:
            assert rows[organ.organ].size_ml == pytest.approx(organ.size_ml)
            assert rows[organ.organ].voxels == organ.voxels and rows[organ.organ].hotspots == organ.hotspots


def test_the_infer_job_stores_only_votes_and_the_step_waits_for_attend(settings, phantoms):
    settings.ATLAS_GPU_WORKERS = True
    settings.ATLAS_JOB_ENQUEUE = "tests.annotation.loop.collect"
    loop.QUEUED.clear()
    round0 = rounds.start_round(archs=["unet"], steps=2, click=False)  # the click model's job: test_rounds
    (train,) = loop.QUEUED
    loop.QUEUED.clear()
    assert jobs.run_job(train.pk) == Job.Status.SUCCEEDED
    infer = list(loop.QUEUED)
    assert {j.kind for j in infer} == {Job.Kind.INFER} and len(infer) == 3
    loop.QUEUED.clear()

    first = infer[0]
    assert jobs.run_job(first.pk) == Job.Status.SUCCEEDED
    # the heavy job wrote the votes and their manifest, and nothing of the pseudo-label or the attention
    assert not Prediction.objects.filter(round=round0).exists()
    assert not OrganAttention.objects.filter(round=round0).exists()
    manifest = ensemble.votes_manifest(first.case, round0)
    assert default_storage.exists(manifest)
    folder = manifest.rsplit("/backbones/", 1)[0]
    assert not default_storage.exists(f"{folder}/average/pseudo_label.nii.gz")
    assert not default_storage.exists(f"{folder}/average/attention.nii.gz")
    assert default_storage.exists(f"{folder}/backbones/unet/soft_pred/liver.nii.gz")
    (attend,) = loop.QUEUED
    assert attend.kind == Job.Kind.ATTEND and attend.case_id == first.case_id
    assert dispatch.queue_for(attend) == settings.CELERY_TASK_DEFAULT_QUEUE  # not the GPU queue
    loop.QUEUED.clear()

    for job in infer[1:]:
        assert jobs.run_job(job.pk) == Job.Status.SUCCEEDED
    # every infer job succeeded, but attend jobs wait: the round is still inferring
    assert Round.objects.get(pk=round0.pk).status == Round.Status.INFERRING
    pending = list(loop.QUEUED)
    assert len(pending) == 2 and {j.kind for j in pending} == {Job.Kind.ATTEND}
    loop.QUEUED.clear()

    # an attend job that fails fails the round; resume_round queues it again, and the round goes on
    default_storage.delete(manifest)
    assert jobs.run_job(attend.pk) == Job.Status.FAILED
    round0.refresh_from_db()
    assert round0.status == Round.Status.FAILED and "no stored votes" in round0.error
    settings.ATLAS_JOB_ENQUEUE = "tests.annotation.loop.inline"
    assert jobs.run_job(first.pk) == Job.Status.SUCCEEDED  # succeeded: not run again, the manifest stays missing
    Job.objects.filter(pk=first.pk).update(status=Job.Status.FAILED)  # as if its worker had lost the votes
    _, queued = rounds.resume_round(round=round0)
    assert queued == 3  # the infer job (which queues its attend job once it has stored the votes again) and the other
    # two attend jobs
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error
    assert Prediction.objects.filter(round=round0).count() == 3
    assert Job.objects.get(pk=first.pk).attempts == 2
    assert set(Job.objects.filter(round=round0, kind=Job.Kind.INFER).exclude(pk=first.pk)
               .values_list("attempts", flat=True)) == {1}


def test_a_round_cancelled_after_the_votes_queues_no_attend_job(settings, phantoms):
    settings.ATLAS_GPU_WORKERS = True
    settings.ATLAS_JOB_ENQUEUE = "tests.annotation.loop.collect"
    loop.QUEUED.clear()
    round0 = rounds.start_round(archs=["unet"], steps=2, click=False)
    assert jobs.run_job(loop.QUEUED[0].pk) == Job.Status.SUCCEEDED
    first, second = loop.QUEUED[1:3]
    loop.QUEUED.clear()
    assert jobs.run_job(first.pk) == Job.Status.SUCCEEDED
    (attend,) = loop.QUEUED
    rounds.cancel_round(round=round0)
    assert Job.objects.get(pk=attend.pk).status == Job.Status.CANCELLED
    assert jobs.run_job(attend.pk) == Job.Status.CANCELLED  # a late delivery does nothing
    ensemble.stage_case(second.case, round0)  # an infer job that was running when the round was cancelled
    assert rounds.queue_attend(Job.objects.select_related("round").get(pk=second.pk)) is None
    assert not Job.objects.filter(round=round0, kind=Job.Kind.ATTEND, case=second.case).exists()
    assert not Prediction.objects.filter(round=round0).exists()
    loop.QUEUED.clear()


def test_without_gpu_workers_one_job_per_case(settings, phantoms):
    settings.ATLAS_GPU_WORKERS = False
    round0 = rounds.start_round(archs=["unet"], steps=2)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error
    assert not Job.objects.filter(round=round0, kind=Job.Kind.ATTEND).exists()
    assert Prediction.objects.filter(round=round0).count() == 3
