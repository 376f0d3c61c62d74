"""Training (round 0) or fine-tuning (later rounds) one architecture of a round: the round's TRAIN job.

Without a labelled case nothing is fine-tuned: round 0 takes the shipped checkpoint as it is (when there is one for
the label set's organs), a later round keeps the architecture's latest model, and otherwise the architecture sits
the round out; the round then infers with the members it has (services.rounds).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import Q

from annotation.ml_adapter.training import adopt_shipped, adopt_start, train_architecture
from annotation.models import Case, Job, LabelSet, ModelVersion
from annotation.selectors.labels import label_to_train_on, revisions
from annotation.selectors.members import registered_start
from annotation.selectors.rounds import holdout_cases, round_cases


def labelled(cases) -> list[tuple]:
    """(case, LabelRef) for the cases that have a label to train on (selectors.labels)."""
    return [(case, ref) for case in cases if (ref := label_to_train_on(case)) is not None]


def any_labelled(label_set: LabelSet) -> bool:
    """Whether some case of the label set has a label to train on: an imported label or a revision that counts."""
    return Case.objects.filter(dataset__label_set=label_set).filter(
        Q(source_labels__isnull=False) | Q(pk__in=revisions().values("case_id"))).exists()


def train_job(job: Job, progress: Callable[[float, str], None]) -> ModelVersion | None:
    """Train job.arch for job.round from its parent (the same arch and size in the latest earlier round; round 0:
    the shipped checkpoint), on every labelled case of the round but the held-out ones; record the ModelVersion.

    No labelled case: the parent (or round 0: the shipped checkpoint) joins the round unchanged; None when neither
    exists.
    """
    round = job.round
    size = round.settings.get("size", "tiny")
    parent = (ModelVersion.objects.filter(rounds__number__lt=round.number, arch=job.arch, size=size)
              .order_by("-rounds__number").first()) or registered_start(job.arch, size, round.label_set)
    name = f"round{round.number}-{job.arch}-{size}"
    storage_name = f"models/{name}.pt"
    holdout = holdout_cases(round)
    cases = labelled(round_cases(round).exclude(pk__in=[c.pk for c in holdout]))
    if not cases:
        return _without_labels(job, parent=parent, name=name, size=size, storage_name=storage_name,
                               progress=progress)
    meta = train_architecture(
        arch=job.arch, size=size, organs=round.label_set.organ_names(), values=round.label_set.organ_values(),
        cases=cases, holdout=labelled(holdout),
        parent=parent, steps=round.settings.get("steps"), epochs=round.settings.get("epochs"),
        seed=int(round.settings.get("seed", 0)), storage_name=storage_name, progress=progress)
    with transaction.atomic():
        version, _ = ModelVersion.objects.update_or_create(
            name=name, defaults={"arch": job.arch, "size": size, "checkpoint": storage_name, "parent": parent,
                                 "metadata": {**meta, "round": round.number, "fine_tuned": True,
                                              **_carried(parent)}})
        round.members.add(version)
    return version


def _carried(parent: ModelVersion | None) -> dict:
    """What a model inherits from its parent: the provenance of published weights, and that it comes from a start."""
    if parent is None:
        return {}
    meta = parent.metadata
    out = {"provenance": meta["provenance"]} if meta.get("provenance") else {}
    if meta.get("start") or meta.get("from_start"):
        out["from_start"] = meta.get("from_start") or parent.name
    return out


def _without_labels(job: Job, *, parent: ModelVersion | None, name: str, size: str, storage_name: str,
                    progress: Callable[[float, str], None]) -> ModelVersion | None:
    round = job.round
    if parent is not None and parent.metadata.get("start"):  # a registered start, as it is
        adopt_start(start=parent, storage_name=storage_name)
        with transaction.atomic():
            version, _ = ModelVersion.objects.update_or_create(
                name=name, defaults={"arch": job.arch, "size": size, "checkpoint": storage_name, "parent": parent,
                                     "metadata": {"round": round.number, "fine_tuned": False, "training_cases": [],
                                                  "parent": parent.name, **_carried(parent)}})
            round.members.add(version)
        progress(1.0, f"no labelled case: the registered start {parent.name}, not fine-tuned")
        return version
    if parent is not None:
        round.members.add(parent)
        progress(1.0, f"no labelled case: {parent.name} kept, not fine-tuned")
        return parent
    meta = adopt_shipped(arch=job.arch, size=size, organs=round.label_set.organ_names(),
                                    storage_name=storage_name)
    if meta is None:
        progress(1.0, f"no labelled case and no shipped {job.arch} {size} checkpoint for these organs: skipped")
        return None
    with transaction.atomic():
        version, _ = ModelVersion.objects.update_or_create(
            name=name, defaults={"arch": job.arch, "size": size, "checkpoint": storage_name, "parent": None,
                                 "metadata": {**meta, "round": round.number}})
        round.members.add(version)
    progress(1.0, f"no labelled case: the shipped {job.arch} {size} checkpoint, not fine-tuned")
    return version
