"""A tiny nnU-Net v2 model trained here with nnunetv2's own code, for the tests of registered nnU-Net members.

`train_tiny` writes an nnU-Net raw dataset (imagesTr/CASE_0000.nii.gz, labelsTr/, dataset.json) under a folder of
its own, plans and preprocesses it with `nnUNetv2_plan_and_preprocess`, and trains it with nnU-Net's trainer
(nnUNetTrainer_AtlasTiny: one epoch of four iterations, no final validation pass), with nnUNet_raw,
nnUNet_preprocessed and nnUNet_results pointing into that folder. The training step calls the trainer class directly
(train.py) instead of `nnUNetv2_train -tr nnUNetTrainer_AtlasTiny`: the command looks the trainer up by importing
every trainer module nnunetv2 ships, one of which imports timm and torchvision, and PyPI's torchvision wheel cannot
load its operators beside the CPU build of torch this project pins, so the lookup fails before training starts (on a
machine with CUDA torch and its torchvision the command works the same way). Everything else is nnU-Net's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ml_engine.io import write_nifti

HERE = Path(__file__).resolve().parent
TRAINER = "nnUNetTrainer_AtlasTiny"


def environment(root: Path) -> dict:
    return {**os.environ, "nnUNet_raw": str(root / "raw"), "nnUNet_preprocessed": str(root / "preprocessed"),
            "nnUNet_results": str(root / "results"), "nnUNet_n_proc_DA": "0", "nnUNet_compile": "0",
            "OMP_NUM_THREADS": "2", "PYTHONPATH": str(HERE)}


def write_dataset(root: Path, *, dataset_id: int, name: str, cases: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                  labels: dict[str, int]) -> Path:
    """An nnU-Net v2 raw dataset of (ct (x, y, z), label (x, y, z) in `labels`' values, affine) cases."""
    folder = root / "raw" / f"Dataset{dataset_id:03d}_{name}"
    for i, (ct, label, affine) in enumerate(cases):
        write_nifti(folder / "imagesTr" / f"case_{i:03d}_0000.nii.gz", ct, affine, dtype=np.int16)
        write_nifti(folder / "labelsTr" / f"case_{i:03d}.nii.gz", label, affine, dtype=np.uint8)
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, **labels}, "numTraining": len(cases),
        "file_ending": ".nii.gz"}))
    return folder


def train_tiny(root: Path, *, dataset_id: int, name: str) -> Path:
    """Plan, preprocess and train the dataset written by write_dataset; returns the trained model folder."""
    env = environment(root)
    for sub in ("preprocessed", "results"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    plan = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    # planning instantiates the network with nnUNet_n_proc_DA threads: it must be at least 1 there
    subprocess.run([str(plan), "-d", str(dataset_id), "-c", "3d_fullres", "-np", "1", "-npfp", "1",
                    "--verify_dataset_integrity"], env={**env, "nnUNet_n_proc_DA": "1"}, check=True,
                   capture_output=True, timeout=600)
    subprocess.run([sys.executable, str(HERE / "train.py"), f"Dataset{dataset_id:03d}_{name}"], env=env, check=True,
                   capture_output=True, timeout=900)
    folder = root / "results" / f"Dataset{dataset_id:03d}_{name}" / f"{TRAINER}__nnUNetPlans__3d_fullres"
    assert (folder / "fold_all" / "checkpoint_final.pth").is_file(), f"no checkpoint in {folder}"
    return folder
