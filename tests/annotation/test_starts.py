"""Starts from published weights in a round (issue 28, items 1, 3, 4) and saying when the models are not ready
(item 5): register_start on a checkpoint generated in SuPreM's format, round 0 fine-tunes it at the publisher's
spacing (and takes it as it is without labels: the start's weights reach the stored model and its votes), its
provenance in round_status, the dashboard and the export's card; per-organ readiness from held-out labelled cases and
the ranking rule that follows. Jobs run in this process; small patches (--patch 32 32 32)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from annotation.models import Case, ModelVersion, OrganAttention, Prediction, Round, Task
from annotation.selectors.labels import label_to_train_on
from annotation.selectors.readiness import ranked_organs
from annotation.services import queue, readiness, rounds
from annotation.services.users import create_user
from annotation.storage import local_copy
from ml_engine.io import load_nifti
from ml_engine.labels import ABDOMENATLAS, LabelMap
from ml_engine.predict import Predictor
from ml_engine.starts import convert_start
from ml_engine.train.checkpoint import load_checkpoint
from tests import published
from tests.annotation.loop import import_phantoms

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("one_torch_thread")]


def run(*args) -> str:
    out = io.StringIO()
    call_command(*[str(a) for a in args], stdout=out, stderr=io.StringIO())
    return out.getvalue()


def read(name: str) -> np.ndarray:
    with local_copy(name) as path:
        return np.asarray(load_nifti(path).data)


@pytest.fixture
def segresnet(tmp_path):
    return published.suprem_segresnet(tmp_path / "supervised_suprem_segresnet_2100.pth")


def test_register_start_reports_the_mapping_and_refuses_bad_input(segresnet, tmp_path):
    out = run("register_start", "--arch", "nnunet", "--weights", segresnet, "--format", "suprem",
              "--patch", 32, 32, 32)
    assert "registered start-nnunet-base-abdomenatlas: spacing [1.5, 1.5, 1.5] mm, patch [32, 32, 32]" in out
    assert "head (class rows): spleen <- spleen, kidney_right <- kidney_right" in out
    assert "patch [32, 32, 32] instead of the publisher's [96, 96, 96]" in out
    assert "licence: MIT" in out and "Li W, Yuille A, Zhou Z" in out
    version = ModelVersion.objects.get(name="start-nnunet-base-abdomenatlas")
    assert version.metadata["network"]["family"] == "segresnet" and version.metadata["start"]
    with pytest.raises(CommandError, match="cannot take the swin_unetr slot"):
        run("register_start", "--arch", "swin_unetr", "--weights", segresnet, "--format", "suprem")
    with pytest.raises(CommandError, match="weights: .*nothing.pth: no such file"):
        run("register_start", "--arch", "unet", "--weights", tmp_path / "nothing.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CommandError, match="bad.pth: (not a readable checkpoint|refused)"):
        run("register_start", "--arch", "unet", "--weights", bad)


def test_round_zero_without_labels_takes_the_start_as_it_is_and_its_weights_reach_the_votes(segresnet, tmp_path):
    import_phantoms(tmp_path / "src", first_seed=700, prefix="own", dataset="own", n=2, labelled=0)
    run("register_start", "--arch", "nnunet", "--weights", segresnet, "--patch", 32, 32, 32, "--source",
        "SuPreM SegResNet (generated here in its format)", "--licence", "MIT (test)")
    round = rounds.start_round(archs=["nnunet"])
    round.refresh_from_db()
    assert round.status == Round.Status.ANNOTATING, round.error
    assert round.settings["size"] == "base"  # a registered start makes base the default
    model = round.members.get(arch="nnunet")
    assert model.name == "round0-nnunet-base" and model.metadata["from_start"] == "start-nnunet-base-abdomenatlas"
    with local_copy(model.checkpoint.name) as path:
        stored = load_checkpoint(path)
    direct, _ = convert_start(segresnet, arch="nnunet", format="suprem", organs=ABDOMENATLAS,
                              label_map=LabelMap.load("suprem", ABDOMENATLAS))
    assert all(torch.equal(stored.state[k], v) for k, v in direct.state.items())
    assert stored.spacing == (1.5, 1.5, 1.5) and stored.network["family"] == "segresnet"
    # the votes stored for a case are the start's own predictions (a direct load gives the same)
    case = Prediction.objects.get(round=round, case__name="own0")
    with local_copy(case.case.ct_file.name) as path:
        ct = load_nifti(path)
    direct.patch = (32, 32, 32)
    expected = dict(Predictor([direct], device="cpu").predict(np.asarray(ct.data), ct.affine).iter_members())
    liver = read(case.files["soft_pred"]["nnunet"]["liver"])
    assert np.abs(liver.astype(int) - expected["liver"]["nnunet"].astype(int)).max() <= 1
    status = run("round_status")
    assert "round0-nnunet-base: nnunet, registered start (published weights) as it is" in status
    assert "source: SuPreM SegResNet (generated here in its format); licence: MIT (test)" in status
    # the dashboard's members panel lists the start with its provenance, and the round's members carry it
    api = APIClient()
    api.force_authenticate(create_user(username="lead", role="lead", password="pw-123456789"))
    rows = {r["name"]: r for r in api.get("/api/dashboard/members/").json()["members"]}
    assert rows["start-nnunet-base-abdomenatlas"]["source"] == "start"
    assert rows["start-nnunet-base-abdomenatlas"]["provenance"]["licence"] == "MIT (test)"
    members = api.get("/api/dashboard/jobs/").json()["round"]["members"]
    assert [m["provenance"]["licence"] for m in members] == ["MIT (test)"]
    run("export_dataset", tmp_path / "export", "--format", "abdomenatlas", "--verbosity", "0")
    card = (tmp_path / "export" / "DATASET.md").read_text()
    row = next(line for line in card.splitlines() if line.startswith("| round0-nnunet-base |"))
    assert "| MIT (test) |" in row and "SuPreM SegResNet (generated here in its format)" in row


def test_round_zero_fine_tunes_the_start_at_its_publishers_spacing(segresnet, tmp_path):
    import_phantoms(tmp_path / "src", first_seed=710, prefix="lab", dataset="lab", n=3, labelled=2)
    run("register_start", "--arch", "nnunet", "--weights", segresnet, "--patch", 32, 32, 32)
    round = rounds.start_round(archs=["nnunet"], steps=2)
    round.refresh_from_db()
    assert round.status == Round.Status.ANNOTATING, round.error
    model = round.members.get(arch="nnunet")
    assert model.parent.name == "start-nnunet-base-abdomenatlas" and model.metadata["fine_tuned"]
    assert model.metadata["provenance"]["source"].startswith("SuPreM")  # carried from the start
    with local_copy(model.checkpoint.name) as path:
        tuned = load_checkpoint(path)
    assert tuned.spacing == (1.5, 1.5, 1.5) and tuned.patch == (32, 32, 32) and tuned.network["family"] == "segresnet"
    assert tuned.metrics["steps"] == 2 and tuned.metrics["lr"] == pytest.approx(1e-4)  # SuPreM's fine-tuning rate
    assert "trained on this round's labelled cases" in run("round_status")


def test_readiness_per_organ_from_held_out_cases_decides_what_the_priority_counts(tmp_path):
    truth = import_phantoms(tmp_path / "src", first_seed=720, prefix="r", dataset="r", n=4, labelled=3)
    round = rounds.start_round(archs=["unet"], steps=1, holdout_labelled=1)
    round.refresh_from_db()
    assert round.status == Round.Status.ANNOTATING, round.error
    unet = round.members.get(arch="unet")
    held = [n for n in truth if n not in unet.metadata["training_cases"] and n != "r3"]
    assert len(held) == 1 and len(unet.metadata["training_cases"]) == 2
    r = round.readiness
    # the member's Dice on the held-out case, organ by organ, as read from its stored votes
    soft = Prediction.objects.get(round=round, case__name=held[0]).files["soft_pred"]["unet"]
    for organ in ("liver", "spleen"):
        vote = read(soft[organ]) > 127
        label = read(label_to_train_on(Case.objects.get(name=held[0])).name) == ABDOMENATLAS.values[organ]
        dice = 2 * (vote & label).sum() / (vote.sum() + label.sum())
        assert r["organs"][organ]["members"]["unet"] == pytest.approx(dice, abs=1e-4)
        assert r["organs"][organ]["cases"] == 1

    def priorities():
        return dict(Task.objects.filter(round=round).values_list("case__name", "priority"))

    def totals(organs=None):
        rows = OrganAttention.objects.filter(round=round)
        if organs is not None:
            rows = rows.filter(organ__name__in=organs)
        out = {}
        for name, ml in rows.values_list("case__name", "size_ml"):
            out[name] = out.get(name, 0.0) + ml
        return out

    def rerank(**thresholds):
        round.settings = {**round.settings, **thresholds}
        round.save(update_fields=["settings"])
        readiness.assess_round(round=round)
        queue.rebuild_tasks(round=round)
        return round.readiness

    # every organ ready: the priority is the whole attention, as before
    everything = rerank(ready_dice=0.0, ready_attention_share=1.0)
    assert everything["not_ready"] == [] and ranked_organs(round) == (None, False)
    assert priorities() == pytest.approx(totals())
    # the liver held to an impossible Dice only: the priority leaves the liver out
    liver_dice = everything["organs"]["liver"]["dice"]
    others = [o for o, v in everything["organs"].items() if v["dice"] is not None and v["dice"] <= liver_dice - 1e-6]
    cut = rerank(ready_dice=liver_dice + 1e-6, ready_attention_share=1.0)
    assert "liver" in cut["not_ready"]
    counted = [o for o in ABDOMENATLAS.organs if o not in cut["not_ready"]]
    assert set(others) <= set(cut["not_ready"])
    expected = totals(counted)
    assert priorities() == pytest.approx({name: expected.get(name, 0.0) for name in totals()})
    # no organ ready: the stated fallback, every priority 0 and the queue in import order; the lead told the remedy
    none = rerank(ready_dice=1.01, ready_attention_share=1.0)
    assert none["fallback"] and set(none["not_ready"]) == set(ABDOMENATLAS.organs)
    assert set(priorities().values()) == {0.0}
    status = run("round_status")
    assert "liver: NOT READY, Dice" in status and "every priority is 0 and the queue follows the cases' import order" \
        in status and "remedy: register a member" in status and "register_start" in status
    # attention covering too much of the scan marks an organ not ready whatever its Dice
    wide = rerank(ready_dice=0.0, ready_attention_share=1e-9)
    assert all("attention covers" in " ".join(v["reasons"]) for o, v in wide["organs"].items()
               if v["attention_share"])
    # the annotators' queue page and the dashboard read it
    annotator = APIClient()
    annotator.force_authenticate(create_user(username="ann", role="annotator", password="pw-123456789"))
    body = annotator.get("/api/readiness/").json()
    assert body["round"] == 0 and body["assessed"] and "remedy" in body and body["organs"][0]["organ"] == "spleen"
