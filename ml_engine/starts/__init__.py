"""Starting weights for an architecture of the ensemble from a published checkpoint (SuPreM, a MONAI bundle) or an
Atlas checkpoint: `convert_start` reads the file as its publisher wrote it (publishers.py), builds the publisher's
network with one output per organ of the label set (families.py), maps every key, fills the output head through a
label map, and returns an Atlas Checkpoint that records the network, its preprocessing (spacing, patch, window) and
what became of each key (`StartReport`). No Django here; files are read with torch.load(weights_only=True).

The head: a class the label map sends to an organ gives that organ's output row (SuPreM's class embedding, or a
convolution head's row; a softmax head's row minus the background's, so that a sigmoid of it is the class's odds
against background); an organ no class lands on keeps a freshly initialised row, and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ml_engine.io import CheckpointError
from ml_engine.labels import LabelMap, OrganIndex
from ml_engine.members.common import MemberError, map_classes
from ml_engine.starts.families import HEAD_KEYS, build_family
from ml_engine.starts.publishers import FORMATS, Published, read_bundle, read_suprem
from ml_engine.train.checkpoint import Checkpoint, load_checkpoint

__all__ = ["FORMATS", "StartReport", "convert_start", "read_published"]

SLOT_FAMILIES = {"swin_unetr": ("swin_unetr", "suprem_swin_unetr"), "unet": ("suprem_unet3d", "segresnet"),
                 "nnunet": ("segresnet", "suprem_unet3d")}


@dataclass
class StartReport:
    """What loading a start did: keys copied, computed (buffers the network makes itself), dropped (in the file,
    unused by the network's forward), the head's organs taken from classes and re-initialised."""

    format: str
    family: str
    target_keys: int
    copied: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    head: str = ""  # "class rows", "softmax rows minus background", "re-initialised"
    organs_from_classes: dict[str, str] = field(default_factory=dict)  # organ -> the class it comes from
    organs_reinitialised: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["copied"] = len(self.copied)  # the count; the keys are every key not listed elsewhere
        return out

    def lines(self) -> list[str]:
        out = [f"{self.format}: {self.family}, {len(self.copied)} of {self.target_keys} keys copied"
               + (f", {len(self.computed)} computed buffers" if self.computed else "")]
        if self.dropped:
            out.append(f"dropped (in the file, unused by the network): {', '.join(_short(self.dropped))}")
        mapped = ", ".join(f"{o} <- {c}" for o, c in self.organs_from_classes.items())
        out.append(f"head ({self.head}): {mapped or 'no organ from a class'}")
        if self.organs_reinitialised:
            out.append(f"re-initialised (no class maps to them): {', '.join(self.organs_reinitialised)}")
        out.extend(self.notes)
        return out


def _short(keys: list[str], most: int = 6) -> list[str]:
    return keys[:most] + ([f"... {len(keys) - most} more"] if len(keys) > most else [])


def read_published(path: str | Path, format: str) -> Published:
    """The checkpoint as its publisher wrote it; CheckpointError naming the file otherwise."""
    path = Path(path)
    if format == "suprem":
        return read_suprem(path)
    if format == "monai-bundle":
        return read_bundle(path)
    raise ValueError(f"format {format!r}: choose from {', '.join(FORMATS)}")


def _source_key(family: str, target: str) -> str:
    """The publisher's key for a key of our network (the Swin backbone sits one level deeper, under `net.`)."""
    if family == "suprem_swin_unetr" and target.startswith("backbone.net."):
        return "backbone." + target[len("backbone.net."):]
    return target


def convert_start(path: str | Path, *, arch: str, format: str, organs: OrganIndex, label_map: LabelMap | None,
                  seed: int = 0) -> tuple[Checkpoint, StartReport]:
    """A start for the ensemble's `arch` slot from a published file: (Atlas checkpoint, report).

    CheckpointError (file unreadable, not the format, a key missing or of another shape) or MemberError (no class
    maps to an organ of the label set) naming the file.
    """
    path = Path(path)
    if format == "atlas":
        return _atlas(path, arch=arch, organs=organs)
    published = read_published(path, format)
    family = published.network["family"]
    if family not in SLOT_FAMILIES.get(arch, ()):
        raise CheckpointError(path, f"a {family} network cannot take the {arch} slot (it takes "
                                    f"{', '.join(SLOT_FAMILIES.get(arch, ()))})")
    try:
        organ_of = map_classes(published.classes, organs, label_map, source=str(path))
    except MemberError as exc:
        raise CheckpointError(path, str(exc).removeprefix(f"{path}: ")) from exc
    class_of: dict[str, int] = {}
    for value, organ in organ_of.items():
        class_of.setdefault(organ, value)
    torch.manual_seed(seed)
    model = build_family(published.network, len(organs.organs))
    target = model.state_dict()
    parameters = {k for k, _ in model.named_parameters()}
    report = StartReport(format=format, family=family, target_keys=len(target))
    heads = HEAD_KEYS[family]
    used: set[str] = set()
    state: dict[str, torch.Tensor] = {}
    for key, fresh in target.items():
        if key in heads:
            continue
        source = _source_key(family, key)
        value = published.state.get(source)
        if value is None:
            if key in parameters:
                raise CheckpointError(path, f"no weights for {source} (the {family} network's layout); is this "
                                            f"a {format} checkpoint of this architecture?")
            state[key] = fresh  # a buffer the network computes (relative position index, batch counters)
            report.computed.append(key)
            continue
        if tuple(value.shape) != tuple(fresh.shape):
            raise CheckpointError(path, f"{source}: shape {tuple(value.shape)}, the {family} network with the "
                                        f"publisher's hyper-parameters has {tuple(fresh.shape)}")
        state[key] = value.detach().to(fresh.dtype).clone()
        used.add(source)
        report.copied.append(key)
    _head(published, family, target, state, class_of, organs, report, used, path)
    report.dropped = sorted(k for k in published.state if k not in used)
    checkpoint = Checkpoint(arch=arch, size="base", organs=organs.organs, spacing=published.spacing,
                            hu_window=published.hu_window, patch=published.patch, state=state, parent=path.name,
                            network=dict(published.network))
    return checkpoint, report


def _head(published: Published, family: str, target: dict, state: dict, class_of: dict[str, int],
          organs: OrganIndex, report: StartReport, used: set[str], path: Path) -> None:
    """Fill the head's rows per organ from the class the map gives it; fresh rows for the others."""
    keys = HEAD_KEYS[family]
    sources = {k: published.state.get(k, published.state.get(f"{k}.weight")) for k in keys}
    fits = all(v is not None and tuple(v.shape[1:]) == tuple(target[k].shape[1:]) for k, v in sources.items())
    softmax = published.activation == "softmax"
    report.head = ("re-initialised" if not fits else "softmax rows minus background" if softmax else "class rows")
    if not fits:
        report.notes.append("the file's output head does not fit this network: every organ's output re-initialised")
    for key in keys:
        rows = target[key].clone()
        src = sources[key]
        for index, organ in enumerate(organs.organs):
            value = class_of.get(organ)
            channel = None if value is None else value - published.channel_offset
            if not fits or channel is None or not 0 <= channel < src.shape[0]:
                continue
            rows[index] = src[channel] - src[0] if softmax else src[channel]
            report.organs_from_classes[organ] = published.classes[value]
        state[key] = rows
        if fits:
            used.update(k for k in (key, f"{key}.weight") if k in published.state)
    report.organs_reinitialised = [o for o in organs.organs if o not in report.organs_from_classes]


def _atlas(path: Path, *, arch: str, organs: OrganIndex) -> tuple[Checkpoint, StartReport]:
    """An Atlas checkpoint (trained elsewhere, or by another group): taken as it is, organs must be the label set's."""
    checkpoint = load_checkpoint(path, organs=organs.organs)
    if checkpoint.arch != arch:
        raise CheckpointError(path, f"an Atlas {checkpoint.arch} checkpoint cannot start {arch}")
    report = StartReport(format="atlas", family=(checkpoint.network or {}).get("family", checkpoint.arch),
                         target_keys=len(checkpoint.state), copied=list(checkpoint.state), head="class rows",
                         organs_from_classes={o: o for o in organs.organs})
    checkpoint.parent = path.name
    return checkpoint, report
