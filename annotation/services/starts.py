"""Starting weights for an architecture of the ensemble: a published checkpoint (SuPreM, a MONAI bundle) or an Atlas
checkpoint, registered by the admin and taken by the next round 0 of its label set as that architecture's parent,
instead of the phantom-trained `tiny` checkpoint. The network, its spacing, patch and intensity window come from the
publisher and are recorded beside the weights; so are its source, licence and citation.

A registered start is a ModelVersion of the architecture (name `start-<arch>-<size>-<label set>`) that belongs to
no round; round 0 (or a later round with no earlier model of that architecture and size) fine-tunes it, or without a
labelled case takes it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from annotation.errors import Invalid
from annotation.ml_adapter.starts import published_provenance, store_start
from annotation.models import LabelSet, ModelVersion
from annotation.services.members import provenance, read_label_map
from ml_engine.networks import ARCHITECTURES, SIZES
from ml_engine.starts import FORMATS

__all__ = ["ARCHITECTURES", "FORMATS", "SIZES", "RegisteredStart", "register_start", "start_name"]

DEFAULT_MAPS = {"suprem": "suprem"}  # SuPreM's 25 classes; a bundle's classes go by their names or a given map


@dataclass
class RegisteredStart:
    version: ModelVersion
    report: list[str]
    created: bool


def start_name(arch: str, size: str, label_set: str) -> str:
    return f"start-{arch}-{size}-{label_set}"


def register_start(*, arch: str, weights: str | Path, size: str = "base", format: str = "suprem",
                   label_map: str | Path | None = None, label_set: str = "abdomenatlas", source: str | None = None,
                   licence: str | None = None, citation: str | None = None,
                   patch: tuple[int, int, int] | None = None) -> RegisteredStart:
    """Convert a published checkpoint into `arch`'s start at `size` for the label set, store it and record it (with
    its network, preprocessing, the load report and provenance). Registering again replaces the start.

    Invalid naming the field or the file (an unknown arch, size or format; a file that is not that format; a
    network that cannot take the slot; a label map that lands no class on an organ). patch: training and
    sliding-window patch instead of the publisher's (a smaller GPU; every side a multiple of the network's divisor).
    """
    if arch not in ARCHITECTURES:
        raise Invalid(f"{arch!r}; choose from {', '.join(ARCHITECTURES)}", field="arch")
    if size not in SIZES:
        raise Invalid(f"{size!r}; choose from {', '.join(SIZES)}", field="size")
    if format not in FORMATS:
        raise Invalid(f"{format!r}; choose from {', '.join(FORMATS)}", field="format")
    if patch is not None and (len(patch) != 3 or min(patch) < 1):
        raise Invalid(f"{patch}: three positive sizes x y z", field="patch")
    if format != "atlas" and size != "base":
        raise Invalid("a published checkpoint starts the base size (its network is the publisher's)", field="size")
    path = Path(weights).resolve()
    if not path.exists():
        raise Invalid(f"{path}: no such file or folder", field="weights")
    labels = LabelSet.objects.filter(name=label_set).first()
    if labels is None:
        raise Invalid(f"label set {label_set!r} does not exist", field="label_set")
    organs = labels.organ_index()
    raw_map = read_label_map(label_map or DEFAULT_MAPS.get(format), organs)
    name = start_name(arch, size, labels.name)
    storage_name = f"models/starts/{name}.pt"
    record, report = store_start(path=path, arch=arch, format=format, organs=organs, label_map=raw_map,
                                 storage_name=storage_name, patch=patch)
    found = published_provenance(path=path, format=format)
    metadata = {"start": True, "label_set": labels.name, "format": format, "weights": str(path),
                "label_map": raw_map, "organs": list(organs.organs), **record,
                "provenance": provenance(given={"source": source, "licence": licence, "citation": citation},
                                         found=found)}
    with transaction.atomic():
        version, created = ModelVersion.objects.update_or_create(
            name=name, defaults={"arch": arch, "size": size, "checkpoint": storage_name, "parent": None,
                                 "metadata": metadata})
    return RegisteredStart(version=version, report=report, created=created)
