"""`python benchmarks/simulate_annotator [options]` (or, from benchmarks/, `python -m simulate_annotator`)."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a folder: make the package importable by its name
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from simulate_annotator.report import main
else:
    from .report import main

main()
