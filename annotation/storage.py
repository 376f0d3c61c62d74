"""Media storage helpers: files land whole under their exact names (temp + rename), or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage

from ml_engine.io import Volume, atomic_path, load_nifti


def store_file(name: str, local_path: Path) -> str:
    """Put a local file into media storage under exactly `name`, replacing what was there.

    Local storage writes a temporary file beside the target and renames it; object stores (S3) make an
    upload visible only once it is complete. Returns the storage name.
    """
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        with atomic_path(storage.path(name)) as tmp:
            shutil.copyfile(local_path, tmp)
        return name
    if storage.exists(name):
        storage.delete(name)
    with open(local_path, "rb") as handle:
        saved = storage.save(name, File(handle, name=Path(name).name))
    if saved != name:  # another writer raced us to the name: never keep a second copy
        storage.delete(saved)
        raise FileExistsError(f"storage name {name} was taken while writing")
    return saved


def delete_files(names: list[str]) -> None:
    """Remove files from media storage, ignoring ones already gone; empty local folders are pruned."""
    storage = default_storage
    for name in names:
        if storage.exists(name):
            storage.delete(name)
    if isinstance(storage, FileSystemStorage):
        root = Path(storage.location).resolve()
        for name in names:
            parent = Path(storage.path(name)).parent
            while parent != root and parent.is_dir() and root in parent.parents and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


@contextlib.contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A local path holding the stored file `name`: the file itself on local storage, else a temporary copy."""
    storage = default_storage
    if isinstance(storage, FileSystemStorage):
        yield Path(storage.path(name))
        return
    suffix = ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix, dir=_own_scratch()) as tmp, storage.open(name, "rb") as src:
        shutil.copyfileobj(src, tmp, 1 << 22)
        tmp.flush()
        yield Path(tmp.name)


def read_volume(name: str) -> Volume:
    """A stored NIfTI file, read (through a local copy when the storage is remote)."""
    with local_copy(name) as path:
        return load_nifti(path)


def read_voxels(name: str) -> np.ndarray:
    """A stored NIfTI file's voxels (x, y, z)."""
    return np.asarray(read_volume(name).data)


# --------------------------------------------------------------------------------------------------------------
# Scratch space: temporary files live under ATLAS_SCRATCH_DIR (var/tmp), never in the system /tmp, one folder per
# process (named by its pid), so that a process starting can remove what dead ones left behind.


def _own_scratch() -> Path:
    """This process's scratch folder (0700), created on first use."""
    root = Path(settings.ATLAS_SCRATCH_DIR)
    folder = root / f"pid{os.getpid()}"
    if not folder.is_dir():
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder.mkdir(exist_ok=True, mode=0o700)
    return folder


@contextlib.contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A temporary folder under this process's scratch folder, removed on exit (crash: by clean_scratch)."""
    with tempfile.TemporaryDirectory(prefix=f"{kind}-", dir=_own_scratch()) as tmp:
        yield Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_scratch() -> list[Path]:
    """Remove the scratch folders of processes that are gone (a crash mid-upload leaves its files there).

    The folders of live processes (this one, another worker, the web server) are kept. Returns what was removed.
    """
    root = Path(settings.ATLAS_SCRATCH_DIR)
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        pid = entry.name[3:] if entry.name.startswith("pid") else ""
        if pid.isdigit() and _alive(int(pid)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
