"""A group with only CTs can start (issue 17, item 2): round 0 without a labelled case infers with the members it
has (shipped checkpoints as they are, registered models, imported predictions); imports and registrations work before
any round; round_status and the dashboard say which members made the round and whether any was fine-tuned.
Registering refuses what cannot run here, with the reason."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation.errors import Invalid
from annotation.models import ModelVersion, OrganAttention, Prediction, Round, Task
from annotation.selectors.rounds import round_summary
from annotation.services import ensemble, members, rounds
from annotation.services.imports import import_cases
from annotation.services.users import create_user
from annotation.storage import local_copy
from ml_engine.io import load_nifti, write_nifti
from ml_engine.phantoms import organ_value
from tests.annotation.loop import import_phantoms
from tests.conftest import CT_EXAMPLE

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "label_maps"
TOTALSEG_VALUES = {organ: int(v) for v, organ in json.loads((FIXTURES / "totalsegmentator.json").read_text())
                   ["labels"].items() if organ}


def run(*args) -> str:
    out = io.StringIO()
    call_command(*[str(a) for a in args], stdout=out, stderr=io.StringIO())
    return out.getvalue()


def as_totalsegmentator(labels: np.ndarray, *, drop: str | None = None) -> np.ndarray:
    """A phantom's truth written in TotalSegmentator's values, as another tool would give it (drop: an organ missed)."""
    out = np.zeros(labels.shape, dtype=np.uint8)
    for organ, value in TOTALSEG_VALUES.items():
        if organ != drop:
            out[labels == organ_value(organ)] = value
    return out


@pytest.fixture
def unlabelled(tmp_path):
    """Three imported phantoms without any label."""
    return import_phantoms(tmp_path / "src", first_seed=500, prefix="ct", dataset="own", n=3, labelled=0)


def test_round_zero_without_labels_takes_the_shipped_checkpoints_as_they_are(unlabelled):
    round = rounds.start_round(archs=["unet", "nnunet"])
    round.refresh_from_db()
    assert round.status == Round.Status.ANNOTATING, round.error
    summary = {m["name"]: m for m in round_summary(round)["members"]}
    assert set(summary) == {"round0-unet-tiny", "round0-nnunet-tiny"}
    assert {m["source"] for m in summary.values()} == {"shipped"}
    assert not any(m["fine_tuned"] for m in summary.values())
    assert ModelVersion.objects.get(name="round0-unet-tiny").metadata["training_cases"] == []
    assert Task.objects.filter(round=round).count() == 3
    out = run("round_status")
    assert "fine-tuned in this round: none" in out
    assert "round0-unet-tiny: unet, shipped checkpoint as it is, not fine-tuned" in out


def test_start_round_refuses_when_there_is_nothing_to_infer_with(unlabelled):
    with pytest.raises(Invalid, match="no labelled case to train on, and no member to infer with"):
        rounds.start_round(archs=[])
    with pytest.raises(Invalid, match="register_member"):
        rounds.start_round(archs=["unet"], size="base")  # no shipped base checkpoint
    with pytest.raises(CommandError, match="no labelled case to train on"):
        run("start_round", "--archs", "none")
    assert not Round.objects.exists()


def test_unlabelled_cts_and_another_tools_label_maps_reach_a_ranked_queue(unlabelled, tmp_path):
    """Two tools' label maps imported before any round make round 0 on their own; where they disagree (one missed
    the liver of ct1) is where the attention is, and that case tops the queue."""
    for tool, drop in (("tool_a", None), ("tool_b", "liver")):
        folder = tmp_path / tool
        for name, phantom in unlabelled.items():
            write_nifti(folder / f"{name}.nii.gz",
                        as_totalsegmentator(phantom.labels, drop=drop if name == "ct1" else None), phantom.affine,
                        dtype=np.uint8)
        report = ensemble.import_predictions(model=tool, src=folder, label_map="totalsegmentator")
        assert report.ok and report.round is None and sorted(report.imported) == ["ct0", "ct1", "ct2"]
    assert not Prediction.objects.exists()
    out = run("import_predictions", tmp_path / "tool_a", "--model", "tool_a", "--label-map", "totalsegmentator")
    assert "no round is annotating: tool_a stored for 3 cases" in out

    run("start_round", "--archs", "none")
    round = Round.objects.get()
    assert round.status == Round.Status.ANNOTATING, round.error
    assert sorted(round.members.values_list("name", flat=True)) == ["tool_a", "tool_b"]
    tasks = list(Task.objects.filter(round=round).order_by("-priority"))
    assert [t.case.name for t in tasks][0] == "ct1" and len(tasks) == 3
    liver = OrganAttention.objects.get(round=round, case__name="ct1", organ__name="liver")
    assert liver.size_ml > 10.0 and liver.hotspots
    assert OrganAttention.objects.get(round=round, case__name="ct0", organ__name="liver").size_ml == 0.0
    prediction = Prediction.objects.get(round=round, case__name="ct1")
    assert set(prediction.files["soft_pred"]) == {"tool_a", "tool_b"}
    out = run("round_status")
    assert "fine-tuned in this round: none" in out and "tool_b: external, imported predictions" in out

    # a later round keeps them; with no labelled case still nothing is fine-tuned
    round1 = rounds.start_round(archs=[])
    round1.refresh_from_db()
    assert round1.status == Round.Status.ANNOTATING, round1.error
    assert sorted(round1.members.values_list("name", flat=True)) == ["tool_a", "tool_b"]


def test_a_real_ct_with_two_models_segmentations_reaches_a_ranked_queue(ct_example, tmp_path):
    """The real CT with TotalSegmentator's normal and fast segmentations, no label: round 0 from the two. Their votes
    are 0 or 255, and on this 3 mm scan they disagree only along borders (pancreas Dice 0.81), which the attention's
    opening (two erosions) removes: the queue is ranked, with no attention. Soft votes (a registered nnU-Net) are
    what gives attention inside organs (tests/integration/test_nnunet_member.py)."""
    assert import_cases(CT_EXAMPLE / "ct.nii.gz", dataset="own").ok
    for model, seg in (("ts_normal", "seg_model_a"), ("ts_fast", "seg_model_b")):
        folder = tmp_path / model
        folder.mkdir()
        (folder / "ct.nii.gz").symlink_to(CT_EXAMPLE / f"{seg}.nii.gz")
        assert ensemble.import_predictions(model=model, src=folder, label_map="totalsegmentator").ok
    round = rounds.start_round(archs=[])
    round.refresh_from_db()
    assert round.status == Round.Status.ANNOTATING, round.error
    task = Task.objects.get(round=round)
    assert task.priority == pytest.approx(sum(OrganAttention.objects.filter(round=round).values_list("size_ml",
                                                                                                      flat=True)))
    prediction = Prediction.objects.get(round=round)
    soft = prediction.files["soft_pred"]
    assert set(soft) == {"ts_normal", "ts_fast"}
    differ = {}
    for organ in ("liver", "pancreas"):
        a, b = (read(soft[m][organ]) for m in ("ts_normal", "ts_fast"))
        differ[organ] = int((a != b).sum()) / max(1, int((a > 0).sum()))
    assert 0 < differ["liver"] < differ["pancreas"]  # the two real models disagree most on the pancreas
    truth = np.asarray(load_nifti(CT_EXAMPLE / "seg_model_a.nii.gz").data)
    label = read(prediction.pseudo_label.name)
    liver = label == 5  # abdomenatlas values
    assert 2 * (liver & (truth == 5)).sum() / (liver.sum() + (truth == 5).sum()) > 0.95


def read(name: str) -> np.ndarray:
    with local_copy(name) as path:
        return np.asarray(load_nifti(path).data)


def test_register_member_refuses_what_cannot_run_here(tmp_path):
    with pytest.raises(Invalid, match="TotalSegmentator package is not installed on this machine"):
        members.register_member(name="ts", kind="totalsegmentator", task="total")
    with pytest.raises(Invalid, match="no such folder"):
        members.register_member(name="mine", kind="nnunetv2", folder=tmp_path / "nope")
    (tmp_path / "model").mkdir()
    with pytest.raises(Invalid, match="dataset.json: missing"):
        members.register_member(name="mine", kind="nnunetv2", folder=tmp_path / "model")
    (tmp_path / "model" / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"},
                                                                 "labels": {"background": 0, "Leber": 1}}))
    (tmp_path / "model" / "plans.json").write_text("{}")
    with pytest.raises(Invalid, match="no fold_N/checkpoint_final.pth"):
        members.register_member(name="mine", kind="nnunetv2", folder=tmp_path / "model")
    (tmp_path / "model" / "fold_0").mkdir()
    (tmp_path / "model" / "fold_0" / "checkpoint_final.pth").write_bytes(b"")
    with pytest.raises(Invalid, match="none of the model's classes \\(1 Leber\\) maps to an organ"):
        members.register_member(name="mine", kind="nnunetv2", folder=tmp_path / "model")
    with pytest.raises(Invalid, match="not one of the trained architectures"):
        members.register_member(name="unet", kind="nnunetv2", folder=tmp_path / "model")
    with pytest.raises(Invalid, match="label_map: .*'Leber' maps to 'lungs'"):
        members.register_member(name="mine", kind="nnunetv2", folder=tmp_path / "model",
                                label_map=_write(tmp_path / "map.json", {"Leber": "lungs"}))
    done = members.register_member(name="mine", kind="nnunetv2", folder=tmp_path / "model",
                                   label_map=_write(tmp_path / "map.json", {"Leber": "liver"}))
    assert done.created and done.version.metadata["organs"] == ["liver"]
    assert done.version.metadata["spec"]["folds"] is None and done.info.detail["folds"] == ["0"]
    with pytest.raises(Invalid, match="'tool'; choose from nnunetv2, totalsegmentator"):
        members.register_member(name="x", kind="tool")
    with pytest.raises(CommandError, match="TotalSegmentator package is not installed"):
        run("register_member", "ts", "--kind", "totalsegmentator")
    assert "unregistered" in run("register_member", "mine", "--remove")
    assert ModelVersion.objects.get(name="mine").metadata["registered"] is False
    with pytest.raises(CommandError, match="no registered member named 'nope'"):
        run("register_member", "nope", "--remove")


def _write(path: Path, payload) -> Path:
    path.write_text(json.dumps(payload))
    return path


def test_the_dashboard_lists_members_and_what_made_a_round(unlabelled, tmp_path):
    folder = tmp_path / "tool"
    for name, phantom in unlabelled.items():
        write_nifti(folder / f"{name}.nii.gz", as_totalsegmentator(phantom.labels), phantom.affine, dtype=np.uint8)
    ensemble.import_predictions(model="tool", src=folder, label_map="totalsegmentator")
    round = rounds.start_round(archs=["unet"])
    api = APIClient()
    api.force_authenticate(create_user(username="lead", role="lead", password="pw-123456789"))
    rows = api.get("/api/dashboard/members/").json()["members"]
    assert [(r["name"], r["source"], r["fine_tuned"], r["rounds"]) for r in rows] == [("tool", "imported", False,
                                                                                         [round.number])]
    board = api.get("/api/dashboard/jobs/").json()
    made = {m["name"]: (m["source"], m["fine_tuned"]) for m in board["round"]["members"]}
    assert made == {"tool": ("imported", False), "round0-unet-tiny": ("shipped", False)}
    annotator = APIClient()
    annotator.force_authenticate(create_user(username="ann", role="annotator", password="pw-123456789"))
    assert annotator.get("/api/dashboard/members/").status_code == 403
