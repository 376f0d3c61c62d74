"""A published checkpoint turned into an architecture's start (ml_engine.starts) and stored as an Atlas checkpoint."""

from __future__ import annotations

import tempfile
from pathlib import Path

from annotation.errors import Invalid, engine_refusals
from annotation.ml_adapter.members import _member_label_map
from annotation.storage import store_file
from ml_engine.labels import OrganIndex
from ml_engine.starts import convert_start
from ml_engine.starts.families import family_divisor
from ml_engine.train.checkpoint import save_checkpoint


def store_start(*, path: str | Path, arch: str, format: str, organs: OrganIndex, label_map: dict | None,
                storage_name: str, patch: tuple[int, int, int] | None = None) -> tuple[dict, list[str]]:
    """Convert the file and store the start under storage_name: (what to record, the report's lines). Invalid naming
    the file when it cannot be used. patch: the training and sliding-window patch instead of the publisher's."""
    with engine_refusals():
        checkpoint, report = convert_start(path, arch=arch, format=format, organs=organs,
                                           label_map=_member_label_map(label_map, organs, "the label map"))
    if patch is not None:
        divisor = family_divisor(checkpoint.network or {"family": arch})
        if any(int(p) < divisor or int(p) % divisor for p in patch):
            raise Invalid(f"{list(patch)}: every side must be a multiple of {divisor} for this network", field="patch")
        report.notes.append(f"patch {list(patch)} instead of the publisher's {list(checkpoint.patch)}")
        checkpoint.patch = tuple(int(p) for p in patch)
    with tempfile.TemporaryDirectory(prefix="atlas-start-") as tmp:
        store_file(storage_name, save_checkpoint(Path(tmp) / "start.pt", checkpoint))
    record = {"network": checkpoint.network, "spacing": list(checkpoint.spacing), "patch": list(checkpoint.patch),
              "hu_window": list(checkpoint.hu_window), "report": report.as_dict(), "size": checkpoint.size}
    return record, report.lines()


def published_provenance(*, path: str | Path, format: str) -> dict:
    """What a publisher's file says about its source, licence and citation (SuPreM's are known; a bundle's
    metadata); {} for an Atlas checkpoint."""
    if format == "atlas":
        return {}
    from ml_engine.starts import read_published

    with engine_refusals():
        return read_published(path, format).provenance
