"""Foreign label values and names -> the organs of a label set, and label maps checked against their CT.

A label map file is JSON, either flat (`{"1": "spleen", "52": "aorta"}`) or with options:

    {"labels": {"1": "spleen", "63": "postcava", "18": null}, "unmapped": "background"}

Keys that are integers are voxel values of a multi-label segmentation; other keys are structure names
(AbdomenAtlas file stems, nnU-Net dataset.json class names). A value is an organ of the label set (its
name or an alias) or null for background. `unmapped` says what an unlisted non-zero value or name is:
"error" (the default) or "background".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml_engine.io import ImageError, Volume, same_geometry


class LabelMapError(ValueError):
    """A label map file that cannot be used; str() names the file and the problem."""


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass
class OrganIndex:
    """The organs of one label set: name -> value, with aliases."""

    values: dict[str, int]
    aliases: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_label_set(cls, label_set) -> OrganIndex:
        values, aliases = {}, {}
        for organ in label_set.organs.all():
            values[organ.name] = organ.value
            for alias in organ.aliases:
                aliases[_normalise(alias)] = organ.name
        return cls(values=values, aliases=aliases)

    def resolve(self, name: str) -> str | None:
        """The canonical organ name for name or one of its aliases, else None."""
        key = _normalise(name)
        if key in self.values:
            return key
        return self.aliases.get(key)


@dataclass
class LabelMap:
    """Foreign value -> organ value (0 = background) and foreign name -> organ name (None = background)."""

    values: dict[int, int]
    names: dict[str, str | None]
    unmapped: str = "error"
    source: str = "label map"

    @classmethod
    def load(cls, path: str | Path, organs: OrganIndex) -> LabelMap:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise LabelMapError(f"{path}: no such file") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LabelMapError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise LabelMapError(f"{path}: expected a JSON object")
        if "labels" in raw:
            entries, unmapped = raw["labels"], raw.get("unmapped", "error")
        else:
            entries, unmapped = raw, "error"
        if not isinstance(entries, dict):
            raise LabelMapError(f"{path}: 'labels' must be an object of value or name -> organ")
        if unmapped not in ("error", "background"):
            raise LabelMapError(f"{path}: 'unmapped' must be \"error\" or \"background\", not {unmapped!r}")
        values: dict[int, int] = {}
        names: dict[str, str | None] = {}
        for key, target in entries.items():
            if target is None:
                organ = None
            elif isinstance(target, str) and (organ := organs.resolve(target)) is not None:
                pass
            else:
                known = ", ".join(organs.values)
                raise LabelMapError(f"{path}: key {key!r} maps to {target!r}, which is not an organ of the "
                                    f"label set ({known}) nor null")
            if key.strip().lstrip("-").isdigit():
                value = int(key)
                if value <= 0:
                    raise LabelMapError(f"{path}: key {key!r}: foreign values must be positive integers")
                values[value] = organs.values[organ] if organ else 0
            else:
                names[_normalise(key)] = organ
        return cls(values=values, names=names, unmapped=unmapped, source=str(path))

    def organs_covered(self, organs: OrganIndex) -> set[str]:
        by_value = {v: k for k, v in organs.values.items()}
        return {by_value[v] for v in self.values.values() if v} | {n for n in self.names.values() if n}

    def organ_for_name(self, name: str, organs: OrganIndex) -> str | None:
        """Organ for a foreign structure name; None for background. Raises LabelMapError if unmapped."""
        key = _normalise(name)
        if key in self.names:
            return self.names[key]
        organ = organs.resolve(name)
        if organ is not None:
            return organ
        if self.unmapped == "background":
            return None
        raise LabelMapError(f"structure {name!r} is neither an organ of the label set nor in {self.source}")


def check_same_grid(label: Volume, ct: Volume, path: Path) -> None:
    """A label must lie on its CT's grid: same shape and the same affine (within 1e-3 mm)."""
    if label.shape != ct.shape:
        raise ImageError(path, f"label shape {label.shape} differs from the CT's {ct.shape}")
    if not same_geometry(label.affine, ct.affine):
        worst = float(np.abs(label.affine - ct.affine).max())
        raise ImageError(path, f"label affine differs from the CT's (by up to {worst:.4g} mm)")


def integer_labels(label: Volume, path: Path) -> np.ndarray:
    """The label's voxels as a non-negative integer array (dtype kept when it already is one).

    Refuses negative and non-integral values.
    """
    data = label.data
    if data.dtype.kind == "b":
        return data.view(np.uint8)
    if data.dtype.kind == "f":
        if not np.all(np.equal(np.mod(data, 1), 0)):
            raise ImageError(path, "label holds non-integer values")
        data = data.astype(np.int64)
    if data.dtype.kind == "i" and data.size and data.min() < 0:
        raise ImageError(path, f"label holds negative values (min {int(data.min())})")
    return data


def present_values(data: np.ndarray) -> np.ndarray:
    """The sorted non-zero values of a non-negative integer array (bincount: linear time, unlike np.unique)."""
    top = int(data.max(initial=0))
    if top == 0:
        return np.zeros(0, dtype=np.int64)
    if top > 1 << 20:
        values = np.unique(data)
        return values[values > 0].astype(np.int64)
    counts = np.bincount(data.ravel(), minlength=top + 1)
    return np.flatnonzero(counts[1:]) + 1


def convert_multilabel(label: Volume, ct: Volume, path: Path, *, organs: OrganIndex,
                       label_map: LabelMap | None) -> tuple[np.ndarray, set[str]]:
    """A multi-label segmentation -> (x, y, z) uint8 map in the label set's values, and the organs present.

    Without a label map its values must already be the label set's; with one, they are translated and
    unlisted non-zero values are an error unless the map says "unmapped": "background".
    """
    check_same_grid(label, ct, path)
    data = integer_labels(label, path)
    present = present_values(data)
    lut = np.zeros(int(present.max(initial=0)) + 1, dtype=np.uint8)
    if label_map is None:
        allowed = set(organs.values.values())
        foreign = [int(v) for v in present if int(v) not in allowed]
        if foreign:
            raise ImageError(path, f"label values {_listing(foreign)} are not in the label set "
                                   f"(values {min(allowed)}-{max(allowed)}); pass --label-map to translate them")
        lut[present] = present
    else:
        unknown = [int(v) for v in present if int(v) not in label_map.values]
        if unknown and label_map.unmapped == "error":
            raise ImageError(path, f"label values {_listing(unknown)} are not in {label_map.source}")
        for foreign, value in label_map.values.items():
            if foreign < lut.size:
                lut[foreign] = value
    converted = lut[data]
    by_value = {v: k for k, v in organs.values.items()}
    found = {by_value[int(lut[v])] for v in present if lut[v]}
    return converted, found


def binary_mask(label: Volume, ct: Volume, path: Path) -> np.ndarray:
    """A per-organ mask file (AbdomenAtlas segmentations/<organ>.nii.gz) -> (x, y, z) uint8 of 0 and 1."""
    check_same_grid(label, ct, path)
    data = integer_labels(label, path)
    if data.size and data.max() > 1:
        extra = [int(v) for v in present_values(data) if v != 1]
        raise ImageError(path, f"expected a binary mask of 0 and 1, found values {_listing(extra)}")
    return data.astype(np.uint8, copy=False)


def _listing(values: list[int], most: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")
