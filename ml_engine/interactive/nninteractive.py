"""nnInteractive (Isensee et al. 2025) as an interactive engine, where a group installs its package and its weights.

The package (`nninteractive` on PyPI, pinned in requirements-nninteractive.txt) is an optional extra, imported only
here and only when an engine is made or a folder checked. Its weights are CC BY-NC-SA 4.0 (non-commercial use only)
and Atlas never downloads them: a group downloads a model folder where there is internet and registers it
(`manage.py register_interactive --kind nninteractive --folder DIR`).

A model folder (what `nninteractive-download-model` fetches, what the package's loader reads): plans.json,
dataset.json, the capability file inference_info.json (legacy: inference_session_class.json), optionally LICENSE
(its first line the licence identifier), and one fold_N/checkpoint_final.pth holding network_weights, trainer_name
and init_args.configuration. `inspect_folder` checks all of it, the checkpoint read with torch.load(weights_only=True)
(NumPy scalars allowed, nothing else unpickled) before the package's own loader (which unpickles freely) sees it.

How a click runs: the engine loads the network once (the package's `nnInteractiveInferenceSession` on CUDA when
there is one, else the CPU) and keeps up to `max_sessions` sessions, one per crop (Crop.key: the case and the box),
each holding its CT crop preprocessed (nnInteractive z-scores the image it is given with the statistics of its
nonzero region, so a crop is normalised by its own statistics); the network and each prediction's patches live on
the device. Each call puts Atlas's current label in as the initial segmentation (`add_initial_seg_interaction`,
which also clears earlier interactions), so the prompts refine the pseudo-label instead of starting over, then adds
the prompts one interaction each (a box, scribbles, positive then negative points), nnInteractive predicting after
each as it does in its own viewers. Arrays: the crop (x, y, z) in HU goes in as (1, x, y, z), untouched (the
package asks for no windowing or rescaling); prompts are crop voxel indices, as nnInteractive's are.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

import numpy as np
from scipy import ndimage

from ml_engine.interactive.engine import Crop, EngineError
from ml_engine.interactive.prompts import PromptError, polyline
from ml_engine.train.device import pick_device

KIND = "nninteractive"
PACKAGE = "nninteractive==2.6.0"
LICENCE = "CC BY-NC-SA 4.0 (nnInteractive weights: non-commercial use only)"
SOURCE = "https://huggingface.co/MIC-DKFZ/nnInteractive (model folders listed by nninteractive-available-models)"
CITATION = ("Isensee F., Rokuss M., Kraemer L., Dinkelacker S., Ravindran A., Stritzke F., Hamm B., Wald T., "
            "Langenberg M., Ulrich C., Deissler J., Floca R., Maier-Hein K. (2025). nnInteractive: Redefining 3D "
            "Promptable Segmentation. arXiv:2503.08373")
CAPABILITY_FILES = ("inference_info.json", "inference_session_class.json")
CHECKPOINT = "checkpoint_final.pth"
_FOLD = re.compile(r"^fold_(\d+|all)$")


class EngineUnavailable(RuntimeError):
    """The package or the model folder is missing or unusable here (the message says which, and how to fix it)."""


def require_package():
    """The package's inference session class; EngineUnavailable naming the package when it cannot be imported."""
    try:
        from nnInteractive.inference.inference_session import nnInteractiveInferenceSession
    except ImportError as exc:
        raise EngineUnavailable(
            f"the nnInteractive package is not installed on this machine ({exc}); install it with "
            f"`pip install -r requirements-nninteractive.txt` ({PACKAGE}) where the engine runs") from None
    return nnInteractiveInferenceSession


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnInteractive")
    except PackageNotFoundError:
        return "not installed"


def _json_object(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineUnavailable(f"{path}: missing; an nnInteractive model folder holds plans.json, dataset.json, "
                                f"inference_info.json and fold_N/{CHECKPOINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EngineUnavailable(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise EngineUnavailable(f"{path}: expected a JSON object")
    return raw


def _fold(folder: Path) -> str:
    folds = sorted(p.name for p in folder.iterdir() if p.is_dir() and _FOLD.match(p.name))
    if not folds:
        raise EngineUnavailable(f"{folder}: no fold_N folder (an nnInteractive model folder holds fold_0/{CHECKPOINT})")
    return "fold_all" if "fold_all" in folds else min(folds, key=lambda n: int(n[5:]) if n[5:].isdigit() else -1)


def folder_licence(folder: Path) -> str:
    """The first non-empty line of the folder's LICENSE ("" when there is none), as the package reads it."""
    path = folder / "LICENSE"
    if not path.is_file():
        return ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def inspect_folder(folder: str | Path) -> dict:
    """Check an nnInteractive model folder and the package where this runs; returns what registration records
    (folder, fold, configuration, trainer, the folder's own licence line, capability, package version).
    EngineUnavailable names the missing package, folder or file."""
    require_package()
    from ml_engine.members.common import MemberError
    from ml_engine.members.nnunet import _load_checkpoint as load_nnunet_checkpoint

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise EngineUnavailable(f"{path}: no such folder (download an nnInteractive model folder with "
                                "`nninteractive-download-model` where there is internet, and copy it here)")
    path = path.resolve()
    plans = _json_object(path / "plans.json")
    _json_object(path / "dataset.json")
    capability_file = next((path / n for n in CAPABILITY_FILES if (path / n).is_file()), None)
    if capability_file is None:
        raise EngineUnavailable(f"{path}: neither {' nor '.join(CAPABILITY_FILES)} (nnInteractive's capability file)")
    capability = _json_object(capability_file) if capability_file.name == CAPABILITY_FILES[0] else {}
    if capability and capability.get("supports_initial_label") is False:
        raise EngineUnavailable(f"{capability_file}: this checkpoint takes no initial segmentation, and Atlas "
                                "refines the current label with it")
    fold = _fold(path)
    checkpoint_path = path / fold / CHECKPOINT
    if not checkpoint_path.is_file():
        raise EngineUnavailable(f"{checkpoint_path}: missing")
    try:
        checkpoint = load_nnunet_checkpoint(checkpoint_path)
    except MemberError as exc:
        raise EngineUnavailable(str(exc).replace("nnU-Net checkpoint", "nnInteractive checkpoint")) from None
    missing = [k for k in ("network_weights", "trainer_name", "init_args") if k not in checkpoint]
    configuration = (checkpoint.get("init_args") or {}).get("configuration") if isinstance(
        checkpoint.get("init_args"), dict) else None
    if missing or not configuration:
        raise EngineUnavailable(f"{checkpoint_path}: lacks {', '.join(missing) or 'init_args.configuration'}")
    if configuration not in (plans.get("configurations") or {}):
        raise EngineUnavailable(f"{path / 'plans.json'}: no configuration {configuration!r} (the checkpoint's)")
    return {"folder": str(path), "fold": fold, "configuration": configuration,
            "trainer": str(checkpoint["trainer_name"]), "folder_licence": folder_licence(path),
            "capability": capability_file.name, "package": package_version()}


def version_of(info: dict) -> str:
    """An engine's version as shown: its folder's name, the fold, the package's version (info: inspect_folder's)."""
    return f"{Path(info['folder']).name} {info['fold']} (nnInteractive {info['package']})"


class NnInteractiveEngine:
    """nnInteractive loaded once: segment(Crop) -> (x, y, z) bool. Calls are serialised on its lock."""

    name = KIND
    licence = LICENCE

    def __init__(self, folder: str | Path, *, device: str | None = None, max_sessions: int = 4,
                 do_autozoom: bool = True) -> None:
        import torch

        self.info = inspect_folder(folder)
        self.session_class = require_package()
        self.device = pick_device(device)
        self.max_sessions = max(1, int(max_sessions))
        self.do_autozoom = do_autozoom
        self.version = version_of(self.info)
        self.lock = threading.Lock()
        self.last_seconds = 0.0
        self.sessions: OrderedDict[Hashable, object] = OrderedDict()
        self._threads = torch.get_num_threads()  # the session sets torch's thread count: keep this process's
        loader = self._new_session()
        with self._quiet():
            # what initialize_from_trained_model_folder does, keeping the artifacts to share the network between
            # sessions (as the package's own server does)
            self.artifacts = loader._load_model_artifacts_from_disk(self.info["folder"], self.info["fold"][5:])
            loader.initialize_from_loaded_artifacts(self.artifacts)
            loader.warmup()
        self.loaded_licence = loader.license  # what the package read from the folder
        self._spare = loader

    @contextlib.contextmanager
    def _quiet(self):
        """The package prints progress on every call: keep it out of the server's output."""
        with contextlib.redirect_stdout(io.StringIO()):
            yield

    def _new_session(self):
        with self._quiet():
            return self.session_class(device=self.device, use_torch_compile=False, verbose=False,
                                      torch_n_threads=self._threads, do_autozoom=self.do_autozoom)

    def _session(self, crop: Crop):
        """The session holding this crop's CT (set_image once per key; the oldest session evicted)."""
        key = crop.key
        if key is not None and key in self.sessions:
            self.sessions.move_to_end(key)
            return self.sessions[key]
        if self._spare is not None:
            session, self._spare = self._spare, None
        elif len(self.sessions) >= self.max_sessions:
            session = self.sessions.popitem(last=False)[1]
        else:
            session = self._new_session()
            session.initialize_from_loaded_artifacts(self.artifacts)
        try:
            session.set_image(np.asarray(crop.ct)[None])
            session._finish_preprocessing_and_initialize_interactions()  # an image it cannot use raises here
        except ValueError:
            session.preprocess_future = None  # the failed image is dropped; the session serves the next crop
            self._spare = session
            raise
        if key is None:  # nothing to keep for an unkeyed crop: the session serves the next new crop
            self._spare = session
        else:
            self.sessions[key] = session
        return session

    def segment(self, crop: Crop) -> np.ndarray:
        crop.checked()
        started = time.perf_counter()
        with self.lock, self._quiet():
            try:
                session = self._session(crop)
            except ValueError as exc:
                raise EngineError(f"nnInteractive cannot use this crop's CT: {exc}", field="box") from None
            target = np.zeros(crop.ct.shape, dtype=np.uint8)
            session.set_target_buffer(target)
            session.add_initial_seg_interaction(np.ascontiguousarray(crop.label, dtype=np.uint8),
                                                run_prediction=False)
            try:
                self._interact(session, crop)
            except (ValueError, AssertionError) as exc:
                raise EngineError(f"nnInteractive refused a prompt: {exc}", field="positive") from None
        self.last_seconds = time.perf_counter() - started
        return target.astype(bool)

    def _interact(self, session, crop: Crop) -> None:
        prompts, shape = crop.prompts, crop.ct.shape
        if prompts.box is not None:
            lo, hi = prompts.box
            session.add_bbox_interaction([[lo[0], hi[0] + 1], [lo[1], hi[1] + 1], [lo[2], lo[2] + 1]],
                                         include_interaction=True)
        thickness = [int(t) for t in (session.preferred_scribble_thickness or (1, 1, 1))]
        for scribble in prompts.scribbles:
            image, bbox = scribble_crop(polyline(scribble.points), shape, thickness)
            session.add_scribble_interaction(image, include_interaction=scribble.positive, interaction_bbox=bbox)
        for points, positive in ((prompts.positive, True), (prompts.negative, False)):
            for point in points:
                session.add_point_interaction(tuple(int(v) for v in point), include_interaction=positive)

    def open_keys(self) -> list[Hashable]:
        return list(self.sessions)


def scribble_crop(voxels: list, shape: tuple[int, ...], thickness: list[int]) -> tuple[np.ndarray, list[list[int]]]:
    """A scribble as nnInteractive takes it: (uint8 mask of its box, the box [[x0, x1], [y0, y1], [z0, z1]]
    half-open in crop indices). The voxels are thickened by `thickness` along each axis the scribble spans (a scribble
    drawn on one slice stays on it)."""
    points = np.asarray(voxels, dtype=np.int64)
    if points.size == 0:
        raise PromptError("a scribble without points", field="scribbles")
    flat = points.min(axis=0) == points.max(axis=0)
    size = [1 if f else max(1, t) for f, t in zip(flat, thickness, strict=True)]
    lo = np.maximum(points.min(axis=0) - np.asarray(size) // 2, 0)
    hi = np.minimum(points.max(axis=0) + np.asarray(size) // 2 + 1, np.asarray(shape))
    mask = np.zeros(tuple(int(b - a) for a, b in zip(lo, hi, strict=True)), dtype=bool)
    local = points - lo
    mask[local[:, 0], local[:, 1], local[:, 2]] = True
    mask = ndimage.binary_dilation(mask, structure=np.ones(size, dtype=bool))
    return mask.astype(np.uint8), [[int(a), int(b)] for a, b in zip(lo, hi, strict=True)]
