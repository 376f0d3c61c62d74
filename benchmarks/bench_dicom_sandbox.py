"""DICOM decode in a sandboxed child (ml_engine.io.sandbox) against SimpleITK in this process, as before issue 23.

    .venv/bin/python benchmarks/bench_dicom_sandbox.py                      # a 512 x 512 x 300 int16 series
    .venv/bin/python benchmarks/bench_dicom_sandbox.py --shape 256 256 100  # a quick run

One series, written here (one uncompressed file per slice, as tests/conftest.write_dicom_series writes them), read
--repeat times each way, alternating, median seconds:
- in-process: GetGDCMSeriesIDs over the folder, then GetGDCMSeriesFileNames + ImageSeriesReader + the (x, y, z)
  copy, in this process (what read_dicom_series / load_dicom_series did: a C-order copy, which costs a transposition);
- in-process, Fortran order: the same without that copy (the voxels (x, y, z) as ITK holds them, x fastest);
- sandbox: read_dicom_series + load_dicom_series, each one child (a fresh interpreter importing NumPy and SimpleITK,
  limits, Landlock), the voxels back through a raw file in Fortran order (as NIfTI stores them).
Also the child's peak address space (what RLIMIT_AS must allow). Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml_engine.io import load_dicom_series, read_dicom_series  # noqa: E402
from ml_engine.io.sandbox import run_child  # noqa: E402
from tests.conftest import write_dicom_series  # noqa: E402

UID = "1.2.826.0.1.3680043.2.1125.1.42"


def in_process(folder: Path, reorder: bool = True) -> np.ndarray:
    import SimpleITK as sitk

    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uids[0]))
    image = reader.Execute()
    data = sitk.GetArrayFromImage(image).transpose(2, 1, 0)
    return np.ascontiguousarray(data) if reorder else data


def in_process_fortran(folder: Path) -> np.ndarray:
    return in_process(folder, reorder=False)


def sandboxed(folder: Path) -> np.ndarray:
    (uid, directory), = read_dicom_series(folder)
    volume, _ = load_dicom_series(directory, uid)
    return volume.data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ct = rng.integers(-1000, 1500, size=tuple(args.shape), dtype=np.int16)
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_dicom_series(Path(tmp) / "series", ct)
        assert np.array_equal(in_process(folder), ct) and np.array_equal(sandboxed(folder), ct)  # and warm caches
        times: dict[str, list[float]] = {"in-process": [], "in-process-F": [], "sandbox": []}
        for _ in range(args.repeat):
            for name, fn in (("in-process", in_process), ("in-process-F", in_process_fortran),
                             ("sandbox", sandboxed)):
                start = time.perf_counter()
                fn(folder)
                times[name].append(time.perf_counter() - start)
        with run_child("load", folder, source=folder, what="peak", args={"series_uid": UID}) as result:
            peak = result.fields["vm_peak_bytes"]
        with run_child("scan", folder, source=folder, what="peak") as result:
            scan_peak = result.fields["vm_peak_bytes"]
    base, boxed = statistics.median(times["in-process"]), statistics.median(times["sandbox"])
    fortran = statistics.median(times["in-process-F"])
    print(f"series {tuple(args.shape)} int16, {ct.nbytes / 2**20:.0f} MiB, {args.repeat} runs each, median:")
    print(f"  in-process, C order (before)  {base:.2f} s")
    print(f"  in-process, Fortran order     {fortran:.2f} s")
    print(f"  sandbox, Fortran order        {boxed:.2f} s  ({boxed - base:+.2f} s, ratio {boxed / base:.2f} against "
          f"before; {boxed - fortran:+.2f} s, ratio {boxed / fortran:.2f} against in-process Fortran)")
    print(f"  child's peak address space: load {peak / 2**20:.0f} MiB, scan {scan_peak / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
