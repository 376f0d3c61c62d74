"""Registering models a group already has as ensemble members that Atlas runs itself and never fine-tunes: a trained
nnU-Net v2 model folder, a MONAI bundle folder (run by its own inference config: trusted code the operator chose), or
TotalSegmentator (where its package and weights are installed). Each records its source, licence and citation
(`provenance`): entered at registration, or read from a bundle's metadata.

A registered member joins every round of its label set started after it was registered (round 0 included, which it
can make on its own) until it is unregistered. Its votes are computed in the round's inference jobs, on the `gpu`
queue when there are GPU workers; its folder must be readable at the same path on the workers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from annotation.errors import Invalid, NotFound, engine_refusals
from annotation.ml_adapter.members import check_member
from annotation.models import LabelSet, ModelVersion
from annotation.services.imports.labels import OrganIndex
from ml_engine.labels import LabelMap
from ml_engine.members import MemberInfo, MemberSpec
from ml_engine.networks import ARCHITECTURES

MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
KINDS = tuple(ModelVersion.REGISTERED)


def check_member_name(name: str, *, kind: str) -> None:
    """A member's name becomes a folder name (backbones/<name>/); Invalid unless safe and not a trained arch's."""
    if not MEMBER_NAME.match(name) or name in ARCHITECTURES:
        raise Invalid(f"{name!r} must be 1-64 letters, digits, '.', '_' or '-', and not one of the trained "
                      f"architectures ({', '.join(ARCHITECTURES)})", field="name" if kind != "external" else "model")
    existing = ModelVersion.objects.filter(name=name).first()
    if existing is not None and existing.arch != kind:
        what = (f"a trained model ({existing.arch})" if existing.arch in ModelVersion.TRAINED
                else f"a member of another kind ({existing.arch})")
        raise Invalid(f"{name!r} is the name of {what}", field="name" if kind != "external" else "model")


def read_label_map(spec: str | Path | None, organs: OrganIndex) -> dict | None:
    """A label map's JSON, checked against the label set (a file, a shipped map's name, or the label set's own name);
    None for none. Stored with the member, so that workers need not see the admin's file."""
    if spec is None:
        return None
    with engine_refusals(field="label_map"):
        mapping = LabelMap.load(spec, organs)
    if str(spec) == organs.name:
        return {str(value): organ for organ, value in organs.values.items()}
    return json.loads(Path(mapping.source).read_text(encoding="utf-8"))


@dataclass
class Registered:
    version: ModelVersion
    info: MemberInfo
    created: bool


TOTALSEG_PROVENANCE = {"source": "TotalSegmentator (https://github.com/wasserth/TotalSegmentator)",
                      "licence": "Apache-2.0 (code and the open `total` weights; some other tasks need a licence)",
                      "citation": "Wasserthal J, et al. TotalSegmentator: Robust Segmentation of 104 Anatomic "
                                  "Structures in CT Images. Radiology: Artificial Intelligence 2023."}


def provenance(*, given: dict | None, found: dict | None = None) -> dict:
    """Source, licence and citation: what the admin entered, else what the model says about itself (a bundle's
    metadata), else "not given"."""
    given, found = given or {}, found or {}
    return {key: str(given.get(key) or found.get(key) or "not given") for key in ("source", "licence", "citation")}


def register_member(*, name: str, kind: str, folder: str | Path | None = None, task: str | None = None,
                    label_map: str | Path | None = None, label_set: str = "abdomenatlas",
                    folds: list[str] | None = None, checkpoint: str = "checkpoint_final.pth",
                    disable_tta: bool = False, tile_step_size: float = 0.5,
                    source: str | None = None, licence: str | None = None, citation: str | None = None
                    ) -> Registered:
    """Register (or update) a member: checked here first (package, weights, folder, label map), then stored.

    nnunetv2: folder is the trained model folder (TRAINER__PLANS__CONFIGURATION); folds default to every fold_N;
    tile_step_size and mirroring (TTA, on unless disable_tta) as nnU-Net's predictor takes them. monai-bundle: folder
    is the bundle (configs/inference.json, configs/metadata.json, models/model.pt). totalsegmentator:
    task "total" or "fast". label_map: its classes' values or names -> organs (default: the class names and the
    label set's aliases; TotalSegmentator: the shipped `totalsegmentator` map). source, licence, citation: recorded
    with the member and shown wherever it is (default: a bundle's metadata, TotalSegmentator's own).
    """
    if kind not in KINDS:
        raise Invalid(f"{kind!r}; choose from {', '.join(KINDS)}", field="kind")
    check_member_name(name, kind=kind)
    labels = LabelSet.objects.filter(name=label_set).first()
    if labels is None:
        raise Invalid(f"label set {label_set!r} does not exist", field="label_set")
    if kind == ModelVersion.Arch.NNUNETV2:
        if not folder:
            raise Invalid("an nnU-Net v2 member needs the trained model folder", field="folder")
        if not 0.0 < tile_step_size <= 1.0:
            raise Invalid(f"must be above 0 and at most 1, got {tile_step_size}", field="tile_step_size")
        spec = MemberSpec(kind=kind, folder=str(Path(folder).resolve()), folds=tuple(folds) if folds else None,
                          checkpoint=checkpoint, tile_step_size=tile_step_size, use_mirroring=not disable_tta)
    elif kind == ModelVersion.Arch.MONAI_BUNDLE:
        if not folder:
            raise Invalid("a MONAI bundle member needs the bundle's folder", field="folder")
        spec = MemberSpec(kind=kind, folder=str(Path(folder).resolve()))
    else:
        if folder:
            raise Invalid("TotalSegmentator takes --task, not a folder (its weights live where it keeps them)",
                          field="folder")
        spec = MemberSpec(kind=kind, task=task or "total")
    organs = labels.organ_index()
    raw_map = read_label_map(label_map, organs)
    info = check_member(spec=spec, organs=organs, label_map=raw_map)
    found = info.detail.pop("provenance", None) or (TOTALSEG_PROVENANCE if kind == "totalsegmentator" else None)
    metadata = {"provenance": provenance(given={"source": source, "licence": licence, "citation": citation},
                                         found=found),
                "registered": True, "fine_tuned": False, "label_set": labels.name, "spec": spec.as_dict(),
                "label_map": raw_map, "organs": info.organs,
                "classes": {str(v): n for v, n in info.classes.items()},
                "organ_of": {str(v): o for v, o in info.organ_of.items()}, "detail": info.detail}
    with transaction.atomic():
        version, created = ModelVersion.objects.update_or_create(
            name=name, defaults={"arch": kind, "size": "", "checkpoint": "", "metadata": metadata})
    return Registered(version=version, info=info, created=created)


def unregister_member(*, name: str) -> ModelVersion:
    """Later rounds leave the member out; the rounds it made keep it."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(name=name, arch__in=KINDS).first()
        if version is None:
            raise NotFound(f"no registered member named {name!r}", field="name")
        version.metadata = {**version.metadata, "registered": False}
        version.save(update_fields=["metadata"])
    return version
