"""The one place that turns rows into ml_engine calls and back: training cases from labels and revisions,
checkpoints to and from storage, and a case's ensemble inference + attention as files and sizes.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings

from annotation.models import Case, LabelSet, ModelVersion, Review, Revision
from annotation.services.predictions import OrganAttentionInput
from annotation.storage import local_copy, store_file
from ml_engine.attention import AttentionSettings, case_attention
from ml_engine.io import load_nifti, write_nifti
from ml_engine.networks import defaults_for
from ml_engine.predict import Predictor
from ml_engine.train import Checkpoint, TrainConfig, load_checkpoint, make_train_case, save_checkpoint, train

SHIPPED_CHECKPOINTS = Path(settings.BASE_DIR) / "ml_engine" / "checkpoints"


def organ_names(label_set: LabelSet) -> tuple[str, ...]:
    """The label set's organs in value order: the networks' output channels."""
    return tuple(label_set.organs.order_by("value").values_list("name", flat=True))


def load_case_volume(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """The case's CT (x, y, z) and affine (4, 4), read from storage."""
    with local_copy(case.ct_file.name) as path:
        volume = load_nifti(path)
    return np.asarray(volume.data), volume.affine


def best_label(case: Case, organs: Sequence[str]) -> tuple[np.ndarray, list[str]] | None:
    """The best labels a case has for training: (x, y, z) uint8 label map and the organs it covers.

    The latest revision that no lead rejected covers every organ; else the imported source label covers its
    organs; else None (unlabelled).
    """
    revision = (Revision.objects.filter(case=case).exclude(review__decision=Review.Decision.REJECTED)
                .order_by("-number").first())
    if revision is not None:
        with local_copy(revision.label_file.name) as path:
            return np.asarray(load_nifti(path).data), list(organs)
    source = case.source_labels.order_by("-id").first()
    if source is not None:
        covered = set(source.organs.values_list("name", flat=True))
        with local_copy(source.label_file.name) as path:
            return np.asarray(load_nifti(path).data), [o for o in organs if o in covered]
    return None


def training_cases(cases: Sequence[Case], *, organs: Sequence[str], arch: str, size: str):
    """Preprocessed TrainCases for the labelled ones among cases (ml_engine.train.make_train_case)."""
    values = {name: i + 1 for i, name in enumerate(organs)}
    spec = defaults_for(arch, size)
    prepared = []
    for case in cases:
        label = best_label(case, organs)
        if label is None or not label[1]:
            continue
        data, covered = label
        ct, affine = load_case_volume(case)
        masks = {organ: data == values[organ] for organ in covered}
        prepared.append(make_train_case(case.name, ct, affine, masks, organs, spec.spacing))
    return prepared


def shipped_checkpoint(arch: str, size: str) -> Path | None:
    path = SHIPPED_CHECKPOINTS / f"{arch}_{size}.pt"
    return path if path.is_file() else None


def load_model(version: ModelVersion) -> Checkpoint:
    with local_copy(version.checkpoint.name) as path:
        return load_checkpoint(path)


def train_architecture(*, arch: str, size: str, organs: Sequence[str], cases: Sequence[Case],
                       parent: ModelVersion | None, steps: int | None, epochs: int | None, seed: int,
                       storage_name: str, progress: Callable[[float, str], None]) -> dict:
    """Train (round 0: from the shipped checkpoint when there is one) or fine-tune (from parent) one architecture.

    Stores the checkpoint under storage_name; returns its metadata (parent, cases, metrics).
    """
    train_cases = training_cases(cases, organs=organs, arch=arch, size=size)
    if not train_cases:
        raise ValueError("no labelled case to train on: import labels or revise some cases first")
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
    checkpoint = train(train_cases, config, init=init,
                       progress=lambda done, total, loss: progress(done / total, f"step {done}/{total}, "
                                                                                f"loss {loss:.3f}"))
    with tempfile.TemporaryDirectory(prefix="atlas-ckpt-") as tmp:
        local = save_checkpoint(Path(tmp) / "model.pt", checkpoint)
        store_file(storage_name, local)
    return {"parent": parent_name, "training_cases": [c.name for c in train_cases],
            "metrics": dict(checkpoint.metrics)}


_PREDICTORS: dict[tuple[int, ...], Predictor] = {}


def predictor_for(versions: Sequence[ModelVersion]) -> Predictor:
    """A Predictor for these model versions, loaded once per worker process."""
    key = tuple(sorted(v.pk for v in versions))
    if key not in _PREDICTORS:
        _PREDICTORS.clear()  # one ensemble in memory at a time
        _PREDICTORS[key] = Predictor([load_model(v) for v in sorted(versions, key=lambda v: v.pk)])
    return _PREDICTORS[key]


@dataclass
class InferenceFiles:
    """Local files of one case's prediction, and the attention sizes to record."""

    pseudo_label: Path
    heatmap: Path
    attention: dict[str, Path] = field(default_factory=dict)
    soft_pred: dict[str, dict[str, Path]] = field(default_factory=dict)
    organs: list[OrganAttentionInput] = field(default_factory=list)


def infer_case(*, case: Case, versions: Sequence[ModelVersion], workdir: Path,
               attention_settings: AttentionSettings | None = None) -> InferenceFiles:
    """Run the ensemble on a case; write soft predictions, pseudo-label and attention under workdir."""
    ct, affine = load_case_volume(case)
    predictor = predictor_for(versions)
    result = predictor.predict(ct, affine)
    probs: dict[str, list[np.ndarray]] = {}
    files = InferenceFiles(pseudo_label=workdir / "pseudo_label.nii.gz", heatmap=workdir / "attention.nii.gz")
    for output in result.iter_organs():
        probs[output.organ] = [output.soft[m] for m in result.members]
        for member, soft in output.soft.items():
            path = workdir / "backbones" / member / f"{output.organ}.nii.gz"
            files.soft_pred.setdefault(member, {})[output.organ] = write_nifti(path, soft, affine, dtype=np.uint8)
    write_nifti(files.pseudo_label, result.pseudo_label, affine, dtype=np.uint8)
    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    attention = case_attention(probs, spacing=spacing, settings=attention_settings)
    heatmap = np.zeros(ct.shape, dtype=np.uint8)
    for organ, organ_attention in attention.organs.items():
        full = organ_attention.full_heatmap()
        np.maximum(heatmap, full, out=heatmap)
        files.attention[organ] = write_nifti(workdir / "attention" / f"{organ}.nii.gz", full, affine, dtype=np.uint8)
        files.organs.append(OrganAttentionInput(
            organ=organ, size_ml=organ_attention.volume_ml, voxels=organ_attention.voxels,
            hotspots=[_hotspot(h, affine) for h in organ_attention.hotspots]))
    write_nifti(files.heatmap, heatmap, affine, dtype=np.uint8)
    return files


def _hotspot(hotspot, affine: np.ndarray) -> dict:
    """The stored hotspot format: {voxels, ml, centroid (voxel x, y, z), centroid_mm, bbox [start, stop]}."""
    raw = hotspot.to_dict(affine)
    return {"voxels": raw["voxels"], "ml": raw["volume_ml"], "centroid": raw["centroid_voxel"],
            "centroid_mm": raw.get("centroid_mm"), "bbox": [raw["bbox_voxel"]["start"], raw["bbox_voxel"]["stop"]]}
