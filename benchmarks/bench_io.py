"""NIfTI read and write through ml_engine.io (ISA-L gzip, per-use levels) against nibabel's default (zlib level 1).

    .venv/bin/python benchmarks/bench_io.py                      # 512 x 512 x 300 int16 CT and a uint8 map
    .venv/bin/python benchmarks/bench_io.py --shape 256 256 100  # a quick run

Two volumes, made here with a fixed seed:
- a CT: int16 Hounsfield units, air around an elliptic body of soft tissue with noise (sigma 12 HU), bright bone;
- a uint8 map: one organ's soft prediction (p x 255): zero outside a blob, 255 inside, a ramp at its edge.

For each, the seconds to write and to read (best of --repeat) and the file size, by:
- nibabel: `nib.save` / `np.asarray(nib.load(...).dataobj)`, its defaults (stdlib zlib, level 1);
- io, stdlib: `write_nifti` / `load_nifti` with the standard library's gzip (the fallback without python-isal);
- io, fast / default: `write_nifti(level=FAST / DEFAULT)` / `load_nifti` with ISA-L, when installed.
Ratios are against nibabel's, measured in the same run. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml_engine import io  # noqa: E402
from ml_engine.io import gz  # noqa: E402  (the gzip backend lives here: patching gz._gzip switches it)


def make_ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2 < 1
    bone = (x ** 2 + (y + 0.45) ** 2) < 0.01
    slab = np.where(body, 40, -1000).astype(np.int16) + np.where(bone, 700, 0).astype(np.int16)
    ct = np.empty(shape, dtype=np.int16)
    for z in range(shape[2]):
        noise = rng.normal(0, 12, shape[:2]).astype(np.int16)
        ct[:, :, z] = slab + np.where(body, noise, noise // 4)
    return ct


def make_map(shape: tuple[int, int, int]) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [0.6 * shape[0], 0.45 * shape[1], 0.5 * shape[2]]
    radius = [0.18 * shape[0], 0.15 * shape[1], 0.2 * shape[2]]
    r = sum(((g - c) / rad) ** 2 for g, c, rad in zip(grids, centre, radius, strict=True))
    return (np.clip((1.15 - np.sqrt(r)) / 0.3, 0, 1) * 255).astype(np.uint8)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(name: str, data: np.ndarray, folder: Path, repeat: int) -> None:
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    mib = data.nbytes / 2**20
    rows = []

    def nib_write(path: Path) -> None:
        nib.save(nib.Nifti1Image(data, affine), str(path))

    def nib_read(path: Path) -> None:
        out = np.asarray(nib.load(str(path)).dataobj)
        assert out.shape == data.shape

    def io_read(path: Path) -> None:
        out = io.load_nifti(path).data
        assert out.shape == data.shape

    methods = [("nibabel default (zlib 1)", nib_write, nib_read, None)]
    saved = (gz._gzip, gz.FAST)
    methods.append(("io, stdlib fallback (zlib 1)", lambda p: io.write_nifti(p, data, affine), io_read, "stdlib"))
    if saved[0] is not gzip:
        methods.append((f"io, ISA-L fast (level {io.FAST})", lambda p: io.write_nifti(p, data, affine, level=io.FAST),
                        io_read, None))
        methods.append((f"io, ISA-L default (level {io.DEFAULT})",
                        lambda p: io.write_nifti(p, data, affine, level=io.DEFAULT), io_read, None))
    methods.append(("stdlib gzip level 6 (for size)", lambda p: io.write_nifti(p, data, affine, level=6), io_read,
                    "stdlib"))
    for label, write, read, backend in methods:
        path = folder / f"{name}.nii.gz"
        if backend == "stdlib":
            gz._gzip, gz.FAST = gzip, 1
        try:
            w = best(lambda: write(path), repeat)  # noqa: B023
            r = best(lambda: read(path), repeat)  # noqa: B023
        finally:
            gz._gzip, gz.FAST = saved
        rows.append((label, w, r, path.stat().st_size / 2**20))
        path.unlink()
    base_w, base_r = rows[0][1], rows[0][2]
    print(f"\n{name}: {' x '.join(map(str, data.shape))} {data.dtype} ({mib:.0f} MiB raw)")
    print(f"{'method':<34} {'write s':>8} {'x':>6} {'read s':>8} {'x':>6} {'file MiB':>9}")
    for label, w, r, size in rows:
        print(f"{label:<34} {w:>8.2f} {base_w / w:>6.1f} {r:>8.2f} {base_r / r:>6.1f} {size:>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    shape = tuple(args.shape)
    print(f"gzip backend: {io.GZIP_BACKEND}; load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} cores")
    folder = Path(tempfile.mkdtemp(prefix="bench_io_"))
    try:
        run("CT", make_ct(shape), folder, args.repeat)
        run("soft prediction", make_map(shape), folder, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nload after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
