"""A MONAI bundle as a registered ensemble member (issue 28, item 2): a tiny bundle built with MONAI's own bundle
tooling (monai.bundle.init_bundle: configs/inference.json in the Model Zoo's form, configs/metadata.json with its
channel_def, models/model.pt, LICENSE), registered with `register_member --kind monai-bundle`, run by a real Celery
worker in round 0 through its own inference config (ConfigParser). Its softmax probabilities land as soft votes through
the BTCV label map, equal to a direct run; its source, licence and citation come from the bundle and show."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from annotation.models import ModelVersion, Prediction, Round
from annotation.services import rounds
from annotation.services.imports import import_cases
from annotation.storage import local_copy
from ml_engine.io import load_nifti
from ml_engine.labels import ABDOMENATLAS, LabelMap
from ml_engine.members import MemberSpec, load_member
from ml_engine.phantoms import make_phantom, write_phantom_case
from tests import published
from tests.integration.test_round_worker import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHAPE, SPACING = (40, 40, 24), (3.0, 3.0, 4.0)
UNET = {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 14, "channels": [8, 16, 32],
        "strides": [2, 2], "num_res_units": 1}


@pytest.fixture
def tiny_bundle(tmp_path):
    from monai.networks.nets import UNet

    torch.manual_seed(5)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=14, channels=(8, 16, 32), strides=(2, 2), num_res_units=1)
    return published.bundle(tmp_path / "tiny_btcv_bundle", network_def=UNET, network=net, roi=32,
                            pixdim=(3.0, 3.0, 3.0), name="tiny_btcv_bundle")


def read(name: str) -> np.ndarray:
    with local_copy(name) as path:
        return np.asarray(load_nifti(path).data)


def test_a_monai_bundle_runs_as_a_member_in_a_round_on_a_real_worker(worker, tiny_bundle, tmp_path):
    phantoms = {}
    for i in range(2):
        phantom = make_phantom(960 + i, shape=SHAPE, spacing=SPACING, name=f"own{i}")
        write_phantom_case(phantom, tmp_path / "src", organs=())
        phantoms[phantom.name] = phantom
    assert import_cases(tmp_path / "src", dataset="own").ok
    out = io.StringIO()
    call_command("register_member", "btcv_bundle", "--kind", "monai-bundle", "--folder", str(tiny_bundle),
                 "--label-map", "btcv", stdout=out)
    text = out.getvalue()
    assert "registered btcv_bundle (monai-bundle, label set abdomenatlas): spleen -> spleen, Right Kidney -> " \
           "kidney_right" in text
    assert "classes voting on no organ: Esophagus, Portal and Splenic Veins" in text
    assert "source: MONAI bundle tiny_btcv_bundle 0.1.0 (Atlas tests; data: phantoms); licence: Apache License" in text
    version = ModelVersion.objects.get(name="btcv_bundle")
    assert version.metadata["provenance"]["citation"] == "A test bundle, not a published model."

    round0 = rounds.start_round(archs=[])
    wait_for(lambda: Round.objects.get(pk=round0.pk).status in (Round.Status.ANNOTATING, Round.Status.FAILED),
             timeout=600, what="round 0 to be annotating", log=worker.log, interval=0.5)
    round0.refresh_from_db()
    assert round0.status == Round.Status.ANNOTATING, round0.error
    soft = Prediction.objects.get(round=round0, case__name="own0").files["soft_pred"]["btcv_bundle"]
    assert set(soft) == set(ABDOMENATLAS.organs)  # BTCV's nine organs of the label set
    liver = read(soft["liver"])
    assert liver.shape == SHAPE and ((liver > 0) & (liver < 255)).any()  # probabilities, not 0 / 255
    member = load_member(MemberSpec(kind="monai-bundle", folder=str(tiny_bundle)), ABDOMENATLAS,
                         LabelMap.load("btcv", ABDOMENATLAS), device="cpu")
    direct = member.votes(phantoms["own0"].ct.astype(np.float32), phantoms["own0"].affine)
    assert np.abs(direct["liver"].astype(int) - liver.astype(int)).max() <= 1
    # the bundle's own config decides: its softmax over 14 channels, channel 6 the liver (BTCV's value)
    probs = member.probabilities(phantoms["own0"].ct.astype(np.float32), phantoms["own0"].affine)
    assert sorted(probs) == list(range(1, 14))
    status = io.StringIO()
    call_command("round_status", stdout=status)
    assert "btcv_bundle: monai-bundle, registered, run by Atlas, never fine-tuned" in status.getvalue()
    assert "licence: Apache License" in status.getvalue()


def test_a_bundle_that_cannot_run_is_refused_naming_the_file(tmp_path, db):
    folder = tmp_path / "half"
    (folder / "configs").mkdir(parents=True)
    with pytest.raises(CommandError, match="half/configs/inference.json: missing"):
        call_command("register_member", "half", "--kind", "monai-bundle", "--folder", str(folder),
                     stdout=io.StringIO())
    (folder / "configs" / "inference.json").write_text("{" * 10)
    (folder / "configs" / "metadata.json").write_text("{}")
    with pytest.raises(CommandError, match="inference.json: not valid JSON"):
        call_command("register_member", "half", "--kind", "monai-bundle", "--folder", str(folder),
                     stdout=io.StringIO())
