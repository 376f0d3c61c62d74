"""Ensemble members that Atlas runs but never trains: models a group already has.

- `nnunetv2`: a trained nnU-Net v2 model folder (nnUNet_results/DatasetXXX_NAME/TRAINER__PLANS__CONFIG), run with
  nnunetv2's own predictor (its preprocessing, sliding window and mirroring TTA). Its per-class probabilities become
  soft votes (uint8, p x 255) for the organs a label map maps its classes to.
- `monai-bundle`: a MONAI bundle folder run by its own inference config (monai.bundle.ConfigParser): trusted code
  chosen by the operator; soft votes through a label map, as for nnU-Net.
- `totalsegmentator`: TotalSegmentator through its Python API when the package and its weights are installed on the
  machine; its label map becomes 0 / 255 votes through the shipped `totalsegmentator` label map.

Both are loaded once per process (`load_member`) and called per case with the CT (x, y, z) and its affine (4, 4);
they return {organ: (x, y, z) uint8} on the CT's grid. A member that cannot run here raises MemberError, whose text
names the folder or package and the problem. No Django here: the platform's adapter calls these.

What the kinds share lives in common.py, which they import; this module imports them (never the other way round).
"""

from __future__ import annotations

from ml_engine.labels import LabelMap, OrganIndex
from ml_engine.members.common import KINDS, MemberError, MemberInfo, MemberSpec, map_classes, organ_votes

__all__ = ["KINDS", "MemberError", "MemberInfo", "MemberSpec", "inspect_member", "load_member", "map_classes",
           "organ_votes"]


def inspect_member(spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None) -> MemberInfo:
    """Check that the member can run on this machine and what it predicts; MemberError otherwise. Loads no weights."""
    if spec.kind == "nnunetv2":
        from ml_engine.members import nnunet

        return nnunet.inspect(spec, organs, label_map)
    if spec.kind == "totalsegmentator":
        from ml_engine.members import totalseg

        return totalseg.inspect(spec, organs, label_map)
    if spec.kind == "monai-bundle":
        from ml_engine.members import bundle

        return bundle.inspect(spec, organs, label_map)
    raise MemberError(f"kind {spec.kind!r}: choose from {', '.join(KINDS)}")


def load_member(spec: MemberSpec, organs: OrganIndex, label_map: LabelMap | None, *, device: str | None = None):
    """A loaded member: `.votes(ct (x, y, z), affine (4, 4)) -> {organ: (x, y, z) uint8}`; MemberError if it cannot."""
    if spec.kind == "nnunetv2":
        from ml_engine.members import nnunet

        return nnunet.NnUNetMember(spec, organs, label_map, device=device)
    if spec.kind == "totalsegmentator":
        from ml_engine.members import totalseg

        return totalseg.TotalSegmentatorMember(spec, organs, label_map, device=device)
    if spec.kind == "monai-bundle":
        from ml_engine.members import bundle

        return bundle.BundleMember(spec, organs, label_map, device=device)
    raise MemberError(f"kind {spec.kind!r}: choose from {', '.join(KINDS)}")
