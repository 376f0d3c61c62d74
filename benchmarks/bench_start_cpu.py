"""One real CT through Atlas's three `base` starts on the CPU, at the publishers' resolution (1.5 mm, 96^3 windows):
how slow a CPU run of a published start is (issue 28, item 4). The weights are random (the published ones cannot be
downloaded here): the run times the path, not accuracy.

    python benchmarks/bench_start_cpu.py [CT] [--threads 2] [--fine-tune-steps 2]

Prints, per architecture: the network grid, seconds to infer the case (load excluded), peak RSS, and seconds per
fine-tune step at the publisher's patch (batch 2, as SuPreM trains).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml_engine.io import load_nifti  # noqa: E402
from ml_engine.labels import ABDOMENATLAS, LabelMap  # noqa: E402
from ml_engine.predict import Predictor  # noqa: E402
from ml_engine.preprocess import prepare_image  # noqa: E402
from ml_engine.starts import convert_start  # noqa: E402
from ml_engine.train import TrainConfig, make_train_case, train  # noqa: E402
from tests import published  # noqa: E402

CT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct_example" / "ct.nii.gz"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("ct", nargs="?", default=str(CT))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fine-tune-steps", type=int, default=2)
    parser.add_argument("--archs", nargs="+", default=["swin_unetr", "unet", "nnunet"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    volume = load_nifti(args.ct)
    ct, affine = np.asarray(volume.data, dtype=np.float32), volume.affine
    print(f"CT {args.ct}: {ct.shape}, spacing {np.round(np.abs(np.diag(affine)[:3]), 2).tolist()}, "
          f"{args.threads} threads")
    makers = {"swin_unetr": published.suprem_swin_unetr, "unet": published.suprem_unet,
              "nnunet": published.suprem_segresnet}
    label_map = LabelMap.load("suprem", ABDOMENATLAS)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            path = makers[arch](Path(tmp) / f"{arch}.pth")
            ckpt, _ = convert_start(path, arch=arch, format="suprem", organs=ABDOMENATLAS, label_map=label_map)
            image, spec = prepare_image(ct, affine, ckpt.spacing, hu_window=ckpt.hu_window)
            predictor = Predictor([ckpt], device="cpu")
            started = time.perf_counter()
            predictor.predict(ct, affine)
            infer = time.perf_counter() - started
            mask = np.zeros(ct.shape, dtype=bool)
            mask[ct.shape[0] // 3: 2 * ct.shape[0] // 3, ct.shape[1] // 3: 2 * ct.shape[1] // 3] = True
            case = make_train_case("ct", ct, affine, {"liver": mask}, ABDOMENATLAS.organs, ckpt.spacing)
            started = time.perf_counter()
            train([case], TrainConfig(arch=arch, organs=ABDOMENATLAS.organs, steps=args.fine_tune_steps, batch=2,
                                      spacing=ckpt.spacing), init=ckpt)
            step = (time.perf_counter() - started) / args.fine_tune_steps
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            print(f"{arch} ({ckpt.network['family']}): grid {image.shape} at {ckpt.spacing} mm, patch {ckpt.patch}: "
                  f"infer {infer:.1f} s, fine-tune {step:.1f} s per step (batch 2), peak RSS so far {rss:.1f} GiB")


if __name__ == "__main__":
    main()
