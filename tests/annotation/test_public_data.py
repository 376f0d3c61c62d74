"""The public-data bootstrap (issue 17, item 3): the shipped label maps of public abdominal datasets, and round 0
trained on two partially labelled datasets in nnU-Net / MSD layout whose label values and names differ, merged into
one label set through those maps. An organ a case does not label teaches nothing (not "background")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from annotation import ml_adapter
from annotation.models import Case, ModelVersion, Round, SourceLabel
from annotation.services import rounds
from annotation.services.imports import import_cases
from annotation.services.training import labelled
from annotation.storage import local_copy
from ml_engine.io import load_nifti, write_nifti
from ml_engine.labels import ABDOMENATLAS, LABEL_MAPS_DIR, LabelMap
from ml_engine.phantoms import make_phantom, organ_value
from ml_engine.train import masked_dice_bce_loss

# the published values of a few classes of each dataset (docs/real-data.md says where each was checked)
PUBLISHED = {
    "btcv": {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 6: "liver", 7: "stomach",
             8: "aorta", 9: "postcava", 11: "pancreas", 5: None, 10: None, 12: None, 13: None},
    "amos": {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 6: "liver", 7: "stomach",
             8: "aorta", 9: "postcava", 10: "pancreas", 13: None, 15: None},
    "word": {1: "liver", 2: "spleen", 3: "kidney_left", 4: "kidney_right", 5: "stomach", 6: "gallbladder",
             8: "pancreas", 7: None, 16: None},
    "flare22": {1: "liver", 2: "kidney_right", 3: "spleen", 4: "pancreas", 5: "aorta", 6: "postcava",
                9: "gallbladder", 11: "stomach", 13: "kidney_left", 12: None},
    "flare23": {1: "liver", 13: "kidney_left", 14: None},
    "abdomenct1k": {1: "liver", 2: None, 3: "spleen", 4: "pancreas"},
    # SuPreM's AbdomenAtlas 1.1 output channels + 1 (class_map_abdomenatlas_1_1)
    "suprem": {1: "aorta", 2: "gallbladder", 3: "kidney_left", 4: "kidney_right", 5: "liver", 6: "pancreas",
               7: "postcava", 8: "spleen", 9: "stomach", 10: None, 13: None, 16: None, 25: None},
    "totalsegmentator": {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver",
                         6: "stomach", 7: "pancreas", 52: "aorta", 63: "postcava"},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_label_maps_hold_the_published_values(name):
    raw = json.loads((LABEL_MAPS_DIR / f"{name}.json").read_text())
    assert raw["checked"] and raw["description"]
    mapping = LabelMap.load(name, ABDOMENATLAS)
    for value, organ in PUBLISHED[name].items():
        assert mapping.values[value] == (ABDOMENATLAS.values[organ] if organ else 0), (name, value)


# Dataset A: MSD / nnU-Net v1 layout ("value": "name"), BTCV's values and abbreviations, labelling 4 organs.
# Dataset B: nnU-Net v2 layout ("name": value), FLARE22's values and names, labelling 4 organs, two of them not in A.
A_LABELS = {1: ("spleen", "spleen"), 2: ("rkid", "kidney_right"), 3: ("lkid", "kidney_left"), 6: ("liver", "liver")}
B_LABELS = {1: ("liver", "liver"), 2: ("right kidney", "kidney_right"), 4: ("pancreas", "pancreas"),
            5: ("aorta", "aorta")}


def write_dataset(root: Path, labels: dict[int, tuple[str, str]], *, seeds: range, msd: bool) -> Path:
    for seed in seeds:
        phantom = make_phantom(seed, shape=(32, 32, 32), spacing=(3.0, 3.0, 3.0))
        label = np.zeros(phantom.labels.shape, dtype=np.uint8)
        for value, (_, organ) in labels.items():
            label[phantom.labels == organ_value(organ)] = value
        write_nifti(root / "imagesTr" / f"case{seed}_0000.nii.gz", phantom.ct, phantom.affine, dtype=np.int16)
        write_nifti(root / "labelsTr" / f"case{seed}.nii.gz", label, phantom.affine, dtype=np.uint8)
    names = ({"0": "background", **{str(v): n for v, (n, _) in labels.items()}} if msd
             else {"background": 0, **{n: v for v, (n, _) in labels.items()}})
    (root / "dataset.json").write_text(json.dumps({"labels": names, "channel_names": {"0": "CT"},
                                                   "file_ending": ".nii.gz"}))
    return root


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_round_zero_trains_on_two_partially_labelled_public_datasets(tmp_path):
    a = write_dataset(tmp_path / "Task01_BTCVish", A_LABELS, seeds=range(700, 702), msd=True)
    b = write_dataset(tmp_path / "Dataset002_FLAREish", B_LABELS, seeds=range(710, 712), msd=False)
    assert import_cases(a, dataset="btcv_part", label_map="btcv").ok
    assert import_cases(b, dataset="flare_part", label_map="flare22").ok
    own = tmp_path / "own"
    phantom = make_phantom(720, shape=(32, 32, 32), spacing=(3.0, 3.0, 3.0))
    write_nifti(own / "mine.nii.gz", phantom.ct, phantom.affine, dtype=np.int16)
    assert import_cases(own, dataset="ours").ok  # our own CT, no label

    covered = {c.name: set(SourceLabel.objects.get(case=c).organs.values_list("name", flat=True))
               for c in Case.objects.exclude(dataset__name="ours")}
    assert covered == {"case700": {"spleen", "kidney_right", "kidney_left", "liver"},
                       "case701": {"spleen", "kidney_right", "kidney_left", "liver"},
                       "case710": {"liver", "kidney_right", "pancreas", "aorta"},
                       "case711": {"liver", "kidney_right", "pancreas", "aorta"}}
    # the stored labels are in the label set's values: B's liver (1) is abdomenatlas' 5, A's liver (6) too
    for case in Case.objects.filter(name__in=["case700", "case710"]):
        with local_copy(SourceLabel.objects.get(case=case).label_file.name) as path:
            stored = np.asarray(load_nifti(path).data)
        truth = make_phantom(int(case.name[4:]), shape=(32, 32, 32), spacing=(3.0, 3.0, 3.0)).labels
        assert np.array_equal(stored == 5, truth == organ_value("liver"))
        assert not (stored == ABDOMENATLAS.values["gallbladder"]).any()  # labelled by neither

    # partial labels: each case's training target marks only the organs its dataset labels
    organs = ABDOMENATLAS.organs
    cases = ml_adapter.training_cases(labelled(Case.objects.order_by("name")), organs=organs,
                                      values=ABDOMENATLAS.values, arch="unet", size="tiny")
    flags = {c.name: {o for o, f in zip(organs, c.labelled, strict=True) if f} for c in cases}
    assert flags == covered  # "mine" has no label: not a training case
    # and an unlabelled organ's output does not move the loss: A's case says nothing about the pancreas
    case = next(c for c in cases if c.name == "case700")
    target = torch.from_numpy(case.labels[None].astype(np.float32))
    mask = torch.from_numpy(case.labelled[None])
    logits = torch.zeros_like(target)
    pancreas = organs.index("pancreas")
    base = masked_dice_bce_loss(logits, target, mask)
    logits[:, pancreas] = 9.0  # "pancreas everywhere"
    assert masked_dice_bce_loss(logits, target, mask) == pytest.approx(float(base))
    logits[:, organs.index("liver")] = 9.0  # "liver everywhere" is wrong and costs
    assert masked_dice_bce_loss(logits, target, mask) > base

    round0 = rounds.start_round(archs=["unet"], steps=2)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error
    version = ModelVersion.objects.get(name="round0-unet-tiny")
    assert sorted(version.metadata["training_cases"]) == ["case700", "case701", "case710", "case711"]
    assert version.metadata["fine_tuned"] is True
    assert round0.predictions.count() == 5  # every case inferred, our own CT too
