"""Attention maps: speed and memory against the published dense computation, and what the maps find.

    .venv/bin/python benchmarks/bench_attention.py                 # 512 x 512 x 300, 9 organs, 3 models
    .venv/bin/python benchmarks/bench_attention.py --shape 128 128 80 --phantoms 4   # a quick run

Prints, in this order:
1. the real CT in ../shared/data/ct_example (when present), its two TotalSegmentator models as two ensemble
   members: per organ the fraction of disagreeing voxels (the inconsistency before the opening) over the
   expected organ volume, and what is left after the published opening;
2. attention evaluation (paper, Table 1) on phantoms with injected errors: per-organ component-wise
   sensitivity and precision, components pooled over the phantoms;
3. speed and memory on one synthetic case: the baseline (published create_attention: every organ of every
   model at full size as float64, numpy std / entropy, scipy morphology over the whole volume, each other
   organ's pseudo-label read at full size for the overlap) against the fast path (support boxes, uint8 /
   float32, separable box opening, cc3d), each in its own process, both reading the same uint8 .npy maps.
   Peak memory is the process's peak resident set size above what it held before the work.
   Both are checked to give the same attention voxels.

4. with --whole-process (alone: `--whole-process --shape 384 384 200`): the attention step as a whole process on
   a case in the AbdomenAtlas layout (27 soft maps as .nii.gz): `python -m ml_engine attention CASE` (start-up,
   reading, attention, compact heatmaps, attention.json) against the dense reference as a process of its own
   (nibabel reads, published pseudo-labels and attention, 9 full-size heatmaps written by nibabel's defaults).

Figures are measured in the same run; nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml_engine.attention import AttentionSettings, case_attention, iter_case_attention  # noqa: E402
from ml_engine.attention.reference import published_attention, published_pseudo_label  # noqa: E402
from ml_engine.attention.simulate import simulate_ensemble, simulate_organ  # noqa: E402
from ml_engine.metrics import attention_detection  # noqa: E402
from ml_engine.phantoms import ORGANS, make_phantom  # noqa: E402

REAL_VALUES = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
               "pancreas": 7, "aorta": 52, "postcava": 63}


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


# --------------------------------------------------------------------------------------------------------------
# 1. Real data


def real_data() -> None:
    folder = REPO.parent / "shared" / "data" / "ct_example"
    if not (folder / "seg_model_a.nii.gz").is_file():
        print("real data: ../shared/data/ct_example absent, skipped\n")
        return
    from ml_engine.io import load_nifti

    a_vol, b_vol = load_nifti(folder / "seg_model_a.nii.gz"), load_nifti(folder / "seg_model_b.nii.gz")
    a, b = np.asarray(a_vol.data), np.asarray(b_vol.data)
    probs = {o: [(a == v).astype(np.uint8) * 255, (b == v).astype(np.uint8) * 255] for o, v in REAL_VALUES.items()}
    spacing = a_vol.spacing
    raw = case_attention(probs, spacing=spacing, settings=AttentionSettings(opening_voxels=0))
    published = case_attention(probs, spacing=spacing)
    one = case_attention(probs, spacing=spacing, settings=AttentionSettings(opening_voxels=1))
    print(f"1. real CT {a.shape} at {tuple(round(s, 2) for s in spacing)} mm, TotalSegmentator normal vs --fast "
          f"as two ensemble members")
    print(f"{'organ':<14} {'disagree':>9} {'expected':>9} {'fraction':>8} {'after 2-voxel':>13} {'after 1-voxel':>13}")
    for organ in REAL_VALUES:
        r = raw.organs[organ]
        print(f"{organ:<14} {r.inconsistency_raw_voxels:>9d} {r.expected_voxels:>9.0f} "
              f"{r.inconsistency_raw_voxels / r.expected_voxels:>8.3f} {published.organs[organ].voxels:>13d} "
              f"{one.organs[organ].voxels:>13d}")
    print("(fraction = disagreeing voxels / mean of the two models' volumes; 'after' = attention voxels left by the "
          "opening)\n")


# --------------------------------------------------------------------------------------------------------------
# 2. Attention evaluation on phantoms


def phantom_evaluation(n: int) -> None:
    pooled = {organ: [0, 0, 0, 0] for organ in ORGANS}
    for seed in range(n):
        phantom = make_phantom(seed, troubles=[])
        ensemble = simulate_ensemble(phantom.labels, spacing=phantom.spacing, seed=seed)
        case = case_attention(ensemble.probs, spacing=phantom.spacing)
        for organ, result in case.organs.items():
            d = attention_detection(result.full(result.attention), result.full(result.pseudo), ensemble.truth[organ])
            for i, v in enumerate((d.detected_errors, d.error_components, d.useful_attention,
                                   d.attention_components)):
                pooled[organ][i] += v
    print(f"2. attention evaluation on {n} phantoms (96 x 96 x 64, 1.5 x 1.5 x 2.5 mm, 3 simulated models; injected: "
          f"stomach cavity missed, spleen boundary shifted 9 mm, liver bite of 15 mm)")
    print(f"{'organ':<14} {'sensitivity':>11} {'(found/errors)':>15} {'precision':>9} {'(useful/att.)':>14}")
    sens, prec = [], []
    for organ, (det, err, use, att) in pooled.items():
        s = det / err if err else math.nan
        p = use / att if att else math.nan
        if err:
            sens.append(s)
        if att:
            prec.append(p)
        print(f"{organ:<14} {s:>11.2f} {f'({det}/{err})':>15} {p:>9.2f} {f'({use}/{att})':>14}")
    print(f"{'mean':<14} {np.mean(sens):>11.2f} {'':>15} {np.mean(prec):>9.2f}")
    print("(components pooled over the phantoms; mean over organs where defined; the paper reports 0.78 / 0.83 on "
          "40 real cases)\n")


# --------------------------------------------------------------------------------------------------------------
# 3. Speed and memory


def make_case(folder: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float], models: int) -> dict:
    start = time.perf_counter()
    phantom = make_phantom(0, shape=shape, spacing=spacing, troubles=[])
    for index, organ in enumerate(ORGANS):
        maps, _ = simulate_organ(phantom.labels == index + 1, spacing=spacing, models=models, seed=index,
                                 errors=("stomach_cavity_missed", "boundary_shift", "liver_bite"), organ=organ)
        for m, data in enumerate(maps):
            np.save(folder / f"{organ}_{m}.npy", data)
    del phantom
    return {"shape": shape, "spacing": spacing, "models": models, "seconds": time.perf_counter() - start}


def child(kind: str, folder: Path, models: int, spacing: tuple[float, float, float]) -> None:
    """Run one method in this process; print one JSON line: seconds, peak memory above the start, attention."""

    def load(organ: str) -> list[np.ndarray]:
        return [np.load(folder / f"{organ}_{m}.npy") for m in range(models)]

    out = folder / kind
    out.mkdir(exist_ok=True)
    reset_peak()
    before = rss_kib("VmRSS")
    start = time.perf_counter()
    counts = {}
    if kind == "fast":
        for result in iter_case_attention(ORGANS, load, spacing=spacing):
            heatmap = result.full_heatmap()  # what the CLI writes
            counts[result.organ] = int(np.count_nonzero(heatmap))
            np.save(out / f"{result.organ}.npy", np.packbits(heatmap > 0))
            del heatmap
    else:
        for organ in ORGANS:  # the published pipeline has average/segmentations on disk before create_attention
            np.save(folder / f"pseudo_{organ}.npy", published_pseudo_label(load(organ)))

        def load_pseudo(organ: str) -> np.ndarray:
            return np.load(folder / f"pseudo_{organ}.npy")

        for organ, heatmap, attention in published_attention(ORGANS, load, load_pseudo):
            counts[organ] = int(np.count_nonzero(attention))
            np.save(out / f"{organ}.npy", np.packbits(attention))
            del heatmap, attention
    seconds = time.perf_counter() - start
    peak = rss_kib("VmHWM")
    print(json.dumps({"seconds": seconds, "peak_mib": (peak - before) / 1024, "before_mib": before / 1024,
                      "counts": counts}))


def run_child(kind: str, folder: Path, models: int, spacing: tuple[float, float, float]) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--data", str(folder), "--models", str(models),
               "--spacing", *map(str, spacing)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def speed(shape: tuple[int, int, int], spacing: tuple[float, float, float], models: int, skip_baseline: bool) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_attention_"))
    try:
        made = make_case(folder, shape, spacing, models)
        voxels = int(np.prod(shape))
        print(f"3. speed and memory: {shape[0]} x {shape[1]} x {shape[2]} ({voxels / 1e6:.1f} M voxels) at {spacing} "
              f"mm, {len(ORGANS)} organs, {models} models (simulated in {made['seconds']:.0f} s, inputs "
              f"{len(ORGANS) * models * voxels / 2**20:.0f} MiB of uint8 on disk)")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
              f"Python {platform.python_version()}, numpy {np.__version__}")
        fast = run_child("fast", folder, models, spacing)
        print(f"fast path:  {fast['seconds']:8.2f} s   peak {fast['peak_mib']:8.0f} MiB above the start")
        if skip_baseline:
            return
        base = run_child("baseline", folder, models, spacing)
        print(f"baseline:   {base['seconds']:8.2f} s   peak {base['peak_mib']:8.0f} MiB above the start")
        print(f"ratios:     {base['seconds'] / fast['seconds']:8.1f} x faster, "
              f"{fast['peak_mib'] / base['peak_mib']:.3f} of the baseline's peak memory "
              f"({base['peak_mib'] / fast['peak_mib']:.1f} x less)")
        differing = 0
        for organ in ORGANS:
            a = np.load(folder / "fast" / f"{organ}.npy")
            b = np.load(folder / "baseline" / f"{organ}.npy")
            differing += int(np.unpackbits(a ^ b).sum())
        total = sum(base["counts"].values())
        print(f"same result: {total} attention voxels in the baseline over 9 organs, {differing} differ in the fast "
              f"path")
        print("per organ attention voxels: " + ", ".join(f"{o} {fast['counts'][o]}" for o in ORGANS))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def whole_process(shape: tuple[int, int, int], spacing: tuple[float, float, float], models: int,
                  repeat: int) -> None:
    from ml_engine.io import write_nifti
    from ml_engine.phantoms import write_phantom_case

    folder = Path(tempfile.mkdtemp(prefix="bench_attention_case_"))
    try:
        start = time.perf_counter()
        phantom = make_phantom(0, shape=shape, spacing=spacing, troubles=[], name="case")
        case = write_phantom_case(phantom, folder)
        archs = ("swin_unetr", "nnunet", "unet", "member_4", "member_5")[:models]
        for index, organ in enumerate(ORGANS):
            maps, _ = simulate_organ(phantom.labels == index + 1, spacing=spacing, models=models, seed=index,
                                     errors=("stomach_cavity_missed", "boundary_shift", "liver_bite"), organ=organ)
            for arch, data in zip(archs, maps, strict=True):
                write_nifti(case / "backbones" / arch / "soft_pred" / f"{organ}.nii.gz", data, phantom.affine,
                            dtype=np.uint8)
        del phantom
        print(f"4. whole process: {' x '.join(map(str, shape))} at {spacing} mm, {len(ORGANS)} organs, {models} "
              f"members, {len(ORGANS) * models} soft maps as .nii.gz (made in {time.perf_counter() - start:.0f} s)")
        print(f"load before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        fast_cmd = [sys.executable, "-m", "ml_engine", "attention", str(case)]
        ref_cmd = [sys.executable, __file__, "--reference-process", str(case)]
        fast_times, ref_times = [], []
        for _ in range(repeat):  # interleaved, so that a change of load touches both
            for command, times in ((fast_cmd, fast_times), (ref_cmd, ref_times)):
                began = time.perf_counter()
                result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=REPO)
                times.append(time.perf_counter() - began)
                if result.returncode != 0:
                    raise SystemExit(f"{command} failed:\n{result.stderr[-2000:]}")
        fast_s, ref_s = min(fast_times), min(ref_times)
        sizes = sum(p.stat().st_size for p in (case / "average" / "attention").iterdir())
        ref_sizes = sum(p.stat().st_size for p in (case / "reference" / "attention").iterdir())
        for label, best_s, times, size in (("ml_engine attention (compact maps)", fast_s, fast_times, sizes),
                                           ("dense reference (full maps)", ref_s, ref_times, ref_sizes)):
            runs = ", ".join(f"{t:.2f}" for t in times)
            print(f"{label:<35} {best_s:7.2f} s  (runs: {runs}); heatmaps {size / 2**20:.2f} MiB")
        print(f"ratio: {ref_s / fast_s:.1f} x faster (best of {repeat} each)")
        print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def reference_process(case: Path) -> None:
    """The dense reference as a whole process: read the soft maps, pseudo-labels, attention, full-size heatmaps."""
    import nibabel as nib

    from ml_engine.io import list_soft_preds

    members = list_soft_preds(case)
    organs = [o for o in ORGANS if o in next(iter(members.values()))]
    affine = None

    def load(organ: str) -> list[np.ndarray]:
        nonlocal affine
        maps = []
        for files in members.values():
            image = nib.load(str(files[organ]))
            affine = image.affine
            maps.append(np.asarray(image.dataobj))
        return maps

    out = case / "reference"
    (out / "attention").mkdir(parents=True, exist_ok=True)
    for organ in organs:
        nib.save(nib.Nifti1Image(published_pseudo_label(load(organ)), affine), str(out / f"pseudo_{organ}.nii.gz"))

    def load_pseudo(organ: str) -> np.ndarray:
        return np.asarray(nib.load(str(out / f"pseudo_{organ}.nii.gz")).dataobj)

    for organ, heatmap, _ in published_attention(organs, load, load_pseudo):
        nib.save(nib.Nifti1Image(heatmap, affine), str(out / "attention" / f"{organ}.nii.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.8, 0.8, 1.5))
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--phantoms", type=int, default=8, help="phantoms for the attention evaluation")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--whole-process", action="store_true",
                        help="only part 4: the attention step as a whole process against the dense reference")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each process in part 4 (the best counts)")
    parser.add_argument("--reference-process", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("fast", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    spacing = tuple(float(s) for s in args.spacing)
    if args.child:
        child(args.child, args.data, args.models, spacing)
        return
    if args.reference_process:
        reference_process(args.reference_process)
        return
    if args.whole_process:
        whole_process(tuple(args.shape), spacing, args.models, args.repeat)
        return
    real_data()
    phantom_evaluation(args.phantoms)
    speed(tuple(args.shape), spacing, args.models, args.skip_baseline)


if __name__ == "__main__":
    main()
