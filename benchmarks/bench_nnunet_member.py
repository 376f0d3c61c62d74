"""An nnU-Net v2 member end to end on the real CT in ../shared/data/ct_example: the cost of each step.

    python benchmarks/bench_nnunet_member.py [--ct-example ../shared/data/ct_example] [--iterations 4]

Trains a tiny nnU-Net v2 model on the example CT itself (its labels: TotalSegmentator's normal model, nine organs,
renumbered 1-9 with TotalSegmentator's names) with nnU-Net's planning, preprocessing and trainer (tests/nnunet, one
epoch of a few iterations: a model for timing the path, not for accuracy), loads it as a member
(ml_engine.members) and runs it on the CT with nnU-Net's default mirroring TTA and without. Baseline in the same run:
Atlas's three shipped tiny networks (the Predictor) on the same CT. Prints seconds per step, the ratios to the
baseline, the member's Dice against TotalSegmentator's fast model, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ORGANS = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
          "pancreas": 7, "aorta": 52, "inferior_vena_cava": 63}  # TotalSegmentator's values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct-example", type=Path, default=REPO.parent / "shared" / "data" / "ct_example")
    args = parser.parse_args()

    import numpy as np

    from ml_engine.io import load_nifti
    from ml_engine.labels import ABDOMENATLAS
    from ml_engine.members import MemberSpec, load_member
    from ml_engine.networks import ARCHITECTURES
    from ml_engine.predict import Predictor
    from ml_engine.train import load_checkpoint
    from tests.nnunet import train_tiny, write_dataset

    ct = load_nifti(args.ct_example / "ct.nii.gz")
    normal = np.asarray(load_nifti(args.ct_example / "seg_model_a.nii.gz").data)
    fast = np.asarray(load_nifti(args.ct_example / "seg_model_b.nii.gz").data)
    label = np.zeros(normal.shape, dtype=np.uint8)
    for i, value in enumerate(ORGANS.values(), start=1):
        label[normal == value] = i
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-nnunet-") as tmp:
        root = Path(tmp)
        write_dataset(root, dataset_id=502, name="CTExample", cases=[(np.asarray(ct.data), label, ct.affine)],
                      labels={name: i for i, name in enumerate(ORGANS, start=1)})
        started = time.perf_counter()
        folder = train_tiny(root, dataset_id=502, name="CTExample")
        figures["plan, preprocess and train (1 epoch x 4 iterations)"] = time.perf_counter() - started
        plans = json.loads((folder / "plans.json").read_text())["configurations"]["3d_fullres"]
        volume = np.asarray(ct.data, dtype=np.float32)
        for tta in (True, False):
            started = time.perf_counter()
            member = load_member(MemberSpec(kind="nnunetv2", folder=str(folder), use_mirroring=tta), ABDOMENATLAS,
                                 None, device="cpu")  # class names are organ names or aliases
            figures[f"load the member (TTA {'on' if tta else 'off'})"] = time.perf_counter() - started
            started = time.perf_counter()
            votes = member.votes(volume, ct.affine)
            figures[f"member inference (TTA {'on' if tta else 'off'})"] = time.perf_counter() - started
        started = time.perf_counter()
        shipped = [REPO / "ml_engine" / "checkpoints" / f"{arch}_tiny.pt" for arch in sorted(ARCHITECTURES)]
        predictor = Predictor([load_checkpoint(p) for p in shipped])
        predictor.predict(volume, ct.affine)
        figures["baseline: Atlas's three tiny networks (load + predict)"] = time.perf_counter() - started
    baseline = figures["baseline: Atlas's three tiny networks (load + predict)"]
    print(f"CT {ct.shape} at {tuple(round(s, 2) for s in ct.spacing)} mm; nnU-Net patch {plans['patch_size']} at "
          f"{plans['spacing']} mm, {len(plans['architecture']['arch_kwargs']['features_per_stage'])} stages")
    for step, seconds in figures.items():
        print(f"{step:<60} {seconds:7.1f} s  ({seconds / baseline:.2f} x baseline)")
    dice = {}
    for organ, value in ORGANS.items():
        name = "postcava" if organ == "inferior_vena_cava" else organ
        a, b = votes.get(name, np.zeros(fast.shape, np.uint8)) > 127, fast == value
        dice[name] = round(2 * float((a & b).sum()) / max(1, int(a.sum() + b.sum())), 3)
    print("member Dice against TotalSegmentator's fast model (a 4-iteration model: the path, not accuracy):", dice)
    print(f"load average: {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
