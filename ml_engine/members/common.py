"""What every member kind shares: its spec, what it predicts, its error, its classes mapped to organs and its
probabilities turned into votes. The kinds (nnunet.py, totalseg.py) import this module; the package's __init__ imports
them, never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ml_engine.labels import LabelMap, LabelMapError, OrganIndex

KINDS = ("nnunetv2", "totalsegmentator", "monai-bundle")


class MemberError(ValueError):
    """A member that cannot be registered or run on this machine; str() names what and why."""


@dataclass(frozen=True)
class MemberSpec:
    """What identifies a member: its kind and where its model is.

    nnunetv2: folder (the trained model folder), folds (None: every fold_N found, else e.g. ("all",) or (0, 1)),
    checkpoint file name, tile_step_size and use_mirroring (nnU-Net's defaults: 0.5, True).
    totalsegmentator: task ("total" or "fast").
    """

    kind: str
    folder: str = ""
    folds: tuple[str, ...] | None = None
    checkpoint: str = "checkpoint_final.pth"
    task: str = ""
    tile_step_size: float = 0.5
    use_mirroring: bool = True

    def as_dict(self) -> dict:
        return {"kind": self.kind, "folder": self.folder, "folds": list(self.folds) if self.folds else None,
                "checkpoint": self.checkpoint, "task": self.task, "tile_step_size": self.tile_step_size,
                "use_mirroring": self.use_mirroring}

    @classmethod
    def from_dict(cls, raw: Mapping) -> MemberSpec:
        folds = raw.get("folds")
        return cls(kind=str(raw["kind"]), folder=str(raw.get("folder") or ""),
                   folds=tuple(str(f) for f in folds) if folds else None,
                   checkpoint=str(raw.get("checkpoint") or "checkpoint_final.pth"), task=str(raw.get("task") or ""),
                   tile_step_size=float(raw.get("tile_step_size", 0.5)),
                   use_mirroring=bool(raw.get("use_mirroring", True)))


@dataclass
class MemberInfo:
    """What a member predicts: its classes {value: name} (background left out) and the organ each maps to."""

    classes: dict[int, str]
    organ_of: dict[int, str] = field(default_factory=dict)  # class value -> organ of the label set
    detail: dict = field(default_factory=dict)  # kind-specific facts (trainer, configuration, folds, task)

    @property
    def organs(self) -> list[str]:
        return list(dict.fromkeys(self.organ_of.values()))


def map_classes(classes: Mapping[int, str], organs: OrganIndex, label_map: LabelMap | None, *,
                source: str) -> dict[int, str]:
    """Class value -> organ for a model's classes {value: name}: by the label map (its values first, then its names),
    else by the class name or one of the label set's aliases. Classes that land on no organ are left out; a label map
    whose `unmapped` is "error" refuses a class it does not list. MemberError when no class lands on an organ."""
    found: dict[int, str] = {}
    for value, name in classes.items():
        organ: str | None
        if label_map is not None and value in label_map.values:
            target = label_map.values[value]
            organ = organs.organ_of(target) if target else None
        elif label_map is not None:
            try:
                organ = label_map.organ_for_name(name, organs)
            except LabelMapError as exc:
                raise MemberError(f"{source}: class {value} ({name!r}): {exc}") from exc
        else:
            organ = organs.resolve(name)
        if organ is not None:
            found[value] = organ
    if not found:
        listed = ", ".join(f"{v} {n}" for v, n in classes.items())
        raise MemberError(f"{source}: none of the model's classes ({listed}) maps to an organ of the label set "
                          f"{organs.name or ''} ({', '.join(organs.values)}); give a label map")
    return found


def organ_votes(probabilities: Mapping[int, np.ndarray], organ_of: Mapping[int, str]) -> dict[str, np.ndarray]:
    """Per-class probabilities {class value: (x, y, z) float in [0, 1]} -> {organ: (x, y, z) uint8 p x 255}.

    Classes mapped to the same organ add up (softmax classes are disjoint events), clipped at 1.
    """
    sums: dict[str, np.ndarray] = {}
    for value, organ in organ_of.items():
        if value not in probabilities:
            continue
        p = np.asarray(probabilities[value], dtype=np.float32)
        sums[organ] = p if organ not in sums else sums[organ] + p
    return {organ: np.rint(np.clip(p, 0.0, 1.0) * 255.0).astype(np.uint8) for organ, p in sums.items()}
