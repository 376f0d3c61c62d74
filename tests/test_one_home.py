"""Each rule has one home (issue #27, item 2): no module re-derives what the engine's one function computes."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("annotation", "ml_engine", "benchmarks")


def sources(*skip: str):
    for folder in SOURCES:
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if "migrations" not in path.parts and rel not in skip:
                yield rel, path.read_text()


def test_spacing_comes_from_the_affine_in_one_place():
    """Voxel sizes from an affine: ml_engine.io.spacing_from_affine, not another norm of its columns."""
    pattern = re.compile(r"(linalg\.norm|sqrt)\(.*\[:3, :3\]")
    found = [rel for rel, text in sources("ml_engine/io/nifti.py") if pattern.search(text)]
    assert found == []


def test_folders_are_staged_in_one_place():
    """A folder that lands whole is staged by ml_engine.io.atomic_folder: no other module makes its own hidden
    sibling folder and renames it into place."""
    pattern = re.compile(r"mkdtemp\(|\.rename\(target\)|os\.replace\(staging")
    found = [rel for rel, text in sources() if pattern.search(text) and rel.startswith(("annotation/", "ml_engine/"))
             and not rel.startswith("ml_engine/io/")]
    assert found == []
