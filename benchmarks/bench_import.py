"""Import throughput: import_cases against the least any importer must do, measured in the same run.

Baseline: read every source file once, decompress it to the end (which is what checking a .gz whole
costs), and copy the CT bytes to the media folder. The import also parses the NIfTI, checks voxels
for NaN, checks labels against the CT's grid, translates label values, writes the merged label map and
inserts the rows. Prints seconds per case for both, their ratio, and the peak RSS of the import
against one volume's uncompressed size.

    .venv/bin/python benchmarks/bench_import.py [--cases 4] [--shape 256 256 160]
"""

from __future__ import annotations

import argparse
import gzip
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def baseline(root: Path, media: Path) -> float:
    start = time.perf_counter()
    for case in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in [case / "ct.nii.gz", *sorted((case / "segmentations").glob("*.nii.gz"))]:
            with gzip.open(path, "rb") as handle:
                while handle.read(1 << 22):
                    pass
        target = media / "baseline" / case.name / "ct.nii.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(case / "ct.nii.gz", target)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--shape", type=int, nargs=3, default=[256, 256, 160])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        tmp_path = Path(tmp)
        os.environ.update({"ATLAS_VAR_DIR": str(tmp_path / "var"), "DJANGO_SETTINGS_MODULE": "atlas.settings"})
        os.environ.pop("DATABASE_URL", None)
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        from annotation.services.imports import import_cases

        call_command("migrate", verbosity=0)
        source = tmp_path / "source"
        # in a child process, so that this process's peak RSS is the import's own
        subprocess.run([sys.executable, "-m", "ml_engine", "phantoms", str(source), "--n", str(args.cases),
                        "--seed", "1", "--shape", *map(str, args.shape), "--spacing", "0.8", "0.8", "1.5"],
                       cwd=REPO, check=True, capture_output=True)
        volume_mb = args.shape[0] * args.shape[1] * args.shape[2] * 2 / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        base = min(baseline(source, Path(settings.MEDIA_ROOT)) for _ in range(2))
        start = time.perf_counter()
        report = import_cases(source, dataset="bench")
        elapsed = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert report.ok and len(report.imported) == args.cases, report.errors
    shape = "x".join(map(str, args.shape))
    print(f"cases: {args.cases} phantoms of {shape} int16 ({volume_mb:.1f} MB each) with 9 organ masks")
    print(f"baseline (gunzip every file + copy the CT): {base / args.cases:.3f} s/case")
    print(f"import_cases:                              {elapsed / args.cases:.3f} s/case")
    print(f"ratio import / baseline:                   {elapsed / base:.2f}")
    print(f"peak RSS: {rss_after:.0f} MB (before the import {rss_before:.0f} MB); "
          f"{rss_after / volume_mb:.1f}x one uncompressed CT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
