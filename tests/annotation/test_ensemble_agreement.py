"""The `infer` CLI and a round's inference make the same pseudo-label, voxel for voxel, with and without an
external member that covers only some organs (issue 13: one ensemble combine)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from annotation import ml_adapter
from annotation.models import Case, ModelVersion
from annotation.services.imports import import_cases
from annotation.storage import store_file
from ml_engine.__main__ import main
from ml_engine.io import load_nifti, write_nifti
from ml_engine.networks import ARCHITECTURES
from ml_engine.phantoms import make_phantom, write_phantom_case

pytestmark = pytest.mark.django_db

SHIPPED = Path(__file__).resolve().parents[2] / "ml_engine" / "checkpoints"
TOOL_ORGANS = {"spleen": 11, "liver": 22, "stomach": 33}  # the external tool's own values, three organs only


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(7, shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0), name="agree0")


def _tool_label(phantom) -> np.ndarray:
    """The tool's segmentation in its own values: spleen, liver (grown by 2 voxels, into its neighbours), stomach."""
    out = np.zeros(phantom.labels.shape, dtype=np.uint8)
    for organ, value in TOOL_ORGANS.items():
        mask = phantom.organ_mask(organ)
        if organ == "liver":
            mask = ndimage.binary_dilation(mask, iterations=2)
        out[mask & (out == 0)] = value
    return out


def _round_inference(case: Case, tmp_path: Path, *, external: np.ndarray | None) -> np.ndarray:
    """A round's path: ModelVersions of the shipped checkpoints (+ an external member), ml_adapter.infer_case."""
    versions = []
    for arch in ARCHITECTURES:
        name = store_file(f"models/shipped-{arch}.pt", SHIPPED / f"{arch}_tiny.pt")
        versions.append(ModelVersion.objects.create(name=f"shipped-{arch}", arch=arch, size="tiny", checkpoint=name))
    if external is not None:
        tool = ModelVersion.objects.create(name="tool", arch=ModelVersion.Arch.EXTERNAL,
                                           metadata={"organs": list(TOOL_ORGANS)})
        values = case.dataset.label_set.organ_values()
        in_set = np.zeros_like(external)
        for organ, foreign in TOOL_ORGANS.items():
            in_set[external == foreign] = values[organ]
        local = write_nifti(tmp_path / "tool_in_set.nii.gz", in_set, case_affine(case), dtype=np.uint8)
        store_file(ml_adapter.external_label_name(case, tool.name), local)
        versions.append(tool)
    files = ml_adapter.infer_case(case=case, versions=versions, workdir=tmp_path / "round")
    return np.asarray(load_nifti(files.pseudo_label).data)


def case_affine(case: Case) -> np.ndarray:
    return ml_adapter.load_case_volume(case)[1]


def _import(phantom, tmp_path: Path) -> Case:
    write_phantom_case(phantom, tmp_path / "src", organs=())
    assert import_cases(tmp_path / "src", dataset="agree").ok
    return Case.objects.get(name=phantom.name)


def _cli_inference(ct: Path, out: Path) -> np.ndarray:
    models = [str(SHIPPED / f"{arch}_tiny.pt") for arch in ARCHITECTURES]
    assert main(["infer", "--ct", str(ct), "--models", *models, "--out", str(out), "--device", "cpu"]) == 0
    return np.asarray(load_nifti(out / "average" / "pseudo_label.nii.gz").data)


def _overlaps(case_dir: Path) -> int:
    masks = [np.asarray(load_nifti(p).data) > 0 for p in sorted((case_dir / "average" / "segmentations").iterdir())]
    return int((np.sum(masks, axis=0) > 1).sum())


def test_cli_and_round_agree_voxel_for_voxel(phantom, tmp_path):
    case = _import(phantom, tmp_path)
    cli = _cli_inference(tmp_path / "src" / phantom.name / "ct.nii.gz", tmp_path / "cli")
    assert _overlaps(tmp_path / "cli") > 0  # else the tie rule is never exercised
    round_label = _round_inference(case, tmp_path, external=None)
    np.testing.assert_array_equal(cli, round_label)


def test_cli_and_round_agree_with_a_partial_external_member(phantom, tmp_path):
    case = _import(phantom, tmp_path)
    out = tmp_path / "cli"
    _cli_inference(tmp_path / "src" / phantom.name / "ct.nii.gz", out)
    tool = _tool_label(phantom)
    seg = write_nifti(tmp_path / "tool.nii.gz", tool, phantom.affine, dtype=np.uint8)
    label_map = tmp_path / "tool_map.json"
    label_map.write_text(json.dumps({"labels": {str(value): organ for organ, value in TOOL_ORGANS.items()},
                                     "unmapped": "error"}))
    assert main(["external", "--seg", str(seg), "--name", "tool", "--label-map", str(label_map),
                 "--out", str(out)]) == 0
    cli = np.asarray(load_nifti(out / "average" / "pseudo_label.nii.gz").data)
    assert _overlaps(out) > 0
    round_label = _round_inference(case, tmp_path, external=tool)
    np.testing.assert_array_equal(cli, round_label)


def test_write_ensemble_writes_the_label_sets_values(tmp_path):
    """The round's writer takes the label set's values (word: liver 1, spleen 2), not positions in a list."""
    from ml_engine.labels import label_set

    word = label_set("word")
    shape = (8, 8, 8)
    liver, spleen = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    liver[:4], spleen[4:] = 255, 255
    members = [("spleen", {"a": spleen, "b": spleen}), ("liver", {"a": liver})]
    files = ml_adapter.write_ensemble(members, values=word.values, shape=shape, affine=np.eye(4), workdir=tmp_path)
    label = np.asarray(load_nifti(files.pseudo_label).data)
    assert set(np.unique(label[:4])) == {word.values["liver"]} and set(np.unique(label[4:])) == {word.values["spleen"]}
    assert set(files.soft_pred) == {"a", "b"} and set(files.soft_pred["b"]) == {"spleen"}


def test_a_worker_runs_its_members_in_the_cpu_runtime_it_is_set_to(settings):
    name = store_file("models/shipped-unet.pt", SHIPPED / "unet_tiny.pt")
    version = ModelVersion.objects.create(name="shipped-unet", arch="unet", size="tiny", checkpoint=name)
    ml_adapter._PREDICTORS.clear()
    assert ml_adapter.predictor_for([version]).runtimes == ["torch"]  # the default
    settings.ATLAS_CPU_RUNTIME = "openvino"
    ml_adapter._PREDICTORS.clear()
    try:
        assert ml_adapter.predictor_for([version]).runtimes == ["openvino"]
    finally:
        ml_adapter._PREDICTORS.clear()
