"""The one place that turns rows into ml_engine calls and back: training cases from labels and revisions,
checkpoints to and from storage, and a case's ensemble inference + attention as files and sizes.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from annotation.errors import Invalid, engine_refusals
from annotation.models import Case, ModelVersion
from annotation.selectors.labels import LabelRef
from annotation.storage import local_copy, read_volume, read_voxels, store_file
from ml_engine.attention import AttentionSettings, case_attention, max_heatmap
from ml_engine.ensemble import EnsembleAverage, member_votes
from ml_engine.io import spacing_from_affine, write_nifti, write_nifti_box
from ml_engine.labels import LabelMap, OrganIndex
from ml_engine.members import MemberInfo, MemberSpec, inspect_member, load_member
from ml_engine.metrics import dice
from ml_engine.networks import defaults_for
from ml_engine.predict import Predictor
from ml_engine.train import (
    Checkpoint,
    TrainConfig,
    cached_train_case,
    load_checkpoint,
    make_train_case,
    save_checkpoint,
    train,
)

SHIPPED_CHECKPOINTS = Path(settings.BASE_DIR) / "ml_engine" / "checkpoints"
PREPROCESSED_CACHE = Path(settings.VAR_DIR) / "cache" / "preprocessed"  # per worker machine


def load_case_volume(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The case's CT (x, y, z) and affine (4, 4), read from storage."""
    volume = read_volume(case.ct_file.name)
    return np.asarray(volume.data), volume.affine


def read_label(ref: LabelRef, organs: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A stored label (selectors.labels.LabelRef) as (x, y, z) uint8 and the organs of `organs` it covers."""
    return read_voxels(ref.name), covered_organs(ref, organs)


def covered_organs(ref: LabelRef, organs: Sequence[str]) -> list[str]:
    """The organs of `organs` that a stored label covers."""
    return list(organs) if ref.organs is None else [o for o in organs if o in ref.organs]


def training_cases(labelled: Sequence[tuple[Case, LabelRef]], *, organs: Sequence[str], values: dict[str, int],
                   arch: str, size: str):
    """Preprocessed TrainCases (ml_engine.train.make_train_case) for (case, label to train on) pairs.

    values: organ -> its value in the label maps (the label set's).
    """
    spec = defaults_for(arch, size)
    prepared = []
    for case, ref in labelled:
        covered = covered_organs(ref, organs)
        if not covered:
            continue

        def build(case=case, ref=ref):
            data, covered = read_label(ref, organs)
            ct, affine = load_case_volume(case)
            return make_train_case(case.name, ct, affine, {o: data == values[o] for o in covered}, organs,
                                   spec.spacing)

        # preprocessed once per case, label and spacing for every architecture and round, memory-mapped from disk
        key = json.dumps([case.checksum, case.ct_file.name, ref.name, _stamp(ref.name), list(organs),
                          [values[o] for o in organs], covered, list(spec.spacing)])
        prepared.append(cached_train_case(PREPROCESSED_CACHE, key, build))
    return prepared


def _stamp(name: str) -> str:
    """The stored file's size and modification time: a label replaced under the same name is a new cache key."""
    try:
        return f"{default_storage.size(name)}:{default_storage.get_modified_time(name).timestamp()}"
    except (NotImplementedError, OSError):
        return ""


def shipped_checkpoint(arch: str, size: str) -> Path | None:
    path = SHIPPED_CHECKPOINTS / f"{arch}_{size}.pt"
    return path if path.is_file() else None


def load_model(version: ModelVersion) -> Checkpoint:
    with local_copy(version.checkpoint.name) as path:
        return load_checkpoint(path)


def adopt_shipped(*, arch: str, size: str, organs: Sequence[str], storage_name: str) -> dict | None:
    """Round 0 without a labelled case: the shipped checkpoint of arch and size, stored as it is (not fine-tuned), when
    there is one for these organs; else None. Returns the model's metadata."""
    shipped = shipped_checkpoint(arch, size)
    if shipped is None or tuple(load_checkpoint(shipped).organs) != tuple(organs):
        return None
    store_file(storage_name, shipped)
    return {"parent": shipped.name, "training_cases": [], "fine_tuned": False,
            "note": "no labelled case: the shipped checkpoint as it is"}


def train_architecture(*, arch: str, size: str, organs: Sequence[str], values: dict[str, int],
                       cases: Sequence[tuple[Case, LabelRef]], parent: ModelVersion | None, steps: int | None,
                       epochs: int | None, seed: int, storage_name: str, progress: Callable[[float, str], None],
                       holdout: Sequence[tuple[Case, LabelRef]] = ()) -> dict:
    """Train (round 0: from the shipped checkpoint when there is one) or fine-tune (from parent) one architecture.

    Stores the checkpoint under storage_name; returns its metadata (parent, cases, metrics, and with a holdout of
    revised cases left out of training, the validation Dice of the new model and of its parent on them).
    """
    train_cases = training_cases(cases, organs=organs, values=values, arch=arch, size=size)
    if not train_cases:
        raise Invalid("no labelled case to train on: import labels or revise some cases first")
    init, parent_name = None, None
    if parent is not None:
        init, parent_name = load_model(parent), parent.name
    elif (shipped := shipped_checkpoint(arch, size)) is not None:
        candidate = load_checkpoint(shipped)
        if tuple(candidate.organs) == tuple(organs):
            init, parent_name = candidate, shipped.name
    batch = defaults_for(arch, size).batch
    if steps is None and epochs is not None:
        steps = max(1, math.ceil(epochs * len(train_cases) / batch))
    config = TrainConfig(arch=arch, size=size, organs=tuple(organs), steps=steps, seed=seed)
    share = 0.9 if holdout else 1.0
    checkpoint = train(train_cases, config, init=init,
                       progress=lambda done, total, loss: progress(share * done / total,
                                                                   f"step {done}/{total}, loss {loss:.3f}"))
    meta = {"parent": parent_name, "training_cases": [c.name for c in train_cases],
            "metrics": dict(checkpoint.metrics)}
    if holdout:
        progress(share, f"validating on {len(holdout)} held-out revised cases")
        meta["validation"] = validate(checkpoint, init, holdout, organs=organs, values=values)
    with tempfile.TemporaryDirectory(prefix="atlas-ckpt-") as tmp:
        local = save_checkpoint(Path(tmp) / "model.pt", checkpoint)
        store_file(storage_name, local)
    return meta


def validate(model: Checkpoint, parent: Checkpoint | None, cases: Sequence[tuple[Case, LabelRef]], *,
             organs: Sequence[str], values: dict[str, int]) -> dict:
    """Per-organ Dice, averaged over cases, of model (and of its parent) against the cases' labels to train on.

    Returns {"cases", "dice", "mean", "parent_dice", "parent_mean"} (parent_* None without a parent).
    """
    scores: dict[str, dict[str, list[float]]] = {"model": {o: [] for o in organs}, "parent": {o: [] for o in organs}}
    members = {"model": Predictor([model])} | ({"parent": Predictor([parent])} if parent is not None else {})
    names = []
    for case, ref in cases:
        names.append(case.name)
        truth, covered = read_label(ref, organs)
        ct, affine = load_case_volume(case)
        for key, predictor in members.items():
            _, masks = predictor.predict_masks(ct, affine)
            for organ in covered:
                scores[key][organ].append(dice(masks[organ], truth == values[organ]))

    def summary(key: str) -> tuple[dict[str, float | None], float | None]:
        if key not in members:
            return {}, None
        per_organ = {o: (round(float(np.mean(v)), 4) if v else None) for o, v in scores[key].items()}
        known = [v for v in per_organ.values() if v is not None]
        return per_organ, (round(float(np.mean(known)), 4) if known else None)

    model_dice, model_mean = summary("model")
    parent_dice, parent_mean = summary("parent")
    return {"cases": names, "dice": model_dice, "mean": model_mean,
            "parent_dice": parent_dice or None, "parent_mean": parent_mean}


_PREDICTORS: dict[tuple[int, ...], Predictor] = {}


def predictor_for(versions: Sequence[ModelVersion]) -> Predictor:
    """A Predictor for these model versions, loaded once per worker process."""
    key = tuple(sorted(v.pk for v in versions))
    if key not in _PREDICTORS:
        _PREDICTORS.clear()  # one ensemble in memory at a time
        _PREDICTORS[key] = Predictor([load_model(v) for v in sorted(versions, key=lambda v: v.pk)],
                                     cpu_runtime=settings.ATLAS_CPU_RUNTIME)
    return _PREDICTORS[key]


@dataclass
class OrganAttentionInput:
    """One organ's attention to record: its size and hotspots (largest first, the stored hotspot format)."""

    organ: str
    size_ml: float
    voxels: int
    hotspots: list[dict] = field(default_factory=list)


@dataclass
class InferenceFiles:
    """Local files of one case's prediction, and the attention sizes to record."""

    pseudo_label: Path
    heatmap: Path
    attention: dict[str, Path] = field(default_factory=dict)
    soft_pred: dict[str, dict[str, Path]] = field(default_factory=dict)
    organs: list[OrganAttentionInput] = field(default_factory=list)


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


def case_members(case: Case, versions: Sequence[ModelVersion]
                 ) -> tuple[Iterator[tuple[str, dict[str, np.ndarray]]], tuple[int, ...], np.ndarray]:
    """Run the ensemble on a case: its members' votes organ by organ, (organ, {member: (x, y, z) uint8 p x 255}), and
    the CT's shape and affine.

    Trained networks run through the Predictor; registered members (an nnU-Net v2 folder, TotalSegmentator) run
    through ml_engine.members; external members (imported predictions of other tools) vote with their stored label
    maps.
    """
    ct, affine = load_case_volume(case)
    networks = [v for v in versions if v.arch in ModelVersion.TRAINED]
    externals = {v.name: soft for v in versions if v.arch == ModelVersion.Arch.EXTERNAL
                 if (soft := external_soft(case, v))}
    registered = [v for v in versions if v.arch in ModelVersion.REGISTERED]
    if registered:
        organs = case.dataset.label_set.organ_index()
        externals |= {v.name: registered_votes(v, ct, affine, organs) for v in sorted(registered, key=lambda v: v.pk)}
    if networks:
        return predictor_for(networks).predict(ct, affine).iter_members(extra=externals), ct.shape, affine
    return ((organ, {name: soft[organ] for name, soft in externals.items() if organ in soft})
            for organ in case.dataset.label_set.organ_names()), ct.shape, affine


def infer_case(*, case: Case, versions: Sequence[ModelVersion], workdir: Path,
               attention_settings: AttentionSettings | None = None) -> InferenceFiles:
    """Run the ensemble on a case; write soft predictions, pseudo-label and attention under workdir (one step)."""
    members, shape, affine = case_members(case, versions)
    return write_ensemble(members, values=case.dataset.label_set.organ_values(), shape=shape, affine=affine,
                          workdir=workdir, attention_settings=attention_settings)


def write_votes(members: Iterable[tuple[str, dict[str, np.ndarray]]], *, affine: np.ndarray,
                workdir: Path) -> dict[str, dict[str, Path]]:
    """Only the members' soft predictions (uint8 votes, fast gzip) under workdir: member -> organ -> file. The first
    half of the split inference (the GPU worker's part); write_ensemble over stored_members is the second."""
    files: dict[str, dict[str, Path]] = {}
    for organ, soft in members:
        for member, array in soft.items():
            path = workdir / "backbones" / member / f"{organ}.nii.gz"
            files.setdefault(member, {})[organ] = write_nifti(path, array, affine, dtype=np.uint8)
    if not files:
        raise Invalid("no ensemble member predicts any organ of this case")
    return files


def stored_members(soft_pred: dict[str, dict[str, str]], *, organs: Sequence[str], exclude: str | None = None
                   ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Stored soft predictions (member -> organ -> storage name), read back organ by organ: (organ, {member: uint8})."""
    for organ in organs:
        maps = {}
        for member, per_organ in soft_pred.items():
            if member != exclude and organ in per_organ:
                maps[member] = read_voxels(per_organ[organ]).astype(np.uint8, copy=False)
        yield organ, maps


def write_ensemble(members: Iterable[tuple[str, dict[str, np.ndarray]]], *, values: dict[str, int],
                   shape: Sequence[int], affine: np.ndarray, workdir: Path,
                   attention_settings: AttentionSettings | None = None, write_soft: bool = True) -> InferenceFiles:
    """Write members' soft predictions, their combination and its attention under workdir.

    Each organ's heatmap is cropped to its attention box and the case's heatmap (max over organs) to the union of
    the boxes, their affines shifted (ml_engine.io.write_nifti_box): viewers place them on the CT's grid, and
    ml_engine.io.load_on_grid reads them back onto it.

    members: (organ, {member: (x, y, z) uint8 p x 255}), in any order; an organ no member votes on is left out.
    values: the label set's {organ: voxel value}. write_soft: False when the soft predictions are stored already (the
    split inference's attend step): files.soft_pred stays empty. The members combine by
    ml_engine.ensemble.EnsembleAverage, the engine's one rule (the `infer` CLI's too), into the pseudo-label.
    """
    files = InferenceFiles(pseudo_label=workdir / "pseudo_label.nii.gz", heatmap=workdir / "attention.nii.gz")
    average = EnsembleAverage(shape, values)
    probs: dict[str, list[np.ndarray]] = {}
    for organ, soft in members:
        if not soft:
            continue
        if write_soft:
            for member, per_organ in write_votes([(organ, soft)], affine=affine, workdir=workdir).items():
                files.soft_pred.setdefault(member, {}).update(per_organ)
        average.add(organ, soft)
        probs[organ] = list(soft.values())
    if not probs:
        raise Invalid("no ensemble member predicts any organ of this case")
    write_nifti(files.pseudo_label, average.label, affine, dtype=np.uint8)
    attention = case_attention(probs, spacing=spacing_from_affine(affine), settings=attention_settings)
    crops = []
    for organ, organ_attention in attention.organs.items():
        crop, start = organ_attention.compact_heatmap()  # the organ's attention box, the affine shifted
        crops.append((crop, start))
        files.attention[organ] = write_nifti_box(workdir / "attention" / f"{organ}.nii.gz", crop, affine, start,
                                                 dtype=np.uint8)
        files.organs.append(OrganAttentionInput(
            organ=organ, size_ml=organ_attention.volume_ml, voxels=organ_attention.voxels,
            hotspots=[h.to_dict(affine) for h in organ_attention.hotspots]))  # the engine's one format
    combined, start = max_heatmap(crops)  # max over organs, cropped to the union of their boxes
    write_nifti_box(files.heatmap, combined, affine, start, dtype=np.uint8)
    return files

