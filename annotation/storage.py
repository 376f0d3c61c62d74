"""Media storage helpers: files land whole under their exact names (temp + rename), or not at all."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp, storage.open(name, "rb") as src:
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
