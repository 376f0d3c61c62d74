"""The GPU smoke test: every CUDA path of the engine once, on small phantoms, one compact line per step.

    scripts/gpu_smoke.sh                 # on a machine with CUDA; the whole run is capped (ATLAS_SMOKE_SECONDS)
    scripts/gpu_smoke.sh --dry-run       # the same steps on the CPU, shrunk to seconds (tests run this)

Steps, in order (each line: step, ok / FAIL / skip, seconds, figures):
- env: torch, the device, its memory, bfloat16 support;
- train <arch> tiny and base: ms per step, peak memory, loss first -> last;
- finetune: the tiny unet fine-tuned from its shipped checkpoint;
- infer, attention: `python -m ml_engine infer` and `attention` on a phantom case, as a user runs them;
- gpu_vs_cpu: the shipped ensemble's probabilities on CUDA against the CPU's (largest difference in p x 255, share
  of voxels more than 2 levels apart, Dice of the pseudo-labels);
- celery: a real round through a Celery worker on the GPU queue (tests/integration/test_gpu_queue.py);
- bench_infer: benchmarks/bench_infer.py, its total line.
A step that fails prints its last error line and the run goes on; the exit status is 1 when any step failed, 2
when CUDA is missing (without --dry-run), 0 otherwise. Steps left when the time is up are skipped.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class Smoke:
    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.failed = 0

    def step(self, name: str, fn, *, needs: float = 0.0) -> None:
        if time.monotonic() + needs > self.deadline:
            print(f"{name:<22} skip   time is up", flush=True)
            return
        started = time.perf_counter()
        try:
            figures = fn() or ""
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - a smoke test reports every failure and goes on
            self.failed += 1
            status = "FAIL"
            last = traceback.format_exception_only(exc)[-1].strip()
            figures = last[:300]
        print(f"{name:<22} {status:<6} {time.perf_counter() - started:6.1f} s  {figures}", flush=True)


def peak_memory(device) -> str:
    import torch

    if device.type == "cuda":
        return f"peak {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    return f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"


def run(command: list[str], *, timeout: float) -> str:
    """Run a command in its own process group; past timeout the whole group (its children too) is killed."""
    import signal

    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise RuntimeError(f"timed out after {timeout:.0f} s (the run's time cap): {' '.join(command[1:4])}") from None
    if process.returncode != 0:
        lines = (stderr or stdout).strip().splitlines()
        raise RuntimeError(f"exit {process.returncode}: {lines[-1] if lines else ''}")
    return stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run every step on the CPU, shrunk")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("ATLAS_SMOKE_SECONDS", 900)))
    parser.add_argument("--skip", nargs="*", default=[], help="steps to leave out (e.g. celery bench_infer)")
    args = parser.parse_args()

    import numpy as np
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device here (torch.cuda.is_available() is False): nothing to test. "
              "Run it on a machine with a GPU, or with --dry-run to check the steps on the CPU.", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    smoke = Smoke(args.seconds)
    work = Path(tempfile.mkdtemp(prefix="gpu_smoke_"))

    from ml_engine.networks import ARCHITECTURES, defaults_for
    from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case
    from ml_engine.predict import Predictor
    from ml_engine.train import TrainConfig, load_checkpoint, make_train_case, train

    shipped = {arch: REPO / "ml_engine" / "checkpoints" / f"{arch}_tiny.pt" for arch in ARCHITECTURES}
    shape = (48, 48, 32) if args.dry_run else (96, 96, 64)

    def env() -> str:
        if device.type == "cuda":
            props = torch.cuda.get_device_properties(device)
            return (f"torch {torch.__version__}, {props.name}, {props.total_memory / 2**30:.0f} GiB, "
                    f"bf16 {torch.cuda.is_bf16_supported()}")
        return f"torch {torch.__version__}, CPU dry run ({os.cpu_count()} cores)"

    smoke.step("env", env)
    phantoms = [make_phantom(300 + i, shape=shape, troubles=()) for i in range(2)]
    prepared: dict = {}

    def cases_for(arch: str, size: str):
        spacing = defaults_for(arch, size).spacing
        if spacing not in prepared:
            prepared[spacing] = [make_train_case(p.name, p.ct, p.affine, {o: p.labels == i + 1
                                                                           for i, o in enumerate(ORGANS)},
                                                 ORGANS, spacing) for p in phantoms]
        return prepared[spacing]

    def training(arch: str, size: str):
        def fn() -> str:
            steps = (1 if size == "base" else 2) if args.dry_run else (20 if size == "base" else 50)
            patch = None
            if args.dry_run and size == "base":  # the smallest patch each base network takes, for the CPU
                patch = (64, 64, 64) if arch == "swin_unetr" else (32, 32, 32)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            config = TrainConfig(arch=arch, size=size, organs=ORGANS, steps=steps, seed=0, device=str(device),
                                 patch=patch, loss_every=5)
            ckpt = train(cases_for(arch, size), config)
            m = ckpt.metrics
            return (f"{1000 * m['wall_seconds'] / m['steps']:.0f} ms/step, {peak_memory(device)}, "
                    f"loss {m['loss_first']:.3f} -> {m['loss_last']:.3f}")
        return fn

    for size in ("tiny", "base"):
        for arch in ARCHITECTURES:
            smoke.step(f"train {arch} {size}", training(arch, size), needs=5)

    def finetune() -> str:
        parent = load_checkpoint(shipped["unet"])
        config = TrainConfig(arch="unet", organs=ORGANS, steps=2 if args.dry_run else 40, device=str(device))
        child = train(cases_for("unet", "tiny"), config, init=parent)
        return f"loss {child.metrics['loss_first']:.3f} -> {child.metrics['loss_last']:.3f}, parent {child.parent}"

    smoke.step("finetune", finetune, needs=5)

    case = write_phantom_case(make_phantom(400, shape=shape, troubles=(), name="smoke_case"), work / "atlas")

    def infer() -> str:
        started = time.perf_counter()
        run([sys.executable, "-m", "ml_engine", "infer", "--ct", str(case / "ct.nii.gz"), "--models",
             *map(str, shipped.values()), "--out", str(case), "--device", str(device)],
            timeout=smoke.deadline - time.monotonic())
        files = len(list((case / "backbones").rglob("*.nii.gz")))
        return f"{files} soft predictions, {time.perf_counter() - started:.1f} s as a process"

    smoke.step("infer", infer, needs=5)

    def attention() -> str:
        out = run([sys.executable, "-m", "ml_engine", "attention", str(case)],
                  timeout=smoke.deadline - time.monotonic())
        return out.strip().splitlines()[-1][:160]

    smoke.step("attention", attention, needs=5)

    def gpu_vs_cpu() -> str:
        from ml_engine.metrics import dice

        checkpoints = [load_checkpoint(p) for p in shipped.values()]
        phantom = phantoms[0]
        here = Predictor(checkpoints, device=str(device)).predict(phantom.ct, phantom.affine)
        cpu = Predictor(checkpoints, device="cpu").predict(phantom.ct, phantom.affine)
        worst, far, total = 0, 0, 0
        for a, b in zip(here.iter_organs(), cpu.iter_organs(), strict=True):
            for member in a.soft:
                diff = np.abs(a.soft[member].astype(np.int16) - b.soft[member].astype(np.int16))
                worst, far, total = max(worst, int(diff.max())), far + int((diff > 2).sum()), total + diff.size
        labels = [dice(here.pseudo_label == v, cpu.pseudo_label == v) for v in range(1, len(ORGANS) + 1)]
        return (f"{device.type} vs cpu: max |dp| {worst}/255, {far / total:.2e} of voxels > 2 levels apart, "
                f"pseudo-label Dice min {min(labels):.4f}")

    smoke.step("gpu_vs_cpu", gpu_vs_cpu, needs=5)

    def celery() -> str:
        out = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "tests/integration/test_gpu_queue.py"], timeout=smoke.deadline - time.monotonic())
        return out.strip().splitlines()[-1][:160]

    if "celery" not in args.skip:
        smoke.step("celery (gpu queue)", celery, needs=30)

    def bench_infer() -> str:
        bench_shape = ["64", "64", "48"] if args.dry_run else ["512", "512", "300"]
        out = run([sys.executable, "benchmarks/bench_infer.py", "--shape", *bench_shape],
                  timeout=smoke.deadline - time.monotonic())
        totals = [line.strip() for line in out.splitlines() if line.strip().startswith("total")]
        return f"{' x '.join(bench_shape)}: " + "; ".join(" ".join(t.split()) for t in totals)

    if "bench_infer" not in args.skip:
        smoke.step("bench_infer", bench_infer, needs=20)
    print(f"gpu_smoke: {'FAILED ' + str(smoke.failed) + ' step(s)' if smoke.failed else 'all steps ok'} "
          f"({device.type})", flush=True)
    return 1 if smoke.failed else 0


if __name__ == "__main__":
    sys.exit(main())
