"""Reading an uploaded label map: the old SimpleITK NRRD route against ml_engine.io's own NRRD reader (issue #23).

    .venv/bin/python benchmarks/bench_label_readers.py                       # 512 x 512 x 300, 5 runs each
    .venv/bin/python benchmarks/bench_label_readers.py --shape 256 256 100   # a quick run

One uint8 label map, made here: a phantom's organs (ml_engine.phantoms, seed 0, 0.8 x 0.8 x 1.5 mm), written
- as NIfTI .nii.gz by write_nifti (ISA-L, level FAST: as Atlas's own files are written);
- as NRRD by ITK (SimpleITK.WriteImage with compression: gzip, LPS, as 3D Slicer saves a label map).

Readers, each giving a Volume (x, y, z; RAS+) with the checks an upload gets (size limit, the CT's shape):
- baseline: the route load_label_image took for NRRD before #23, kept here: SimpleITK's header read, the checks,
  then its reader and sitk_to_volume;
- ml_engine.io.nrrd.load_nrrd, the new pure-Python reader, gzip through ISA-L, and through the standard library
  (the fallback without python-isal);
- SimpleITK's reader alone, without the checks and without the C-order copy sitk_to_volume made (most of the old
  route's time): the native parser's own speed, for reference;
- load_label_image on the .nii.gz (load_nifti), for comparison with the format Atlas stores.
Runs are interleaved (one of each reader per round) so that load changes hit them alike; min and median seconds
of --repeat rounds, ratios against the baseline's median in the same run. Nothing is asserted about time.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ml_engine import io  # noqa: E402
from ml_engine.io import gz, nrrd  # noqa: E402
from ml_engine.phantoms import make_phantom  # noqa: E402


def simpleitk_route(path: Path, *, max_bytes: int, expect_shape: tuple[int, ...]) -> io.Volume:
    """load_label_image's NRRD branch before #23 (ml_engine/io/sitk_images.py at b739bb8), for benign files only."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.SetImageIO("NrrdImageIO")
    reader.ReadImageInformation()
    size = tuple(int(s) for s in reader.GetSize())
    if len(size) != 3 or reader.GetNumberOfComponents() != 1:
        raise io.ImageError(path, "expected one 3D label map")
    if int(np.prod(size, dtype=object)) * 8 > max_bytes:
        raise io.ImageError(path, "exceeds the limit")
    if sorted(size) != sorted(expect_shape):
        raise io.ImageError(path, "differs from the CT's")
    return io.sitk_to_volume(reader.Execute(), path, max_bytes=max_bytes)


def simpleitk_reader_alone(path: Path, *, max_bytes: int, expect_shape: tuple[int, ...]) -> io.Volume:
    """SimpleITK's NRRD reader with no checks and no transposed copy: its array (one plain copy out of the image)
    viewed in (x, y, z) order (Fortran order, as load_nrrd returns). The native parser's own cost, apart from the
    C-order copy of the transposed array that sitk_to_volume made."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path), imageIO="NrrdImageIO")
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    lps = np.diag([-1.0, -1.0, 1.0])
    affine = np.eye(4)
    affine[:3, :3] = lps @ direction @ np.diag(image.GetSpacing())
    affine[:3, 3] = lps @ np.asarray(image.GetOrigin())
    return io.Volume(data=sitk.GetArrayFromImage(image).transpose(2, 1, 0), affine=affine)


def itk_write(path: Path, labels: np.ndarray, affine: np.ndarray) -> Path:
    """labels (x, y, z) on the RAS+ affine, written by ITK: LPS, gzip (as 3D Slicer writes it)."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))
    spacing = np.array(io.spacing_from_affine(affine))
    lps = np.diag([-1.0, -1.0, 1.0])
    image.SetSpacing(spacing.tolist())
    image.SetDirection((lps @ affine[:3, :3] / spacing).ravel().tolist())
    image.SetOrigin((lps @ affine[:3, 3]).tolist())
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def with_stdlib_gzip(read):
    def run(*args, **kwargs):
        saved = gz._gzip
        gz._gzip = gzip
        try:
            return read(*args, **kwargs)
        finally:
            gz._gzip = saved

    return run


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shape = tuple(args.shape)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{uptime}\n{os.cpu_count()} cores; gzip backend {io.GZIP_BACKEND}; load before {load()}")
    start = time.perf_counter()
    phantom = make_phantom(0, shape=shape, spacing=(0.8, 0.8, 1.5))
    labels, affine = phantom.labels, phantom.affine
    made = time.perf_counter() - start
    print(f"label map {' x '.join(map(str, shape))} uint8, {int(labels.max())} organs, "
          f"{np.count_nonzero(labels) / labels.size:.1%} of voxels labelled (made in {made:.0f} s)")
    folder = Path(tempfile.mkdtemp(prefix="bench_labels_"))
    try:
        nii = io.write_nifti(folder / "label.nii.gz", labels, affine, level=io.FAST)
        nrrd_path = itk_write(folder / "label.nrrd", labels, affine)
        limit = labels.size * 8
        readers = [
            ("NRRD gzip, SimpleITK (before #23)", simpleitk_route, nrrd_path),
            ("NRRD gzip, io.nrrd, ISA-L", nrrd.load_nrrd, nrrd_path),
            ("NRRD gzip, SimpleITK reader alone", simpleitk_reader_alone, nrrd_path),
            ("NRRD gzip, io.nrrd, stdlib gzip", with_stdlib_gzip(nrrd.load_nrrd), nrrd_path),
            ("NIfTI .nii.gz, load_label_image", io.load_label_image, nii),
        ]
        for label, read, path in readers:  # each once, checked: the same voxels and grid (a warm-up too)
            volume = read(path, max_bytes=limit, expect_shape=shape)
            assert np.array_equal(volume.data, labels) and np.allclose(volume.affine, affine, atol=1e-6), label
        times: dict[str, list[float]] = {label: [] for label, _, _ in readers}
        for _ in range(args.repeat):
            for label, read, path in readers:
                tick = time.perf_counter()
                read(path, max_bytes=limit, expect_shape=shape)
                times[label].append(time.perf_counter() - tick)
        base = statistics.median(times[readers[0][0]])
        print(f"\n{'reader':<36} {'min s':>7} {'median s':>9} {'x (median)':>11} {'file MiB':>9}")
        for label, _, path in readers:
            runs = times[label]
            print(f"{label:<36} {min(runs):>7.3f} {statistics.median(runs):>9.3f} "
                  f"{base / statistics.median(runs):>11.2f} {path.stat().st_size / 2**20:>9.2f}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\n{args.repeat} interleaved rounds; load after {load()}")


if __name__ == "__main__":
    main()
