"""Preprocessed training cases cached on disk, memory-mapped, keyed by what made them; least recently used go."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ml_engine.io import atomic_folder
from ml_engine.train.cases import TrainCase

CACHE_MAX_BYTES = 20 * 2**30


def cached_train_case(cache_dir: str | os.PathLike, key: str, build: Callable[[], TrainCase], *,
                      max_bytes: int = CACHE_MAX_BYTES) -> TrainCase:
    """The TrainCase stored under cache_dir for key, its arrays memory-mapped (read from disk as patches need them);
    on a miss, build() it and store it.

    key: everything that identifies the case's preprocessed arrays (the CT's and the label's identity, the organs,
    the spacing, the window): each architecture at the same spacing reuses them, and a worker's memory holds only
    the patches it reads. Entries land whole (a folder renamed into place); the least recently used go once the
    cache holds more than max_bytes. A damaged entry is rebuilt.
    """
    root = Path(cache_dir)
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:32]
    try:
        info = json.loads((folder / "case.json").read_text(encoding="utf-8"))
        case = TrainCase(name=str(info["name"]), image=np.load(folder / "image.npy", mmap_mode="r"),
                         labels=np.load(folder / "labels.npy", mmap_mode="r"),
                         labelled=np.asarray(info["labelled"], dtype=bool))
        os.utime(folder)  # recently used
        return case
    except (OSError, ValueError, KeyError, TypeError):
        pass
    case = build()
    try:
        with atomic_folder(folder, replace=True) as staging:  # replace: a damaged entry
            np.save(staging / "image.npy", np.ascontiguousarray(case.image))
            np.save(staging / "labels.npy", np.ascontiguousarray(case.labels))
            (staging / "case.json").write_text(json.dumps({"name": case.name, "key": key,
                                                           "labelled": case.labelled.tolist()}), encoding="utf-8")
    except OSError:
        pass  # another process stored it first, or the disk is full: the case is built all the same
    _prune_cache(root, max_bytes)
    return case


def _prune_cache(root: Path, max_bytes: int) -> None:
    entries = []
    for folder in root.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
            entries.append((folder.stat().st_mtime, size, folder))
    total = sum(size for _, size, _ in entries)
    for _, size, folder in sorted(entries):
        if total <= max_bytes:
            break
        shutil.rmtree(folder, ignore_errors=True)
        total -= size
