"""Speed and memory of ensemble inference on a 512 x 512 x 300 CT (phantom).

    python benchmarks/bench_infer.py [--models ml_engine/checkpoints/*_tiny.pt] [--shape 512 512 300]

Writes the phantom CT to a temporary folder, then runs the whole `infer` path, after one warm-up call on a small
volume (timed apart), (read the CT, three networks with
sliding windows, stream organ by organ back to the CT grid, write 3 x 9 soft predictions, 9 masks and the
pseudo-label) in a fresh child process, so that its peak RSS is that of inference alone. Prints the wall time per
stage, the peak RSS, and the memory a naive implementation would hold (members x organs x full volume in float32).
On a machine with CUDA it also times the `base` networks (untrained weights: speed only) on the GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def child(ct_path: Path, models: list[Path], out: Path, device: str | None, base: bool, overlap: float | None) -> None:
    """Run inference once and print a JSON line of timings and peak RSS."""
    import numpy as np
    import torch

    from ml_engine.io import average_mask_path, load_nifti, pseudo_label_path, soft_pred_path, write_nifti
    from ml_engine.networks import ARCHITECTURES, build_network, defaults_for
    from ml_engine.phantoms import ORGANS
    from ml_engine.predict import Predictor
    from ml_engine.train import Checkpoint, load_checkpoint

    times: dict[str, float] = {}
    started = time.perf_counter()
    if base:
        checkpoints = []
        for arch in ARCHITECTURES:
            d = defaults_for(arch, "base")
            net = build_network(arch, len(ORGANS), "base")
            checkpoints.append(Checkpoint(arch=arch, size="base", organs=ORGANS, spacing=d.spacing,
                                          hu_window=(-175.0, 250.0), patch=d.patch, state=net.state_dict()))
    else:
        checkpoints = [load_checkpoint(p) for p in models]
    # production's window batch (predict.window_batch) and overlap (predict.DEFAULT_OVERLAP) unless --overlap
    predictor = Predictor(checkpoints, device=device, **({"overlap": overlap} if overlap is not None else {}))
    times["load models"] = time.perf_counter() - started
    # warm-up, not timed with the case: the first call pays one-off costs (CUDA context and cuDNN autotuning on a
    # GPU, allocator and thread-pool start on the CPU) that a long-lived worker pays once
    t = time.perf_counter()
    warm = np.full((96, 96, 64), -1000, dtype=np.int16)
    warm[16:80, 16:80, 8:56] = 40
    predictor.predict(warm, np.diag([3.0, 3.0, 3.0, 1.0]))
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    times["warm-up (one small case, not in the total)"] = time.perf_counter() - t
    t = time.perf_counter()
    ct = load_nifti(ct_path)
    times["read CT"] = time.perf_counter() - t
    t = time.perf_counter()
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    result = predictor.predict(ct.data, ct.affine)
    if predictor.device.type == "cuda":
        torch.cuda.synchronize()
    times["networks (preprocess + sliding window)"] = time.perf_counter() - t
    t = time.perf_counter()
    write_seconds = 0.0
    for organ in result.iter_organs():
        w = time.perf_counter()
        for member, soft in organ.soft.items():
            write_nifti(soft_pred_path(out, member, organ.organ), soft, ct.affine, ct.header, np.uint8)
        write_nifti(average_mask_path(out, organ.organ), organ.mask, ct.affine, ct.header, np.uint8)
        write_seconds += time.perf_counter() - w
    write_nifti(pseudo_label_path(out), result.pseudo_label, ct.affine, ct.header, np.uint8)
    stream = time.perf_counter() - t
    times["back to the CT grid (resample, average, pseudo-label)"] = stream - write_seconds
    times["write 37 NIfTI files"] = write_seconds
    times["total"] = time.perf_counter() - started - times["warm-up (one small case, not in the total)"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024
    times["CPU time (user + system, all threads)"] = usage.ru_utime + usage.ru_stime
    print(json.dumps({"times": times, "member_seconds": result.seconds, "peak_rss": peak,
                      "network_grid": list(result.specs[0].shape), "device": str(predictor.device),
                      "gpu_peak": torch.cuda.max_memory_allocated() if predictor.device.type == "cuda" else 0}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+",
                        default=[REPO / "ml_engine" / "checkpoints" / f"{a}_tiny.pt"
                                 for a in ("swin_unetr", "nnunet", "unet")])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 1.0])
    parser.add_argument("--child", nargs=2, metavar=("CT", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None)
    parser.add_argument("--overlap", type=float, nargs="+", default=None,
                        help="sliding-window overlaps to compare on the CPU, one run each (default: production's)")
    parser.add_argument("--base", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.models, Path(args.child[1]), args.device, args.base,
              args.overlap[0] if args.overlap else None)
        return 0

    import numpy as np
    import torch

    from ml_engine.io import write_nifti
    from ml_engine.phantoms import ORGANS, make_phantom

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        phantom = make_phantom(11, shape=tuple(args.shape), spacing=tuple(args.spacing))
        ct_path = write_nifti(Path(tmp) / "ct.nii.gz", phantom.ct, phantom.affine, dtype=np.int16)
        voxels = int(np.prod(args.shape))
        del phantom
        print(f"phantom {'x'.join(map(str, args.shape))} at {args.spacing} mm: {time.perf_counter() - t:.0f} s to make")
        runs = [("cpu", "tiny", False, overlap) for overlap in (args.overlap or [None])]
        if torch.cuda.is_available():
            runs += [("cuda", "tiny", False, None), ("cuda", "base", True, None)]
        else:
            print("no CUDA device on this machine: the GPU figures (base networks on a GPU) are not measured")
        for device, size, base, overlap in runs:
            out = Path(tmp) / f"case_{device}_{size}_{overlap}"
            command = [sys.executable, __file__, "--child", str(ct_path), str(out), "--device", device,
                       "--models", *map(str, args.models)] + (["--base"] if base else []) + \
                (["--overlap", str(overlap)] if overlap is not None else [])
            proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            if proc.returncode != 0:
                print(proc.stderr[-3000:])
                return 1
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            naive = len(args.models) * len(ORGANS) * voxels * 4
            print(f"\n{len(args.models)}-model ensemble, {size}, on {report['device']}, "
                  f"overlap {overlap or 'default'}, load {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
                  f"(network grid {'x'.join(map(str, report['network_grid']))}):")
            for stage, seconds in report["times"].items():
                print(f"  {stage:55s} {seconds:7.1f} s")
            for member, seconds in report["member_seconds"].items():
                print(f"    {member:53s} {seconds:7.1f} s")
            print(f"  peak RSS {report['peak_rss'] / 2**30:.2f} GiB; a naive float32 members x organs x volume "
                  f"would hold {naive / 2**30:.1f} GiB ({naive / report['peak_rss']:.1f} x more)")
            if report["gpu_peak"]:
                print(f"  peak GPU memory {report['gpu_peak'] / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
