"""The Predictor's CPU runtime: the members converted by OpenVINO give PyTorch's probabilities.

The shipped checkpoints run on a held-out phantom once under OpenVINO (cpu_runtime="openvino", ATLAS_CPU_RUNTIME
for workers) and once in PyTorch (the default); the
uint8 probabilities on the CT grid must agree within a level or two of 255 (float32 in both: the logits differ by
about 1e-4) and the pseudo-labels must be the same organs. If the conversion breaks (a new torch, OpenVINO or MONAI
release), the member falls back to PyTorch with a warning and `runtimes` says so: that fails here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ml_engine.networks import ARCHITECTURES, build_network
from ml_engine.phantoms import ORGANS, make_phantom
from ml_engine.predict import OpenVinoMember, Predictor
from ml_engine.train import load_checkpoint

SHIPPED = Path(__file__).resolve().parents[2] / "ml_engine" / "checkpoints"


@pytest.mark.slow  # runs the ensemble twice
def test_openvino_members_give_pytorchs_probabilities():
    checkpoints = [load_checkpoint(SHIPPED / f"{arch}_tiny.pt") for arch in ARCHITECTURES]
    phantom = make_phantom(5001, shape=(96, 96, 64), spacing=(2.0, 2.0, 2.5))
    converted = Predictor(checkpoints, device="cpu", cpu_runtime="openvino")
    plain = Predictor(checkpoints, device="cpu")  # PyTorch: the default
    assert converted.runtimes == ["openvino"] * 3 and plain.runtimes == ["torch"] * 3
    a = converted.predict(phantom.ct, phantom.affine)
    b = plain.predict(phantom.ct, phantom.affine)
    for pa, pb in zip(a.probabilities, b.probabilities, strict=True):
        assert pa.shape == pb.shape and pa.dtype == np.uint8
        assert int(np.abs(pa.astype(np.int16) - pb.astype(np.int16)).max()) <= 2
    masks_a = {o.organ: o.mask for o in a.iter_organs()}
    masks_b = {o.organ: o.mask for o in b.iter_organs()}
    for organ in ORGANS:
        differ = int((masks_a[organ] != masks_b[organ]).sum())
        assert differ <= 1e-4 * masks_a[organ].size, (organ, differ)
        assert masks_b[organ].any()  # the phantom's organs are found at all: the comparison means something


def test_openvino_member_runs_a_batch_of_windows_like_the_network():
    torch.manual_seed(0)
    net = build_network("swin_unetr", 2, "tiny").eval()  # window attention: traced for the fixed window
    member = OpenVinoMember(net, (64, 64, 32))
    for batch in (2, 1, 3):  # the batch is free
        x = torch.randn(batch, 1, 64, 64, 32)
        with torch.no_grad():
            expected = net(x)
        got = member(x)
        assert got.shape == expected.shape and got.dtype == torch.float32
        assert float((got - expected).abs().max()) < 1e-3


def test_openvino_member_refuses_another_window():
    member = OpenVinoMember(build_network("unet", 2, "tiny"), (32, 32, 32))
    with pytest.raises(ValueError, match=r"expected windows \(batch, 1, 32, 32, 32\), got \(1, 1, 32, 32, 16\)"):
        member(torch.zeros(1, 1, 32, 32, 16))


def test_predictor_names_a_wrong_cpu_runtime():
    ckpt = load_checkpoint(SHIPPED / "unet_tiny.pt")
    with pytest.raises(ValueError, match="cpu_runtime: unknown 'onnx' .valid: torch, openvino."):
        Predictor([ckpt], device="cpu", cpu_runtime="onnx")


def test_converting_records_no_to_openvinos_telemetry_unless_answered(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    OpenVinoMember(build_network("unet", 2, "tiny"), (32, 32, 32))
    consent = tmp_path / "intel" / "openvino_telemetry"
    assert consent.read_text().strip() == "0"  # OpenVINO's opt-out; a missing file counts as consent there
    assert not (tmp_path / "intel" / "openvino_ga_cid").exists()  # no client id: nothing was to be sent
    consent.write_text("1")  # somebody's own answer stays
    OpenVinoMember(build_network("unet", 2, "tiny"), (32, 32, 32))
    assert consent.read_text().strip() == "1"


def test_the_infer_command_runs_the_members_in_openvino_when_asked(tmp_path, caplog):
    from ml_engine.__main__ import main
    from ml_engine.io import pseudo_label_path, write_nifti

    phantom = make_phantom(5002, shape=(48, 48, 32), spacing=(3.0, 3.0, 3.0))
    ct = write_nifti(tmp_path / "ct.nii.gz", phantom.ct, phantom.affine)
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        assert main(["infer", "--ct", str(ct), "--models", str(SHIPPED / "unet_tiny.pt"), "--out", str(out),
                     "--cpu-runtime", "openvino"]) == 0
    assert "OpenVINO could not run it" not in caplog.text  # no silent fallback to PyTorch
    assert pseudo_label_path(out).exists()
    with pytest.raises(SystemExit):  # argparse names the choices
        main(["infer", "--ct", str(ct), "--models", str(SHIPPED / "unet_tiny.pt"), "--out", str(tmp_path / "x"),
              "--cpu-runtime", "onnx"])
