"""CPU inference options, each measured against today's settings in the same run: speed on a 512 x 512 x 300 CT's
network grid, how far its probabilities move from PyTorch's, and mean Dice on held-out phantoms.

    .venv/bin/python benchmarks/bench_infer_options.py                        # the default options, three members
    .venv/bin/python benchmarks/bench_infer_options.py --options overlap_025 bf16 --dice-phantoms 3
    .venv/bin/python benchmarks/bench_infer_options.py --options compile onnxruntime openvino openvino_bf16

OpenVINO is a dependency (the Predictor's CPU runtime); ONNX Runtime and the ONNX exporter's packages are not
(measured, not kept: docs/benchmarks.md). Install them into the venv to measure them, or that option is reported
as not measured:

    .venv/bin/pip install onnx==1.23.2 onnxscript==0.7.2 onnxruntime==1.31.1

Speed: the phantom CT of bench_infer.py (512 x 512 x 300 at 0.8 x 0.8 x 1.0 mm) is preprocessed once per member
grid (3 mm: 133 x 108 x 100); each member's sliding-window inference on it is timed per option (after a warm-up
that runs a batch of 2 windows and one of 1), in this process, with torch's threads as set (--threads; the exported
runtimes get as many), the options round-robin --repeat times (the best counts). Options:
- baseline: PyTorch, overlap 0.5, 2 windows a forward pass, float32 (the settings before issue 18); every option
  runs in PyTorch but the exported and compiled ones;
- overlap_025: overlap 0.25 (the Predictor's default since); overlap_0: no overlap;
- batch_1 / batch_4: windows per forward pass;
- channels_last: the network and the input in torch.channels_last_3d;
- bf16: bfloat16 autocast on the CPU (needs AVX-512 BF16 or AMX to pay); overlap_025_bf16: both;
- compile: torch.compile (inductor; a C++ compiler on the PATH), its one-off compile time reported apart;
- onnxruntime: each member exported by torch.onnx.export (the dynamo exporter, the window batch dynamic, the
  32^3 window fixed), run by ONNX Runtime's CPU provider (idle threads not spinning); export + session time
  reported apart;
- openvino / openvino_bf16: the Predictor's predict.OpenVinoMember (ov.convert_model straight from PyTorch, no ONNX
  file; the window batch dynamic), inference precision float32 / bfloat16 (OpenVINO's own default on CPUs with
  AVX-512 BF16 or AMX); convert + compile time reported apart; overlap_025_openvino: the Predictor's defaults.
Each run's wall time and the CPU time of all the process's threads are taken; on a shared machine the CPU time
moves less with the load (but counts threads that spin while they wait).
Every option but the overlap and bf16 ones runs the same windows as the baseline: for those the largest difference
of their sigmoid probabilities from the baseline's on the speed grid is printed (max |dp|).
Quality: mean Dice (9 organs) of the ensemble on --dice-phantoms held-out phantoms (seeds 5000.., as
bench_train.py): the Predictor at overlap 0.5 (the baseline) against each option that changes the numbers or the
runtime (its members replaced by the option's compiled or exported runners).
The load average is printed before and after each round. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_engine.metrics import dice  # noqa: E402
from ml_engine.phantoms import make_phantom  # noqa: E402
from ml_engine.predict import OpenVinoMember, Predictor  # noqa: E402
from ml_engine.preprocess import prepare_image  # noqa: E402
from ml_engine.train import load_checkpoint  # noqa: E402

OPTIONS = ("baseline", "overlap_025", "overlap_0", "batch_1", "batch_4", "channels_last", "bf16", "overlap_025_bf16",
           "compile", "onnxruntime", "openvino", "openvino_bf16", "overlap_025_openvino")
DEFAULT_OPTIONS = ("baseline", "overlap_025", "overlap_0", "batch_1", "batch_4", "channels_last", "bf16",
                   "onnxruntime", "openvino")  # compile only when asked: minutes of compiling per member
BASELINE_OVERLAP = 0.5
# Options that change the numbers: the Predictor's settings for them (Dice measured with the Predictor so set).
NUMERIC = {"overlap_025": {"overlap": 0.25}, "overlap_0": {"overlap": 0.0}, "bf16": {"cpu_bf16": True},
           "overlap_025_bf16": {"overlap": 0.25, "cpu_bf16": True},
           "overlap_025_openvino": {"overlap": 0.25, "cpu_runtime": "openvino"}}
# Options that replace the network by another runner of the same windows: Dice measured with that runner.
RUNNERS = ("compile", "onnxruntime", "openvino", "openvino_bf16")
NEEDS = {"onnxruntime": ("onnx", "onnxscript", "onnxruntime"), "openvino": ("openvino",),
         "openvino_bf16": ("openvino",), "overlap_025_openvino": ("openvino",)}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def missing(option: str) -> list[str]:
    return [m for m in NEEDS.get(option, ()) if importlib.util.find_spec(m) is None]


def run_windows(model, image: np.ndarray, patch, *, overlap=BASELINE_OVERLAP, batch=2, bf16=False,
                channels_last=False) -> tuple[float, float, torch.Tensor]:
    """(wall seconds, CPU seconds of the process's threads, logits (1, C, x, y, z)) of one sliding-window
    inference."""
    from monai.inferers import sliding_window_inference

    x = torch.from_numpy(image)[None, None]
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    started, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits = sliding_window_inference(x, roi_size=patch, sw_batch_size=batch, predictor=model, overlap=overlap,
                                          mode="gaussian")
    return time.perf_counter() - started, time.process_time() - cpu, logits


def export_onnx(net: torch.nn.Module, patch, path: Path) -> Path:
    """The member as ONNX: input x (batch, 1, *patch) float32, the batch dynamic (1 to 16); output y, its logits."""
    example = torch.zeros(2, 1, *(int(p) for p in patch))
    torch.onnx.export(net, (example,), str(path), input_names=["x"], output_names=["y"], dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=16)},), verbose=False)
    return path


class OrtRunner:
    """An exported member under ONNX Runtime's CPU provider: torch (B, 1, x, y, z) -> torch logits."""

    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().float().numpy())
        return torch.from_numpy(self.session.run(["y"], {"x": array})[0])


def make_runner(option: str, ckpt, workdir: Path, threads: int):
    """(runner, sliding-window kwargs, one-off seconds or None) of one option for one member."""
    net = ckpt.build("cpu").eval()
    kwargs: dict = {}
    if option.startswith("overlap"):
        kwargs["overlap"] = NUMERIC[option]["overlap"]
        kwargs["bf16"] = NUMERIC[option].get("cpu_bf16", False)
        if option == "overlap_025_openvino":
            option = "openvino"
    elif option.startswith("batch_"):
        kwargs["batch"] = int(option.split("_")[1])
    elif option == "bf16":
        kwargs["bf16"] = True
    elif option == "channels_last":
        net = net.to(memory_format=torch.channels_last_3d)
        kwargs["channels_last"] = True
    if option not in RUNNERS:
        return net, kwargs, None  # PyTorch
    started = time.perf_counter()
    if option == "compile":
        runner = torch.compile(net)
    elif option == "onnxruntime":
        runner = OrtRunner(export_onnx(net, ckpt.patch, workdir / f"{ckpt.arch}.onnx"), threads)
    else:
        runner = OpenVinoMember(net, ckpt.patch, threads=threads, bf16=option == "openvino_bf16")
    # the first calls compile: a batch of 2 windows and a batch of 1 (the last batch of an odd count)
    warm = np.zeros((2 * int(ckpt.patch[0]), *(int(p) for p in ckpt.patch[1:])), dtype=np.float32)
    run_windows(runner, warm, ckpt.patch, **kwargs)
    return runner, kwargs, time.perf_counter() - started


def speed(options: list[str], checkpoints, image_for, repeat: int, threads: int, workdir: Path):
    """({arch: {option: best wall seconds of `repeat` rounds}}, the same of CPU seconds, {arch: {option: one-off s}},
    {arch: {option: max |dp|}}, {option: {arch: runner}}); the options run round-robin, so that a change of load
    touches them all alike."""
    times: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, float]] = {}
    one_off: dict[str, dict[str, float]] = {}
    drift: dict[str, dict[str, float]] = {}
    runners: dict[str, dict[str, object]] = {}
    for ckpt in checkpoints:
        image = image_for(ckpt)
        row, cpu_row = times.setdefault(ckpt.arch, {}), cpu.setdefault(ckpt.arch, {})
        runs: dict[str, tuple] = {}
        for option in options:
            if missing(option):
                print(f"  {option}: not measured ({', '.join(missing(option))} not installed)")
                continue
            try:
                runner, kwargs, seconds = make_runner(option, ckpt, workdir, threads)
            except Exception as exc:  # noqa: BLE001 - a benchmark reports what failed and goes on
                print(f"  {ckpt.arch} {option} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                continue
            if seconds is not None:
                one_off.setdefault(ckpt.arch, {})[option] = seconds
                print(f"  {ckpt.arch:<11} {option:<20} one-off {seconds:6.1f} s (compile / export / convert)")
            else:
                run_windows(runner, np.zeros(tuple(int(p) for p in ckpt.patch), dtype=np.float32), ckpt.patch,
                            **kwargs)  # warm-up
            runs[option] = (runner, kwargs)
            runners.setdefault(option, {})[ckpt.arch] = runner
        reference = None
        for _ in range(repeat):
            for option, (runner, kwargs) in runs.items():
                seconds, cpu_seconds, logits = run_windows(runner, image, ckpt.patch, **kwargs)
                if option == "baseline" and reference is None:
                    reference = torch.sigmoid(logits.float())
                elif option not in NUMERIC and option not in drift.get(ckpt.arch, {}) and reference is not None:
                    diff = float((torch.sigmoid(logits.float()) - reference).abs().max())
                    drift.setdefault(ckpt.arch, {})[option] = diff
                del logits
                row[option] = min(row.get(option, seconds), seconds)
                cpu_row[option] = min(cpu_row.get(option, cpu_seconds), cpu_seconds)
                print(f"  {ckpt.arch:<11} {option:<20} {seconds:7.1f} s, CPU {cpu_seconds:7.1f} s   (load {load()})",
                      flush=True)
    return times, cpu, one_off, drift, runners


def quality(options: list[str], checkpoints, n: int, runners) -> dict[str, float]:
    cases = [make_phantom(5000 + i, name=f"phantom_{5000 + i}") for i in range(n)]
    out = {}
    for option in ["baseline", *[o for o in options if o in NUMERIC or o in RUNNERS]]:
        settings = {"overlap": BASELINE_OVERLAP, "cpu_runtime": "torch", **NUMERIC.get(option, {})}
        predictor = Predictor(checkpoints, device="cpu", **settings)
        if option in RUNNERS:
            members = runners.get(option, {})
            if len(members) != len(checkpoints):
                print(f"  Dice {option:<16} not measured (not every member ran)")
                continue
            predictor.models = [members[ckpt.arch] for ckpt in checkpoints]
        scores = []
        for case in cases:
            result = predictor.predict(case.ct, case.affine)
            scores.append(np.mean([dice(o.mask, case.labels == o.value) for o in result.iter_organs()]))
        out[option] = float(np.mean(scores))
        print(f"  Dice {option:<16} {out[option]:.4f}   (load {load()})", flush=True)
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
    with tempfile.TemporaryDirectory(prefix="bench_infer_options_") as workdir:
        times, cpu, one_off, drift, runners = speed(options, checkpoints, image_for, args.repeat, args.threads,
                                               Path(workdir))
        print(f"\nquality: ensemble mean Dice on {args.dice_phantoms} held-out phantoms")
        scores = quality(options, checkpoints, args.dice_phantoms, runners) if args.dice_phantoms else {}
    archs = list(times)
    print(f"\n| option | {' | '.join(archs)} | sum | x baseline | CPU s (sum) | x baseline | max abs diff of p | "
          "one-off s | ensemble Dice |")
    print("| --- |" + " --- |" * (len(archs) + 7))
    cpu_base = sum(cpu[a].get("baseline", float("nan")) for a in archs)
    base = sum(times[a].get("baseline", float("nan")) for a in archs)
    for option in options:
        cells = [times[a].get(option, float("nan")) for a in archs]
        total = sum(cells)
        ratio = base / total if total == total else float("nan")
        cpu_total = sum(cpu[a].get(option, float("nan")) for a in archs)
        cpu_ratio = cpu_base / cpu_total if cpu_total == cpu_total else float("nan")
        diffs = [drift.get(a, {}).get(option) for a in archs]
        diff_cell = "-" if option in NUMERIC or option == "baseline" else \
            " / ".join("n/a" if d is None else f"{d:.1e}" for d in diffs)
        offs = [one_off.get(a, {}).get(option) for a in archs]
        off_cell = " / ".join(f"{s:.0f}" for s in offs if s is not None) or "-"
        dice_cell = f"{scores[option]:.4f}" if option in scores else \
            "not measured" if option in RUNNERS or option in NUMERIC else "same numbers"
        print(f"| {option} | " + " | ".join(f"{c:.2f} s" for c in cells) + f" | {total:.2f} s | {ratio:.2f} | "
              f"{cpu_total:.1f} s | {cpu_ratio:.2f} | "
              f"{diff_cell} | {off_cell} | {dice_cell} |")
    print(f"load after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
