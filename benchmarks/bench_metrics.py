"""Surface metrics: ml_engine.metrics against MONAI on the same masks (values and time).

    .venv/bin/python benchmarks/bench_metrics.py                   # 256 x 256 x 160 phantom, 9 organs
    .venv/bin/python benchmarks/bench_metrics.py --shape 128 128 80

For each organ of a phantom, the reference is the phantom's label and the prediction a simulated model's mask
(boundary wobbling by about 1.5 mm, plus the injected errors of ml_engine.attention.simulate). Compared:
- NSD at FLARE's tolerance: ours vs MONAI compute_surface_dice(use_subvoxels=True) (same definition: the values
  should agree to float32 precision);
- HD95: ours (DeepMind: surface elements weighted by area, larger of the two directed 95th percentiles) vs MONAI
  compute_hausdorff_distance(percentile=95) (edge voxels by erosion, unweighted percentile): a different
  definition, so the values differ by up to about a voxel.
MONAI gets its one-hot tensors prepared outside the timing. Figures are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml_engine.attention import pseudo_label, stack_probabilities  # noqa: E402
from ml_engine.attention.simulate import simulate_ensemble  # noqa: E402
from ml_engine.metrics import dice, hd95, nsd, surface_area_table, tolerance_for  # noqa: E402
from ml_engine.phantoms import ORGANS, make_phantom  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 160))
    parser.add_argument("--spacing", type=float, nargs=3, default=(1.4, 1.4, 2.5))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    torch.set_num_threads(1)
    spacing = tuple(float(s) for s in args.spacing)
    shape = tuple(args.shape)
    phantom = make_phantom(args.seed, shape=shape, spacing=spacing, troubles=[])
    # one simulated model with a 1.5 mm boundary wobble, plus the injected errors: every organ differs a little
    ensemble = simulate_ensemble(phantom.labels, spacing=spacing, seed=args.seed, models=1, jitter_mm=1.5)
    surface_area_table(spacing)  # MONAI's table import and build, outside the timing (both use it)

    def one_hot(mask: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(mask.astype(np.float32))[None, None]
        return torch.cat([1 - t, t], dim=1)

    print(f"metrics on a {shape[0]} x {shape[1]} x {shape[2]} phantom at {spacing} mm: a simulated model's masks "
          f"vs the phantom's labels")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, Python "
          f"{platform.python_version()}, torch {torch.__version__} (1 thread)")
    print(f"{'organ':<14} {'dice':>6} {'tol':>4} {'nsd':>8} {'monai':>8} {'|diff|':>8} {'hd95':>7} {'monai':>7} "
          f"{'ours_s':>7} {'monai_s':>8}")
    totals = {"ours": 0.0, "monai": 0.0}
    diffs = []
    for organ in ORGANS:
        ref = ensemble.truth[organ]
        pred = pseudo_label(stack_probabilities(ensemble.probs[organ]))
        tolerance = tolerance_for(organ)
        start = time.perf_counter()
        ours_nsd = nsd(pred, ref, spacing, tolerance)
        ours_hd = hd95(pred, ref, spacing)
        ours_s = time.perf_counter() - start
        p, r = one_hot(pred), one_hot(ref)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            monai_nsd = compute_surface_dice(p, r, [tolerance], spacing=spacing, use_subvoxels=True).item()
            monai_hd = compute_hausdorff_distance(p, r, percentile=95, spacing=spacing).item()
            monai_s = time.perf_counter() - start
        totals["ours"] += ours_s
        totals["monai"] += monai_s
        diffs.append(abs(ours_nsd - monai_nsd))
        print(f"{organ:<14} {dice(pred, ref):>6.3f} {tolerance:>4.0f} {ours_nsd:>8.5f} {monai_nsd:>8.5f} "
              f"{diffs[-1]:>8.1e} {ours_hd:>7.2f} {monai_hd:>7.2f} {ours_s:>7.3f} {monai_s:>8.3f}")
    print(f"total time: ours {totals['ours']:.2f} s, MONAI {totals['monai']:.2f} s: "
          f"{totals['monai'] / totals['ours']:.1f} x faster; largest NSD difference {max(diffs):.1e}")


if __name__ == "__main__":
    main()
