"""What the review view costs the server per request: the per-organ diff (annotation.services.review_diff) and the
diff volume it serves, on label maps of a real CT's size, against a baseline measured in the same run that does the
least any diff must: read the two stored label files (gzip NIfTI, as storage.read_voxels does).

    .venv/bin/python benchmarks/bench_review_diff.py [--shape 512 512 300] [--repeat 3]

The labels: nine box-shaped organs covering about a fifth of the volume; the revision moves the liver's face by 4
voxels and erases a slab of the spleen (tens of thousands of changed voxels, as a real correction). Never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ml_engine.io import load_nifti, write_nifti  # noqa: E402
from ml_engine.label_diff import diff_mask, nifti_gz_bytes, organ_diff  # noqa: E402


def labels(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = shape
    old = np.zeros(shape, dtype=np.uint8)
    for value in range(1, 10):  # nine organs side by side
        x0 = (value - 1) * x // 10 + x // 40
        old[x0:x0 + x // 12, y // 4:y // 2 + y // 8 * (value % 3), z // 5:z // 5 * 4] = value
    new = old.copy()
    liver = np.argwhere(old[:, y // 3, z // 2] == 5)[:, 0]
    new[liver.max() + 1:liver.max() + 5, y // 4:y // 2, z // 5:z // 5 * 4] = 5
    new[(new == 1) & (np.arange(z)[None, None, :] > z // 2)] = 0
    return new, old


def seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine load before: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} CPUs")
    new, old = labels(tuple(args.shape))
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    with tempfile.TemporaryDirectory() as tmp:
        a = write_nifti(Path(tmp) / "new.nii.gz", new, affine, dtype=np.uint8)
        b = write_nifti(Path(tmp) / "old.nii.gz", old, affine, dtype=np.uint8)

        def read_both():
            return np.asarray(load_nifti(a).data), np.asarray(load_nifti(b).data)

        base = seconds(read_both, args.repeat)
        n, o = read_both()
        summary = seconds(lambda: organ_diff(n, o, range(1, 10)), args.repeat)
        def on_disk() -> bytes:
            """The first version: the mask written as a .nii.gz file (ml_engine.io.write_nifti), read back."""
            return write_nifti(Path(tmp) / "diff.nii.gz", diff_mask(n, o, 5), affine, dtype=np.uint8).read_bytes()

        volume = seconds(lambda: nifti_gz_bytes(diff_mask(n, o, 5), affine), args.repeat)
        disk = seconds(on_disk, args.repeat)
        size = len(nifti_gz_bytes(diff_mask(n, o, 5), affine))
    changed = int((new != old).sum())
    print(f"shape {args.shape}, {new.size / 1e6:.1f} M voxels, {changed} changed; median of {args.repeat}")
    print(f"baseline, read the two label files: {base:.2f} s")
    print(f"per-organ diff (counts and centres) on the read arrays: {summary:.2f} s ({summary / base:.2f} x baseline)")
    print(f"one organ's diff volume as gzip NIfTI bytes (label_diff.nifti_gz_bytes): {volume:.2f} s "
          f"({volume / base:.2f} x baseline), {size / 1e3:.0f} kB; written to disk and read back: {disk:.2f} s")
    print(f"review view request (read + summary): {(base + summary) / base:.2f} x baseline; "
          f"diff volume request (read + volume): {(base + volume) / base:.2f} x baseline")
    print(f"machine load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
