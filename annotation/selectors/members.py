"""The ensemble's members: which models made a round and the registered ones (round_members, member_list); and
the members' opinions at one place of a case: each member's probability for one organ, their mean, and
the hotspot's region, cropped to a box, for the workspace's "members at a hotspot" and "local threshold" tools.

The browser asks for the box of the active organ's selected hotspot instead of downloading every member's volume
for every organ. Boxes are file voxel indices (x, y, z), inclusive, on the case's grid.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from annotation.errors import Invalid, NotFound
from annotation.models import Case, LabelSet, ModelVersion, Prediction, Round
from annotation.storage import local_copy
from ml_engine.ensemble import mean_probability
from ml_engine.io import load_on_grid

MAX_VOXELS = 8_000_000  # a box of 200^3: larger than any hotspot, far smaller than a 512 x 512 x 300 volume
AGREE_DICE = 0.9  # members agreeing this well in a region will not fix it for the annotator


@dataclass
class MemberCrops:
    organ: str
    box: list[list[int]]  # [[x0, y0, z0], [x1, y1, z1]], inclusive
    members: dict[str, np.ndarray]  # name -> uint8 (p x 255), shape of the box
    mean: np.ndarray  # uint8, the members' mean probability x 255 (ml_engine.ensemble.mean_probability: > 127 is the
    # pseudo-label's mask for this organ)
    region: np.ndarray | None  # bool: the attention hotspot's connected region around `seed`, dilated by one
    agreement: float | None  # smallest pairwise Dice of the members' (p > 0.5) masks inside the region

    def as_json(self) -> dict:
        """Arrays as base64 of their bytes with x fastest (Fortran order), as the viewer's volumes are laid out."""
        def pack(a: np.ndarray) -> str:
            return base64.b64encode(np.asfortranarray(a.astype(np.uint8)).tobytes(order="F")).decode()

        return {"organ": self.organ, "box": self.box, "shape": list(self.mean.shape),
                "members": [{"name": n, "probability": pack(a)} for n, a in sorted(self.members.items())],
                "mean": pack(self.mean), "region": pack(self.region) if self.region is not None else None,
                "agreement": self.agreement, "members_agree": self.agreement is not None and
                self.agreement >= AGREE_DICE}


def parse_box(text: str, shape: tuple[int, ...]) -> tuple[slice, slice, slice]:
    """'x0,y0,z0,x1,y1,z1' (inclusive file indices) clipped to the volume; Invalid when malformed or too large."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise Invalid("give six whole numbers x0,y0,z0,x1,y1,z1", field="box")
    lo = [max(0, values[k]) for k in range(3)]
    hi = [min(shape[k] - 1, values[3 + k]) for k in range(3)]
    if any(h < low for low, h in zip(lo, hi, strict=True)):
        raise Invalid(f"the box lies outside the volume of {' x '.join(map(str, shape[:3]))}", field="box")
    if np.prod([h - low + 1 for low, h in zip(lo, hi, strict=True)]) > MAX_VOXELS:
        raise Invalid(f"the box holds more than {MAX_VOXELS} voxels; ask for a hotspot's box", field="box")
    return tuple(slice(low, h + 1) for low, h in zip(lo, hi, strict=True))


def _crop(name: str, box: tuple[slice, slice, slice], case: Case) -> np.ndarray:
    """The stored map `name` inside box (slices of the case's grid): stored whole or cropped to its own box."""
    with local_copy(name) as path:
        return load_on_grid(path, tuple(case.shape), np.asarray(case.affine), box=box)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def member_crops(case: Case, *, organ: str, box: str, seed: list[int] | None = None) -> MemberCrops:
    """The latest prediction's members for `organ` inside `box`; with `seed` (file indices), the attention region."""
    prediction = Prediction.objects.filter(case=case).order_by("-round__number").first()
    if prediction is None:
        raise NotFound(f"case {case.name} has no prediction yet")
    soft = (prediction.files or {}).get("soft_pred") or {}
    names = {member: per_organ[organ] for member, per_organ in soft.items() if organ in per_organ}
    if not names:
        raise NotFound(f"no member's probability of {organ!r} is stored for case {case.name}", field="organ")
    slices = parse_box(box, tuple(case.shape))
    members = {member: _crop(name, slices, case).astype(np.uint8) for member, name in names.items()}
    mean = mean_probability(members.values())  # the pseudo-label's rule: mean > 127 is its mask, ties included
    region = None
    agreement = None
    attention = (prediction.files or {}).get("attention", {}).get(organ)
    if seed is not None and attention:
        region = _region(_crop(attention, slices, case) > 0, [s - sl.start for s, sl in zip(seed, slices, strict=True)])
        if region is not None:
            masks = [a[region] > 127 for a in members.values()]
            agreement = min((_dice(masks[i], masks[j]) for i in range(len(masks)) for j in range(i + 1, len(masks))),
                            default=None)
    lo = [s.start for s in slices]
    hi = [s.stop - 1 for s in slices]
    return MemberCrops(organ=organ, box=[lo, hi], members=members, mean=mean, region=region, agreement=agreement)


def _region(attention: np.ndarray, seed: list[int]) -> np.ndarray | None:
    """The connected attention component at the seed (else the one nearest to it), dilated by one voxel."""
    labels, count = ndimage.label(attention, structure=np.ones((3, 3, 3), dtype=bool))
    if count == 0:
        return None
    inside = all(0 <= s < n for s, n in zip(seed, attention.shape, strict=True))
    pick = labels[tuple(seed)] if inside else 0
    if pick == 0:
        points = np.argwhere(labels > 0)
        nearest = points[np.argmin(((points - np.array(seed)) ** 2).sum(axis=1))]
        pick = labels[tuple(nearest)]
    return ndimage.binary_dilation(labels == pick, structure=np.ones((3, 3, 3), dtype=bool))


# --- The ensemble's members: which models make a round, and the registered ones that join every round ---------------

def registered_members(label_set: LabelSet) -> list[ModelVersion]:
    """Registered members (an nnU-Net v2 folder, TotalSegmentator) of this label set still registered: every round
    starting now includes them."""
    rows = ModelVersion.objects.filter(arch__in=ModelVersion.REGISTERED).order_by("pk")
    return [v for v in rows if v.metadata.get("registered") and v.metadata.get("label_set") == label_set.name]


def registered_start(arch: str, size: str, label_set: LabelSet) -> ModelVersion | None:
    """The start registered for this architecture and size in this label set (services.starts), if any."""
    rows = ModelVersion.objects.filter(arch=arch, size=size, rounds__isnull=True).order_by("-pk")
    return next((v for v in rows if v.metadata.get("start") and v.metadata.get("label_set") == label_set.name), None)


def registered_starts(label_set: LabelSet) -> list[ModelVersion]:
    rows = ModelVersion.objects.filter(arch__in=ModelVersion.TRAINED, rounds__isnull=True).order_by("arch", "size")
    return [v for v in rows if v.metadata.get("start") and v.metadata.get("label_set") == label_set.name]


def pending_imports(label_set: LabelSet) -> list[ModelVersion]:
    """Another tool's predictions imported before any round of this label set used them: round 0 (or the next
    round) takes them in."""
    rows = ModelVersion.objects.filter(arch=ModelVersion.Arch.EXTERNAL, rounds__isnull=True).order_by("pk")
    return [v for v in rows if v.metadata.get("label_set") == label_set.name]


def member_source(version: ModelVersion, round: Round) -> tuple[str, bool]:
    """(where a member of a round comes from, whether this round fine-tuned or trained it).

    registered: run by Atlas, never fine-tuned; imported: another tool's label maps; trained: trained or fine-tuned
    in this round on labelled cases; shipped: a shipped checkpoint taken as it is (round 0 without labels); start: a
    registered start (published weights, services.starts) taken as it is (round 0 without labels); carried:
    an earlier round's model kept as it is (no labelled case to fine-tune on).
    """
    if version.arch in ModelVersion.REGISTERED:
        return "registered", False
    if version.arch == ModelVersion.Arch.EXTERNAL:
        return "imported", False
    made_here = version.metadata.get("round", round.number if version.name.startswith(f"round{round.number}-")
                                     else None) == round.number
    if not made_here:
        return "carried", False
    if version.metadata.get("from_start") and version.metadata.get("fine_tuned") is False:
        return "start", False
    if version.metadata.get("fine_tuned") is False:
        return "shipped", False
    return "trained", True


def round_members(round: Round) -> list[dict]:
    """The members that made a round: name, kind, source (member_source), fine_tuned, organs they vote on."""
    rows = []
    for version in round.members.order_by("pk"):
        source, tuned = member_source(version, round)
        rows.append({"name": version.name, "kind": version.arch, "source": source, "fine_tuned": tuned,
                     "organs": list(version.metadata.get("organs") or []),
                     "provenance": member_provenance(version)})
    return rows


ATLAS_PROVENANCE = {"source": "Atlas (trained here)", "licence": "the group's own", "citation": "not given"}
SHIPPED_PROVENANCE = {"source": "Atlas's shipped tiny checkpoint, trained on synthetic phantoms",
                      "licence": "Atlas's own", "citation": "not given"}


def member_provenance(version: ModelVersion) -> dict:
    """Source, licence and citation of a member's weights: recorded at registration (a registered member, a start)
    and carried by every model fine-tuned from a start; Atlas's own for models it trained from its shipped
    checkpoints; "not given" where nobody said."""
    recorded = version.metadata.get("provenance")
    if recorded:
        return {k: str(recorded.get(k) or "not given") for k in ("source", "licence", "citation")}
    if version.arch == ModelVersion.Arch.EXTERNAL:
        return {"source": f"predictions imported from {version.metadata.get('source') or 'another tool'}",
                "licence": "not given", "citation": "not given"}
    if version.arch in ModelVersion.TRAINED:
        return dict(SHIPPED_PROVENANCE if version.metadata.get("fine_tuned") is False else ATLAS_PROVENANCE)
    return {"source": "not given", "licence": "not given", "citation": "not given"}


def member_list() -> list[dict]:
    """Registered members and imported predictions, newest first: what each is, whether it is still registered
    (joins new rounds), the rounds it was a member of, its provenance. None is ever fine-tuned. Then the registered
    starts (source "start"), which the next round 0 fine-tunes."""
    rows = []
    for version in (ModelVersion.objects.filter(arch__in=[*ModelVersion.REGISTERED, ModelVersion.Arch.EXTERNAL])
                    .prefetch_related("rounds").order_by("-created", "-pk")):
        meta = version.metadata
        registered = version.arch in ModelVersion.REGISTERED
        rows.append({"name": version.name, "kind": version.arch, "label_set": meta.get("label_set") or "",
                     "registered": bool(meta.get("registered")) if registered else False,
                     "source": "registered" if registered else "imported", "fine_tuned": False,
                     "location": (meta.get("spec") or {}).get("folder") or (meta.get("spec") or {}).get("task")
                     or meta.get("source") or "",
                     "organs": list(meta.get("organs") or []),
                     "rounds": sorted(r.number for r in version.rounds.all()),
                     "created": version.created.isoformat(), "provenance": member_provenance(version)})
    for version in ModelVersion.objects.filter(arch__in=ModelVersion.TRAINED, rounds__isnull=True).order_by("-pk"):
        meta = version.metadata
        if meta.get("start"):
            rows.append({"name": version.name, "kind": version.arch, "label_set": meta.get("label_set") or "",
                         "registered": True, "source": "start", "fine_tuned": False,
                         "location": meta.get("weights") or "", "organs": list(meta.get("organs") or []),
                         "rounds": [], "created": version.created.isoformat(),
                         "provenance": member_provenance(version)})
    return rows

