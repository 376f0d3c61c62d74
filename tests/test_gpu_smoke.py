"""scripts/gpu_smoke.sh: a clear refusal without CUDA, and every step of it on the CPU (--dry-run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_smoke.sh"


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_and_exits_2():
    result = subprocess.run([str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr and "--dry-run" in result.stderr


@pytest.mark.slow
def test_dry_run_runs_every_step_on_the_cpu_one_line_each():
    # celery and bench_infer are left out here: tests/integration/test_gpu_queue.py is the first, a subprocess call of
    # benchmarks/bench_infer.py the second
    result = subprocess.run([str(SCRIPT), "--dry-run", "--skip", "celery", "bench_infer"], cwd=REPO,
                            capture_output=True, text=True, timeout=900,
                            env={**os.environ, "ATLAS_SMOKE_SECONDS": "800"})
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    steps = {line.split("  ")[0].strip(): line for line in lines[:-1]}
    for arch in ("swin_unetr", "nnunet", "unet"):
        for size in ("tiny", "base"):
            line = steps[f"train {arch} {size}"]
            assert " ok " in line and "ms/step" in line and "loss" in line and "peak" in line
    for name in ("env", "finetune", "infer", "attention", "gpu_vs_cpu"):
        assert " ok " in steps[name], steps.get(name)
    assert "max |dp| 0/255" in steps["gpu_vs_cpu"]  # the CPU against itself: the same numbers
    assert lines[-1] == "gpu_smoke: all steps ok (cpu)"
