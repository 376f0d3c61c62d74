"""Automatic quality checks (ml_engine.quality) on every revision as it lands and on a round's pseudo-labels once it
is ranked, as QC jobs; their findings are QualityFlag rows that the review queue, the workspace and a CSV show.

Volume ranges come from the dataset itself (median and robust scale of the latest checked volumes of its cases, once
there are enough), else from AbdomenAtlas-like adult defaults.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
from django.db import transaction

from annotation.figures import round_ml
from annotation.models import Job, LabelCheck, Organ, Prediction, QualityFlag, Revision, Round
from annotation.services import read_agreement
from annotation.services.dispatch import enqueue
from annotation.storage import read_volume, read_voxels
from ml_engine.quality import check_label, robust_range


def request_revision_check(revision: Revision) -> Job:
    """Queue the checks of a revision that just landed (call inside the transaction that stores it)."""
    round = revision.task.round
    job, created = Job.objects.get_or_create(key=f"round{round.number}:qc:revision{revision.pk}",
                                             defaults={"kind": Job.Kind.QC, "round": round, "revision": revision,
                                                       "case_id": revision.case_id})
    if created:
        enqueue([job])
    return job


def request_prediction_checks(round: Round) -> Job:
    """Queue the checks of the round's pseudo-labels (after its ranking); a queued one is reused."""
    waiting = round.jobs.filter(kind=Job.Kind.QC, revision__isnull=True, status=Job.Status.QUEUED).first()
    if waiting is not None:
        return waiting
    n = round.jobs.filter(kind=Job.Kind.QC, revision__isnull=True).count()
    job = Job.objects.create(key=f"round{round.number}:qc:predictions:{n + 1}", kind=Job.Kind.QC, round=round)
    enqueue([job])
    return job


def qc_job(job: Job, progress: Callable[[float, str], None]) -> None:
    """The QC job's work: one revision, or every pseudo-label of the round."""
    if job.revision_id is not None:
        check_revision(job.revision)
        read_agreement.update_agreement(job.revision)  # a read of a double read: the two reads' agreement
    else:
        check_predictions(job.round, progress=progress)


def volume_ranges(dataset_id: int, *, exclude_case: int | None = None) -> dict[str, tuple[float, float]]:
    """{organ: (median, scale)} in mL over the latest checked label of each case of the dataset (robust_range)."""
    latest: dict[int, dict] = {}
    for case_id, volumes in (LabelCheck.objects.filter(case__dataset_id=dataset_id).exclude(case_id=exclude_case)
                             .order_by("case_id", "created").values_list("case_id", "volumes")):
        latest[case_id] = volumes
    per_organ: dict[str, list[float]] = defaultdict(list)
    for volumes in latest.values():
        for organ, ml in volumes.items():
            if ml > 0:
                per_organ[organ].append(float(ml))
    return {organ: found for organ, values in per_organ.items() if (found := robust_range(values)) is not None}


def _organs(case) -> dict[str, int]:
    return case.dataset.label_set.organ_values()


def _store(*, case, round: Round, key: str, volumes: dict, flags, revision: Revision | None = None,
           prediction: Prediction | None = None) -> LabelCheck:
    organ_ids = dict(Organ.objects.filter(label_set=case.dataset.label_set_id).values_list("name", "pk"))
    with transaction.atomic():
        source = {"revision": revision} if revision is not None else {"prediction": prediction}
        check, _ = LabelCheck.objects.update_or_create(**source, defaults={"case": case, "round": round, "key": key,
                                                                           "volumes": volumes})
        check.flags.all().delete()
        QualityFlag.objects.bulk_create([QualityFlag(label_check=check, organ_id=organ_ids[f.organ], kind=f.check,
                                                     reason=f.reason, detail=f.detail) for f in flags])
    return check


def check_revision(revision: Revision) -> LabelCheck:
    """Check a revision against the label it replaced (its parent, else the round's pseudo-label)."""
    case = revision.case
    round = revision.task.round
    ct = read_volume(case.ct_file.name)
    label = read_voxels(revision.label_file.name)
    if revision.parent_id is not None:
        previous = read_voxels(revision.parent.label_file.name)
    else:
        prediction = Prediction.objects.filter(case=case, round=round).first()
        previous = read_voxels(prediction.pseudo_label.name) if prediction is not None else None
    flags, volumes = check_label(label, ct.affine, _organs(case), ct=np.asarray(ct.data), previous=previous,
                                 volume_ranges=volume_ranges(case.dataset_id, exclude_case=case.pk))
    return _store(case=case, round=round, key=f"revision{revision.pk}", volumes=volumes, flags=flags,
                  revision=revision)


def _prediction_key(prediction: Prediction) -> str:
    return f"prediction{prediction.pk}@{prediction.updated.timestamp():.6f}"


def check_predictions(round: Round, *, progress: Callable[[float, str], None] | None = None) -> int:
    """Check every pseudo-label of the round not checked as it is now. Volumes first (so that the ranges include
    this round's cases), then the checks. Returns how many were checked."""
    predictions = [p for p in Prediction.objects.filter(round=round).select_related("case__dataset__label_set")
                   .order_by("case_id")
                   if not LabelCheck.objects.filter(prediction=p, key=_prediction_key(p)).exists()]
    for prediction in predictions:  # the volumes alone, cheap: a bincount of the label
        organs = _organs(prediction.case)
        label = read_voxels(prediction.pseudo_label.name)
        voxel_ml = abs(float(np.linalg.det(np.asarray(prediction.case.affine)[:3, :3]))) / 1000.0
        counts = np.bincount(label.ravel(), minlength=max(organs.values()) + 1)
        LabelCheck.objects.update_or_create(prediction=prediction, defaults={
            "case": prediction.case, "round": round, "key": "volumes only",
            "volumes": {o: round_ml(counts[v] * voxel_ml) for o, v in organs.items()}})
    for i, prediction in enumerate(predictions):
        case = prediction.case
        ct = read_volume(case.ct_file.name)
        flags, volumes = check_label(read_voxels(prediction.pseudo_label.name), ct.affine, _organs(case),
                                     ct=np.asarray(ct.data), volume_ranges=volume_ranges(case.dataset_id,
                                                                                         exclude_case=case.pk))
        _store(case=case, round=round, key=_prediction_key(prediction), volumes=volumes, flags=flags,
               prediction=prediction)
        if progress is not None:
            progress((i + 1) / len(predictions), f"case {i + 1}/{len(predictions)}")
    return len(predictions)

