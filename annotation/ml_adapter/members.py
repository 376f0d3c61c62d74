"""Members that are not Atlas's networks: registered ones (ml_engine.members: an nnU-Net v2 folder,
TotalSegmentator), checked and run once loaded per worker process, and external ones (another tool's stored label
maps) as votes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from django.core.files.storage import default_storage

from annotation.errors import engine_refusals
from annotation.models import Case, ModelVersion
from annotation.storage import read_voxels
from ml_engine.ensemble import member_votes
from ml_engine.labels import LabelMap, OrganIndex
from ml_engine.members import MemberInfo, MemberSpec, inspect_member, load_member


def external_label_name(case: Case, model: str) -> str:
    """Storage name of an external tool's label map for a case, converted to the label set's values."""
    return f"{Path(case.ct_file.name).parent.as_posix()}/external/{model}/label.nii.gz"


def external_soft(case: Case, version: ModelVersion) -> dict[str, np.ndarray]:
    """An external member's votes on a case: {organ: uint8 0 or 255} for the organs its label map covers.

    Empty when the tool gave no prediction for this case.
    """
    name = external_label_name(case, version.name)
    if not default_storage.exists(name):
        return {}
    values = case.dataset.label_set.organ_values()
    return member_votes(read_voxels(name), values, [o for o in version.metadata.get("organs") or values if o in values])


def _member_label_map(raw: dict | None, organs: OrganIndex, source: str) -> LabelMap | None:
    with engine_refusals(field="label_map"):
        return None if raw is None else LabelMap.parse(raw, organs, source=source)


def check_member(*, spec: MemberSpec, organs: OrganIndex, label_map: dict | None) -> MemberInfo:
    """What a member to register predicts, checked on this machine (package, weights, folder, label map); Invalid
    naming the problem otherwise. label_map: the map's JSON (None: the classes' names, or TotalSegmentator's map)."""
    with engine_refusals():
        return inspect_member(spec, organs, _member_label_map(label_map, organs, "the label map"))


_MEMBERS: dict[tuple[int, str], object] = {}


def registered_votes(version: ModelVersion, ct: np.ndarray, affine: np.ndarray, organs: OrganIndex
                     ) -> dict[str, np.ndarray]:
    """A registered member (ml_engine.members) run on a CT: {organ: (x, y, z) uint8 p x 255}. Loaded once per worker
    process. MemberError when it cannot run on this worker (say, the package or weights are missing here)."""
    meta = version.metadata
    key = (version.pk, repr(sorted(meta.items())))
    if key not in _MEMBERS:
        for stale in [k for k in _MEMBERS if k[0] == version.pk]:
            del _MEMBERS[stale]
        label_map = _member_label_map(meta.get("label_map"), organs, f"{version.name}'s label map")
        _MEMBERS[key] = load_member(MemberSpec.from_dict(meta["spec"]), organs, label_map)
    return _MEMBERS[key].votes(ct, affine)
