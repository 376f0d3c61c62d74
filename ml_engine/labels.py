"""Label names, values and label maps: the one vocabulary of the engine and the platform. NumPy only.

Data: the repository's `fixtures/` folder is the single source. `fixtures/label_sets.json` lists the label sets (each
organ's value, name, colour and aliases); `fixtures/label_maps/<name>.json` translates another tool's values (e.g.
`totalsegmentator`). Django's reference-data sync (annotation.services.reference_data) reads the same files through
`read_label_sets`.

A label map file is JSON in one format:

    {"labels": {"1": "spleen", "63": "postcava", "18": null, "liver_mask": "liver"}, "unmapped": "background"}

Keys that are integers are voxel values of a multi-label segmentation; other keys are structure names (AbdomenAtlas
file stems, nnU-Net dataset.json class names). A value is an organ of the label set (its name or an alias) or null for
background. `unmapped` says what a non-zero value or a name the map does not list is: "error" (the default) or
"background". A flat object (`{"1": "spleen", "52": "aorta"}`) is shorthand for `{"labels": {...}}`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LABEL_SETS_FILE = FIXTURES / "label_sets.json"
LABEL_MAPS_DIR = FIXTURES / "label_maps"
UNMAPPED = ("error", "background")


class LabelMapError(ValueError):
    """A label map, or a label against its map, that cannot be used; str() names the file and the problem."""


def normalise(name: str) -> str:
    """A structure name as compared: lower case, '-' and ' ' as '_' ("Kidney (L)" -> "kidney_(l)")."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class OrganIndex:
    """The organs of one label set. values: {organ: voxel value}, in value order; aliases: {normalised alias: organ}."""

    values: dict[str, int]
    aliases: dict[str, str] = field(default_factory=dict)
    name: str = ""

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping], name: str = "") -> OrganIndex:
        """From organ entries {"name", "value", "aliases"} (the fixture's, or a label set's rows as dicts)."""
        ordered = sorted(entries, key=lambda e: int(e["value"]))
        values = {str(e["name"]): int(e["value"]) for e in ordered}
        aliases = {normalise(a): str(e["name"]) for e in ordered for a in e.get("aliases") or ()}
        return cls(values=values, aliases=aliases, name=name)

    @property
    def organs(self) -> tuple[str, ...]:
        """Organ names in value order (a network's output channels)."""
        return tuple(self.values)

    def resolve(self, name: str) -> str | None:
        """The canonical organ name for name or one of its aliases, else None."""
        key = normalise(name)
        if key in self.values:
            return key
        return self.aliases.get(key)

    def organ_of(self, value: int) -> str:
        """The organ whose voxel value is value (KeyError otherwise)."""
        for organ, v in self.values.items():
            if v == value:
                return organ
        raise KeyError(value)


def read_label_sets(path: Path = LABEL_SETS_FILE) -> list[dict]:
    """The label sets of fixtures/label_sets.json as stored: [{name, display_name, description, organs: [...]}]."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@cache
def label_set(name: str) -> OrganIndex:
    """A shipped label set by name (abdomenatlas, word, btcv, flare); ValueError naming the known ones otherwise."""
    entries = {entry["name"]: entry for entry in read_label_sets()}
    if name not in entries:
        raise ValueError(f"unknown label set {name!r} (known: {', '.join(entries)})")
    return OrganIndex.from_entries(entries[name]["organs"], name=name)


ABDOMENATLAS = label_set("abdomenatlas")
ORGANS: tuple[str, ...] = ABDOMENATLAS.organs  # the engine's default organs: abdomenatlas, in value order


@dataclass
class LabelMap:
    """Foreign value -> organ value (0 = background) and normalised foreign name -> organ (None = background)."""

    values: dict[int, int]
    names: dict[str, str | None]
    unmapped: str = "error"
    source: str = "label map"

    @classmethod
    def load(cls, spec: str | Path, organs: OrganIndex) -> LabelMap:
        """A label map from a JSON file, or by name: a shipped map (fixtures/label_maps/NAME.json) or the label set's
        own name (its values, unchanged). LabelMapError("FILE: problem") when it cannot be used."""
        text = str(spec)
        if isinstance(spec, str) and text == organs.name:
            return cls.identity(organs)
        shipped = LABEL_MAPS_DIR / f"{text}.json"
        path = shipped if isinstance(spec, str) and text.isidentifier() and shipped.is_file() else Path(spec)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            names = ", ".join([organs.name, *sorted(p.stem for p in LABEL_MAPS_DIR.glob("*.json"))])
            raise LabelMapError(f"{path}: not a readable JSON label map (no such file; by name: {names})") from exc
        except OSError as exc:
            raise LabelMapError(f"{path}: not a readable JSON label map ({exc.strerror or exc})") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LabelMapError(f"{path}: not valid JSON ({exc})") from exc
        return cls.parse(raw, organs, source=str(path))

    @classmethod
    def identity(cls, organs: OrganIndex) -> LabelMap:
        """The label set's own values and names; unlisted values are an error."""
        return cls(values={v: v for v in organs.values.values()}, names={}, source=f"the {organs.name} label set")

    @classmethod
    def parse(cls, raw: object, organs: OrganIndex, *, source: str) -> LabelMap:
        """A label map from its decoded JSON (see the module docstring), resolved against organs."""
        if not isinstance(raw, dict):
            raise LabelMapError(f"{source}: expected a JSON object")
        entries, unmapped = (raw["labels"], raw.get("unmapped", "error")) if "labels" in raw else (raw, "error")
        if not isinstance(entries, dict):
            raise LabelMapError(f"{source}: 'labels' must be an object of value or name -> organ")
        if unmapped not in UNMAPPED:
            raise LabelMapError(f"{source}: 'unmapped' must be \"error\" or \"background\", not {unmapped!r}")
        values: dict[int, int] = {}
        names: dict[str, str | None] = {}
        for key, target in entries.items():
            organ = organs.resolve(target) if isinstance(target, str) else None
            if target is not None and organ is None:
                raise LabelMapError(f"{source}: key {key!r} maps to {target!r}, which is not an organ of the "
                                    f"label set ({', '.join(organs.values)}) nor null")
            if key.strip().lstrip("-").isdigit():
                if int(key) <= 0:
                    raise LabelMapError(f"{source}: key {key!r}: foreign values must be positive integers")
                values[int(key)] = organs.values[organ] if organ else 0
            else:
                names[normalise(key)] = organ
        return cls(values=values, names=names, unmapped=unmapped, source=source)

    def organs_covered(self, organs: OrganIndex) -> set[str]:
        """The organs some value or name of the map lands on."""
        return {organs.organ_of(v) for v in self.values.values() if v} | {n for n in self.names.values() if n}

    def organ_for_name(self, name: str, organs: OrganIndex) -> str | None:
        """Organ for a foreign structure name; None for background. LabelMapError if unmapped."""
        key = normalise(name)
        if key in self.names:
            return self.names[key]
        organ = organs.resolve(name)
        if organ is not None:
            return organ
        if self.unmapped == "background":
            return None
        raise LabelMapError(f"structure {name!r} is neither an organ of the label set nor in {self.source}")


def integer_labels(data: np.ndarray) -> np.ndarray:
    """A label's voxels (x, y, z) as a non-negative integer array (dtype kept when it already is one; bool as uint8).

    LabelMapError for negative and non-integral values.
    """
    if data.dtype.kind == "b":
        return data.view(np.uint8)
    if data.dtype.kind == "f":
        if not np.all(np.equal(np.mod(data, 1), 0)):
            raise LabelMapError("label holds non-integer values")
        data = data.astype(np.int64)
    if data.dtype.kind == "i" and data.size and data.min() < 0:
        raise LabelMapError(f"label holds negative values (min {int(data.min())})")
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


def translate(data: np.ndarray, organs: OrganIndex, label_map: LabelMap | None = None) -> tuple[np.ndarray, set[str]]:
    """A multi-label segmentation (x, y, z) of integers (integer_labels) -> (x, y, z) uint8 in the label set's values,
    and the organs present.

    Without a label map its values must already be the label set's; with one, they are translated and unlisted non-zero
    values are an error unless the map says "unmapped": "background". LabelMapError (no file name: callers add it).
    """
    mapping = label_map or LabelMap.identity(organs)
    data = integer_labels(data)
    present = present_values(data)
    unknown = [int(v) for v in present if int(v) not in mapping.values]
    if unknown and mapping.unmapped == "error":
        if label_map is None:
            allowed = organs.values.values()
            raise LabelMapError(f"label values {listing(unknown)} are not in the label set (values {min(allowed)}-"
                                f"{max(allowed)}); pass --label-map to translate them")
        raise LabelMapError(f"label values {listing(unknown)} are not in {mapping.source}")
    if int(data.max(initial=0)) > 1 << 20:  # large values: a table as long as the largest would not fit in memory
        values, index = np.unique(data, return_inverse=True)
        table = np.array([mapping.values.get(int(v), 0) for v in values], dtype=np.uint8)
        return table[index].reshape(data.shape), {organs.organ_of(int(v)) for v in table if v}
    lut = np.zeros(int(present.max(initial=0)) + 1, dtype=np.uint8)
    for foreign, value in mapping.values.items():
        if foreign < lut.size:
            lut[foreign] = value
    return lut[data], {organs.organ_of(int(lut[v])) for v in present if lut[v]}


def listing(values: list[int], most: int = 8) -> str:
    """"1, 2, 3" or "1, ..., 8 and 4 more": values for an error message."""
    shown = ", ".join(str(v) for v in values[:most])
    return shown + (f" and {len(values) - most} more" if len(values) > most else "")
