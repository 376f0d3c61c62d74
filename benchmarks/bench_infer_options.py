"""CPU inference options, each measured against today's settings in the same run: speed on a 512 x 512 x 300 CT's
network grid and mean Dice on held-out phantoms.

    .venv/bin/python benchmarks/bench_infer_options.py                        # every option, the three members
    .venv/bin/python benchmarks/bench_infer_options.py --options overlap_025 bf16 --dice-phantoms 3

Speed: the phantom CT of bench_infer.py (512 x 512 x 300 at 0.8 x 0.8 x 1.0 mm) is preprocessed once per member
grid (3 mm: 133 x 108 x 100); each member's sliding-window inference on it is timed per option (after one warm-up
window), in this process, with torch's threads as set (--threads), the options round-robin --repeat times (the
best counts). Options:
- baseline: overlap 0.5, 2 windows a forward pass, float32 (today's settings);
- overlap_025: overlap 0.25; overlap_0: no overlap;
- batch_1 / batch_4 / batch_8: windows per forward pass;
- channels_last: the network and the input in torch.channels_last_3d;
- bf16: bfloat16 autocast on the CPU (needs AVX-512 BF16 or AMX to pay); overlap_025_bf16: both;
- compile (only when named): torch.compile (inductor), its compile time reported apart;
- onnxruntime / openvino: reported as not measured when the package is not installed.
Quality: mean Dice (9 organs) of the ensemble on --dice-phantoms held-out phantoms (seeds 5000.., as
bench_train.py), baseline against each option that changes the numbers (overlap, bf16).
The load average is printed before and after. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_engine.metrics import dice  # noqa: E402
from ml_engine.phantoms import make_phantom  # noqa: E402
from ml_engine.predict import Predictor  # noqa: E402
from ml_engine.preprocess import prepare_image  # noqa: E402
from ml_engine.train import load_checkpoint  # noqa: E402

OPTIONS = ("baseline", "overlap_025", "overlap_0", "batch_1", "batch_4", "channels_last", "bf16", "overlap_025_bf16",
           "compile", "onnxruntime", "openvino")
DEFAULT_OPTIONS = ("baseline", "overlap_025", "overlap_0", "batch_1", "batch_4", "channels_last", "bf16",
                   "onnxruntime", "openvino")  # compile only when asked: minutes of compiling per member
NUMERIC = {"overlap_025": {"overlap": 0.25}, "overlap_0": {"overlap": 0.0}, "bf16": {"cpu_bf16": True},
           "overlap_025_bf16": {"overlap": 0.25, "cpu_bf16": True}}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def run_windows(model, image: np.ndarray, patch, *, overlap=0.5, batch=2, bf16=False, channels_last=False) -> float:
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(image)[None, None]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    started = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        sliding_window_inference(x, roi_size=patch, sw_batch_size=batch, predictor=model, overlap=overlap,
                                 mode="gaussian")
    return time.perf_counter() - started


def speed(options: list[str], checkpoints, image_for, repeat: int) -> dict[str, dict[str, float]]:
    """{arch: {option: best seconds of `repeat` rounds}}; the options run round-robin, so that a change of load
    touches them all alike."""
    out: dict[str, dict[str, float]] = {}
    for ckpt in checkpoints:
        image = image_for(ckpt)
        warm = np.zeros(tuple(int(p) for p in ckpt.patch), dtype=np.float32)
        row = out.setdefault(ckpt.arch, {})
        runs: dict[str, tuple] = {}
        for option in options:
            kwargs: dict = {}
            net = ckpt.build("cpu")
            if option in ("onnxruntime", "openvino"):
                row[option] = float("nan")  # not installed here (not a pinned dependency): not measured
                continue
            if option.startswith("overlap"):
                kwargs["overlap"] = NUMERIC[option]["overlap"]
                kwargs["bf16"] = NUMERIC[option].get("cpu_bf16", False)
            elif option.startswith("batch_"):
                kwargs["batch"] = int(option.split("_")[1])
            elif option == "bf16":
                kwargs["bf16"] = True
            elif option == "channels_last":
                net = net.to(memory_format=torch.channels_last_3d)
                kwargs["channels_last"] = True
            elif option == "compile":
                started = time.perf_counter()
                try:
                    net = torch.compile(net)
                    run_windows(net, warm, ckpt.patch)
                except Exception as exc:  # noqa: BLE001 - a benchmark reports what failed and goes on
                    print(f"  {ckpt.arch} compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
                    row[option] = float("nan")
                    continue
                row["compile (one-off compile s)"] = time.perf_counter() - started
            run_windows(net, warm, ckpt.patch, **kwargs)  # warm-up
            runs[option] = (net, kwargs)
        for _ in range(repeat):
            for option, (net, kwargs) in runs.items():
                seconds = run_windows(net, image, ckpt.patch, **kwargs)
                row[option] = min(row.get(option, seconds), seconds)
                print(f"  {ckpt.arch:<11} {option:<14} {seconds:7.1f} s   (load {load()})", flush=True)
    return out


def quality(options: list[str], checkpoints, n: int) -> dict[str, float]:
    cases = [make_phantom(5000 + i, name=f"phantom_{5000 + i}") for i in range(n)]
    out = {}
    for option in ["baseline", *[o for o in options if o in NUMERIC]]:
        predictor = Predictor(checkpoints, device="cpu", **NUMERIC.get(option, {}))
        scores = []
        for case in cases:
            result = predictor.predict(case.ct, case.affine)
            scores.append(np.mean([dice(o.mask, case.labels == o.value) for o in result.iter_organs()]))
        out[option] = float(np.mean(scores))
        print(f"  Dice {option:<14} {out[option]:.4f}", flush=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+",
                        default=[REPO / "ml_engine" / "checkpoints" / f"{a}_tiny.pt"
                                 for a in ("swin_unetr", "nnunet", "unet")])
    parser.add_argument("--options", nargs="+", choices=OPTIONS, default=list(DEFAULT_OPTIONS))
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--dice-phantoms", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2, help="rounds over the options (the best counts)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = ["baseline", *[o for o in args.options if o != "baseline"]]
    print(f"load before: {load()} on {os.cpu_count()} cores; torch {torch.__version__}, {args.threads} threads; "
          f"bf16 CPU support: {torch.backends.mkldnn.is_available() and 'avx512_bf16' in open('/proc/cpuinfo').read()}")
    checkpoints = [load_checkpoint(p) for p in args.models]
    phantom = make_phantom(11, shape=tuple(args.shape), spacing=(0.8, 0.8, 1.0))
    grids: dict = {}

    def image_for(ckpt):
        key = (ckpt.spacing, ckpt.hu_window)
        if key not in grids:
            grids[key] = prepare_image(phantom.ct, phantom.affine, ckpt.spacing, hu_window=ckpt.hu_window)[0]
        return grids[key]

    print(f"speed: sliding windows on the network grid of a {' x '.join(map(str, args.shape))} CT")
    times = speed(options, checkpoints, image_for, args.repeat)
    print(f"\nquality: ensemble mean Dice on {args.dice_phantoms} held-out phantoms")
    scores = quality(options, checkpoints, args.dice_phantoms) if args.dice_phantoms else {}
    print(f"\n| option | {' | '.join(times)} | sum | x baseline | ensemble Dice |")
    print("| --- |" + " --- |" * (len(times) + 3))
    base = sum(row["baseline"] for row in times.values())
    for option in options:
        cells = [row.get(option, float("nan")) for row in times.values()]
        total = sum(cells)
        ratio = base / total if total == total else float("nan")
        dice_cell = f"{scores[option]:.4f}" if option in scores else "same numbers" if option not in NUMERIC else "-"
        print(f"| {option} | " + " | ".join(f"{c:.1f} s" for c in cells) + f" | {total:.1f} s | {ratio:.2f} | "
              f"{dice_cell} |")
    compile_s = {a: row.get("compile (one-off compile s)") for a, row in times.items()}
    if any(compile_s.values()):
        print("compile time (one-off): " + ", ".join(f"{a} {s:.0f} s" for a, s in compile_s.items() if s))
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
