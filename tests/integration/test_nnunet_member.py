"""A real nnU-Net v2 model as a registered ensemble member (issue 17, item 4): trained here by nnU-Net's own planning,
preprocessing and trainer on a few small phantoms, registered with `register_member`, run by a real Celery worker in
a round beside a shipped network and another tool's imported label maps. Its per-class probabilities land as soft
predictions beside the other members', the attention changes with its votes, round_status lists it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.management import call_command

from annotation.models import OrganAttention, Prediction, Round
from annotation.services import ensemble, rounds
from annotation.services.imports import import_cases
from annotation.storage import local_copy
from ml_engine.io import load_nifti, write_nifti
from ml_engine.labels import ABDOMENATLAS, LabelMap
from ml_engine.members import MemberSpec, load_member
from ml_engine.phantoms import make_phantom, organ_value, write_phantom_case
from tests.conftest import CT_EXAMPLE
from tests.integration.test_round_worker import wait_for
from tests.nnunet import train_tiny, write_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHAPE, SPACING = (48, 48, 32), (4.0, 4.0, 6.0)
# the model's own class names, as a group's nnU-Net dataset.json might have them; the label map says which organ
CLASSES = {"Leber": "liver", "Milz": "spleen", "Niere_rechts": "kidney_right", "Niere_links": "kidney_left"}
TOTALSEG = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
            "pancreas": 7, "aorta": 52, "postcava": 63}


@pytest.fixture(scope="module")
def nnunet_model(tmp_path_factory):
    """A tiny nnU-Net v2 model folder trained on four phantoms (about a minute on two cores)."""
    root = tmp_path_factory.mktemp("nnunet")
    cases = []
    for i in range(4):
        phantom = make_phantom(900 + i, shape=SHAPE, spacing=SPACING)
        label = np.zeros(SHAPE, dtype=np.uint8)
        for value, organ in enumerate(CLASSES.values(), start=1):
            label[phantom.labels == organ_value(organ)] = value
        cases.append((phantom.ct, label, phantom.affine))
    write_dataset(root, dataset_id=501, name="AtlasPhantom", cases=cases,
                  labels={name: v for v, name in enumerate(CLASSES, start=1)})
    folder = train_tiny(root, dataset_id=501, name="AtlasPhantom")
    label_map = root / "label_map.json"
    label_map.write_text(json.dumps({"labels": CLASSES}))
    return folder, label_map


def read(name: str) -> np.ndarray:
    with local_copy(name) as path:
        return np.asarray(load_nifti(path).data)


def status() -> str:
    out = io.StringIO()
    call_command("round_status", stdout=out)
    return out.getvalue()


def test_a_registered_nnunet_runs_in_a_round_on_a_real_worker(worker, nnunet_model, tmp_path):
    folder, label_map = nnunet_model
    phantoms = {}
    for i in range(3):
        phantom = make_phantom(950 + i, shape=SHAPE, spacing=SPACING, name=f"own{i}")
        write_phantom_case(phantom, tmp_path / "src", organs=())
        phantoms[phantom.name] = phantom
        tool = np.zeros(SHAPE, dtype=np.uint8)
        for organ, value in TOTALSEG.items():
            tool[phantom.labels == organ_value(organ)] = value
        write_nifti(tmp_path / "tool" / f"{phantom.name}.nii.gz", tool, phantom.affine, dtype=np.uint8)
    assert import_cases(tmp_path / "src", dataset="own").ok
    real = (CT_EXAMPLE / "ct.nii.gz").is_file()
    if real:  # the real CT too: the member end to end on real data (nnU-Net resamples it to the model's spacing)
        assert import_cases(CT_EXAMPLE / "ct.nii.gz", dataset="own").ok
    assert ensemble.import_predictions(model="tool", src=tmp_path / "tool", label_map="totalsegmentator").ok
    out = io.StringIO()
    call_command("register_member", "tiny_nnunet", "--kind", "nnunetv2", "--folder", str(folder), "--label-map",
                 str(label_map), "--disable-tta", stdout=out)
    assert "registered tiny_nnunet (nnunetv2, label set abdomenatlas): Leber -> liver, Milz -> spleen" in out.getvalue()

    round0 = rounds.start_round(archs=["unet"])
    wait_for(lambda: Round.objects.get(pk=round0.pk).status in (Round.Status.ANNOTATING, Round.Status.FAILED),
             timeout=600, what="round 0 to be annotating", log=worker.log, interval=0.5)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error

    # its soft predictions land beside the other members', as probabilities (not 0 / 255 votes)
    prediction = Prediction.objects.get(round=round0, case__name="own0")
    soft = prediction.files["soft_pred"]
    assert set(soft) == {"unet", "tiny_nnunet", "tool"}  # Atlas's networks are filed under their architecture
    assert set(soft["tiny_nnunet"]) == set(CLASSES.values())
    assert {n.rsplit("/", 3)[0] for n in soft["tiny_nnunet"].values()} == {
        n.rsplit("/", 3)[0] for n in soft["unet"].values()}  # the same backbones/ folder
    liver = read(soft["tiny_nnunet"]["liver"])
    assert liver.shape == SHAPE and ((liver > 0) & (liver < 255)).sum() > 100
    # what the worker stored is nnU-Net's predictor's output for this CT
    member = load_member(MemberSpec(kind="nnunetv2", folder=str(folder), use_mirroring=False), ABDOMENATLAS,
                         LabelMap.parse({"labels": CLASSES}, ABDOMENATLAS, source="map"), device="cpu")
    direct = member.votes(phantoms["own0"].ct.astype(np.float32), phantoms["own0"].affine)
    assert np.abs(direct["liver"].astype(int) - liver.astype(int)).max() <= 1

    if real:
        ct = Prediction.objects.get(round=round0, case__name="ct").files["soft_pred"]
        assert set(ct) == {"unet", "tiny_nnunet"}  # the tool gave no label map for it
        assert read(ct["tiny_nnunet"]["liver"]).shape == (122, 101, 30)

    out = status()
    assert "tiny_nnunet: nnunetv2, registered, run by Atlas, never fine-tuned" in out
    assert "fine-tuned in this round: none" in out

    # the attention changes with its votes: round 1 without it (the same unet and tool) differs on its organs (and on
    # organs whose pseudo-labels its votes made overlap theirs)
    call_command("register_member", "tiny_nnunet", "--remove", stdout=io.StringIO())
    round1 = rounds.start_round(archs=["unet"])
    wait_for(lambda: Round.objects.get(pk=round1.pk).status in (Round.Status.ANNOTATING, Round.Status.FAILED),
             timeout=600, what="round 1 to be annotating", log=worker.log, interval=0.5)
    round1.refresh_from_db()
    assert round1.status == Round.Status.ANNOTATING, round1.error
    assert set(round1.members.values_list("name", flat=True)) == {"round0-unet-tiny", "tool"}

    def sizes(round):
        return {(c, o): v for c, o, v in OrganAttention.objects.filter(round=round).values_list(
            "case__name", "organ__name", "voxels")}

    with_nnunet, without = sizes(round0), sizes(round1)
    changed = {organ for (case, organ), v in with_nnunet.items() if without[(case, organ)] != v}
    assert changed & set(CLASSES.values())
    assert "tiny_nnunet" not in status()
