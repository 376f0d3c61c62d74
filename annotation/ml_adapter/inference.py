"""Inference: a case's ensemble (networks, registered and external members) run organ by organ, and the files it
writes: soft predictions, the pseudo-label (the engine's one combine rule), attention heatmaps and sizes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from annotation.errors import Invalid
from annotation.ml_adapter.common import load_case_volume, load_model
from annotation.ml_adapter.members import external_soft, registered_votes
from annotation.models import Case, ModelVersion
from annotation.storage import read_voxels
from ml_engine.attention import AttentionSettings, case_attention, max_heatmap
from ml_engine.ensemble import EnsembleAverage
from ml_engine.io import spacing_from_affine, write_nifti, write_nifti_box
from ml_engine.predict import Predictor

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
