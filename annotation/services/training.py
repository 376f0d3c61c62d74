"""Training (round 0) or fine-tuning (later rounds) one architecture of a round: the round's TRAIN job."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from annotation import ml_adapter
from annotation.models import Job, ModelVersion
from annotation.selectors.labels import label_to_train_on
from annotation.selectors.rounds import holdout_cases, round_cases


def labelled(cases) -> list[tuple]:
    """(case, LabelRef) for the cases that have a label to train on (selectors.labels)."""
    return [(case, ref) for case in cases if (ref := label_to_train_on(case)) is not None]


def train_job(job: Job, progress: Callable[[float, str], None]) -> ModelVersion:
    """Train job.arch for job.round from its parent (the same arch and size in the latest earlier round; round 0:
    the shipped checkpoint), on every labelled case of the round but the held-out ones; record the ModelVersion."""
    round = job.round
    size = round.settings.get("size", "tiny")
    parent = (ModelVersion.objects.filter(rounds__number__lt=round.number, arch=job.arch, size=size)
              .order_by("-rounds__number").first())
    name = f"round{round.number}-{job.arch}-{size}"
    storage_name = f"models/{name}.pt"
    holdout = holdout_cases(round)
    meta = ml_adapter.train_architecture(
        arch=job.arch, size=size, organs=round.label_set.organ_names(), values=round.label_set.organ_values(),
        cases=labelled(round_cases(round).exclude(pk__in=[c.pk for c in holdout])), holdout=labelled(holdout),
        parent=parent, steps=round.settings.get("steps"), epochs=round.settings.get("epochs"),
        seed=int(round.settings.get("seed", 0)), storage_name=storage_name, progress=progress)
    with transaction.atomic():
        version, _ = ModelVersion.objects.update_or_create(
            name=name, defaults={"arch": job.arch, "size": size, "checkpoint": storage_name, "parent": parent,
                                 "metadata": meta})
        round.members.add(version)
    return version
