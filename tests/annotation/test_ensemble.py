"""run_inference, import_predictions (another tool's label maps as an ensemble member) and held-out validation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from annotation.errors import Invalid
from annotation.models import OrganAttention, Prediction, Round, Task
from annotation.selectors.rounds import holdout_cases
from annotation.services import ensemble, queue, revisions, rounds
from annotation.services.users import create_user
from annotation.storage import local_copy
from ml_engine.io import load_nifti, write_nifti
from ml_engine.metrics import dice
from ml_engine.phantoms import ORGANS, make_phantom
from tests.annotation.loop import import_phantoms

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOTALSEG = Path(__file__).resolve().parents[2] / "fixtures" / "label_maps" / "totalsegmentator.json"
TOTALSEG_VALUES = {organ: int(v) for v, organ in json.loads(TOTALSEG.read_text())["labels"].items()}


@pytest.fixture
def round0(tmp_path):
    truth = import_phantoms(tmp_path / "src", first_seed=300, prefix="ex", dataset="ens")
    round = rounds.start_round(archs=["unet"], steps=2)
    round.refresh_from_db()
    assert round.status == Round.Status.ANNOTATING, round.error
    return round, truth


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*[str(a) for a in args], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def read(name: str) -> np.ndarray:
    with local_copy(name) as path:
        return np.asarray(load_nifti(path).data)


def pseudo_dice(round, case_name: str, truth) -> float:
    prediction = Prediction.objects.get(round=round, case__name=case_name)
    label = read(prediction.pseudo_label.name)
    return float(np.mean([dice(label == i + 1, truth.labels == i + 1) for i in range(len(ORGANS))]))


def test_run_inference_refreshes_named_cases_and_keeps_leases(round0):
    round, _ = round0
    annotator = create_user(username="ann", role="annotator", password="pw-123456789")
    leased = queue.lease_next(user=annotator)
    before = {p.case.name: p.pk for p in Prediction.objects.filter(round=round)}
    attention_ids = set(OrganAttention.objects.filter(round=round, case__name="ex1").values_list("pk", flat=True))

    out, _ = run("run_inference", "--cases", "ex1", "--verbosity", 0)
    assert "1 cases inferred with round0-unet-tiny" in out and "4 tasks" in out
    assert {p.case.name: p.pk for p in Prediction.objects.filter(round=round)} == before
    renewed = set(OrganAttention.objects.filter(round=round, case__name="ex1").values_list("pk", flat=True))
    assert len(renewed) == len(ORGANS) and not renewed & attention_ids  # ex1's rows were written again
    assert Task.objects.get(pk=leased.pk).status == Task.Status.LEASED  # a lease in progress survives

    with pytest.raises(CommandError, match="no case to infer named nope"):
        run("run_inference", "--cases", "ex1", "nope")
    with pytest.raises(CommandError, match="round 7 does not exist"):
        run("run_inference", "--round", 7)


def test_import_predictions_joins_the_ensemble(round0, tmp_path):
    round, truth = round0
    tool = tmp_path / "totalseg"
    tool.mkdir()
    for name, phantom in truth.items():
        foreign = np.zeros(phantom.labels.shape, dtype=np.uint8)
        for i, organ in enumerate(ORGANS):
            if organ in TOTALSEG_VALUES:
                foreign[phantom.labels == i + 1] = TOTALSEG_VALUES[organ]
        foreign[(phantom.labels == 0) & (phantom.ct > 300)] = 25  # a bone the label map sends to background
        if name == "ex3":
            (tool / name).mkdir()
            write_nifti(tool / name / "segmentations.nii.gz", foreign, phantom.affine, dtype=np.uint8)
        elif name != "ex2":
            write_nifti(tool / f"{name}.nii.gz", foreign, phantom.affine, dtype=np.uint8)
    bad = make_phantom(1, shape=(16, 16, 16), name="x")
    write_nifti(tool / "ex2.nii.gz", bad.labels, bad.affine, dtype=np.uint8)  # wrong grid
    write_nifti(tool / "ghost.nii.gz", bad.labels, bad.affine, dtype=np.uint8)  # no such case
    before = {name: pseudo_dice(round, name, t) for name, t in truth.items()}

    err = io.StringIO()
    with pytest.raises(CommandError, match="2 files were not imported"):  # the good files import all the same
        call_command("import_predictions", str(tool), "--model", "totalseg", "--label-map", str(TOTALSEG),
                     verbosity=0, stderr=err, stdout=io.StringIO())
    assert "ex2.nii.gz: label shape (16, 16, 16) differs from the CT's (32, 32, 32)" in err.getvalue()
    assert "ghost.nii.gz: no case named 'ghost'" in err.getvalue()

    member = round.members.get(name="totalseg")
    assert member.arch == "external" and set(member.metadata["organs"]) == set(TOTALSEG_VALUES)
    for name in ("ex0", "ex1", "ex3"):
        prediction = Prediction.objects.get(round=round, case__name=name)
        assert set(prediction.files["soft_pred"]) == {"unet", "totalseg"}
        votes = read(prediction.files["soft_pred"]["totalseg"]["liver"])
        assert set(np.unique(votes)) <= {0, 255}
        np.testing.assert_array_equal(votes == 255, truth[name].labels == ORGANS.index("liver") + 1)
        label = read(prediction.pseudo_label.name)
        for i, organ in enumerate(ORGANS):  # a voxel the tool rejects can't reach mean > 0.5 with 2 members
            if organ in TOTALSEG_VALUES:
                assert not np.any((label == i + 1) & (truth[name].labels != i + 1))
        assert pseudo_dice(round, name, truth[name]) > before[name]
    assert set(Prediction.objects.get(round=round, case__name="ex2").files["soft_pred"]) == {"unet"}
    assert Task.objects.filter(round=round).count() == 4

    # the member stays in the ensemble of later rounds, with its stored votes
    round1 = rounds.start_round(archs=["unet"], steps=1)
    round1.refresh_from_db()
    assert round1.status == Round.Status.ANNOTATING, round1.error
    assert set(round1.members.values_list("name", flat=True)) == {"round1-unet-tiny", "totalseg"}
    assert set(Prediction.objects.get(round=round1, case__name="ex0").files["soft_pred"]) == {"unet", "totalseg"}
    assert set(Prediction.objects.get(round=round1, case__name="ex2").files["soft_pred"]) == {"unet"}


def test_import_predictions_refusals(round0, tmp_path):
    round, _ = round0
    with pytest.raises(Invalid, match="not one of the trained architectures"):
        ensemble.import_predictions(model="unet", src=tmp_path)
    with pytest.raises(Invalid, match="name of a trained model"):
        ensemble.import_predictions(model="round0-unet-tiny", src=tmp_path)
    with pytest.raises(Invalid, match="not a folder"):
        ensemble.import_predictions(model="tool", src=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Invalid, match="no .nii.gz or .nii label maps"):
        ensemble.import_predictions(model="tool", src=tmp_path / "empty")
    bad_map = tmp_path / "map.json"
    bad_map.write_text('{"1": "lungs"}')
    with pytest.raises(Invalid, match="map.json: key '1' maps to 'lungs'"):
        ensemble.import_predictions(model="tool", src=tmp_path, label_map=bad_map)
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED)
    with pytest.raises(CommandError, match="round 0 is closed"):
        run("import_predictions", tmp_path, "--model", "tool")
    assert not round.members.filter(name="tool").exists()


def test_fine_tuning_validates_on_held_out_revised_cases(round0, tmp_path):
    round, truth = round0
    annotator = create_user(username="ann", role="annotator", password="pw-123456789")
    for _ in range(4):
        task = queue.lease_next(user=annotator)
        upload = write_nifti(tmp_path / f"{task.case.name}.nii.gz", truth[task.case.name].labels,
                             np.asarray(task.case.affine), dtype=np.uint8)
        revisions.submit_revision(task_id=task.pk, user=annotator, upload=upload, base_revision=None)
    round1 = rounds.start_round(archs=["unet"], steps=2, holdout=0.5)
    round1.refresh_from_db()
    assert round1.status == Round.Status.ANNOTATING, round1.error
    meta = round1.members.get().metadata
    held = meta["validation"]["cases"]
    assert len(held) == 2 and not set(held) & set(meta["training_cases"])
    assert len(meta["training_cases"]) == 2
    assert set(meta["validation"]["dice"]) == set(ORGANS) and set(meta["validation"]["parent_dice"]) == set(ORGANS)
    assert 0.0 <= meta["validation"]["mean"] <= 1.0 and 0.0 <= meta["validation"]["parent_mean"] <= 1.0
    assert held == [c.name for c in holdout_cases(round1)]  # the same split for every architecture
    with pytest.raises(Invalid, match="below 1"):
        rounds.start_round(archs=["unet"], holdout=1.0)
    assert round1.label_set.organ_names() == tuple(ORGANS)
