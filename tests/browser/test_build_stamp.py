"""dist/ must be built from the current src/: the build writes a hash of its inputs, this test recomputes it.

Content-based (git does not keep mtimes): sha256 over the inputs in sorted relative-path order, each as path, NUL,
bytes, NUL, exactly as frontend_static/scripts/stamp.mjs computes it. Runs without Node and without a browser.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FRONTEND = Path(__file__).resolve().parents[2] / "frontend_static"
INPUTS = ["src", "index.html", "openapi.yml", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts",
          "scripts/stamp.mjs"]


def source_hash() -> tuple[str, int]:
    files = []
    for name in INPUTS:
        path = FRONTEND / name
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    names = sorted(p.relative_to(FRONTEND).as_posix() for p in files)
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update((FRONTEND / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest(), len(names)


def test_dist_is_built_from_the_current_sources():
    stamp_file = FRONTEND / "dist" / "build-stamp.json"
    assert stamp_file.is_file(), "frontend_static/dist is not built: run `make frontend`"
    stamp = json.loads(stamp_file.read_text())
    digest, count = source_hash()
    assert (stamp["sha256"], stamp["files"]) == (digest, count), (
        "frontend_static/src (or its package / build files) changed since dist/ was built: run `make frontend` "
        "and commit dist/")


def test_dist_has_the_page_and_its_assets():
    index = (FRONTEND / "dist" / "index.html").read_text()
    assets = [p.name for p in (FRONTEND / "dist" / "assets").iterdir()]
    scripts = [a for a in assets if a.startswith("index-") and a.endswith(".js")]
    assert scripts and all(f"/assets/{s}" in index for s in scripts)
    assert '"@niivue/niivue": "0.69.0"' in (FRONTEND / "package.json").read_text()
