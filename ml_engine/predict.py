"""Ensemble inference: a Predictor loaded once and used for many cases.

Each member network runs MONAI sliding-window inference with Gaussian blending on its own preprocessed grid (RAS,
body crop, its spacing and window); on CUDA under bfloat16 autocast where the GPU supports it (float16 otherwise)
with cuDNN autotuning; on the CPU in PyTorch, or (cpu_runtime="openvino") converted once by OpenVINO
(`OpenVinoMember`: its windows 2.2 x faster than PyTorch's on 2 shared cores, probabilities within 1e-3, the same
Dice, for a one-off conversion of seconds per Predictor: docs/benchmarks.md), in float32 (or bfloat16 when asked).
The windows per forward pass (`window_batch`) follow the device and the window's size. Its sigmoid probabilities are
quantised to uint8 (p x 255) at once, on the small network grid, so that memory holds members x organs x the
network grid in uint8, never members x organs x the full CT in float32.

`EnsembleResult.iter_members()` then streams organ by organ back to the CT grid: for each organ the members' soft
predictions (uint8, p x 255, (x, y, z) on the CT grid; resampled on the GPU when the networks ran there);
`iter_organs()` combines them as it streams, by ml_engine.ensemble.EnsembleAverage (the one rule: per-organ mean and
mask, and the multi-label pseudo-label).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ml_engine.ensemble import EnsembleAverage, OrganOutput
from ml_engine.preprocess import GridSpec, prepare_image, restore_uint8
from ml_engine.train.checkpoint import Checkpoint
from ml_engine.train.device import autocast_dtype, pick_device

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)

CPU_WINDOW_BATCH = 2
# Sliding-window overlap: 0.25 takes 2.4 x fewer windows than 0.5 on a 512 x 512 x 300 CT's 3 mm grid, with the
# ensemble's mean Dice on held-out phantoms 0.9195 against 0.9185 (docs/benchmarks.md, CPU inference options).
DEFAULT_OVERLAP = 0.25
GPU_BYTES_PER_WINDOW_VOXEL = 2048  # activations of the `base` networks under mixed precision, with headroom
MAX_GPU_WINDOW_BATCH = 8
# How the members run on the CPU: "torch" (PyTorch, the default) or "openvino" (converted once per Predictor: worth
# it for a worker that keeps its Predictor over many cases, not for a one-case run; ATLAS_CPU_RUNTIME for workers).
CPU_RUNTIMES = ("torch", "openvino")
DEFAULT_CPU_RUNTIME = "torch"


def window_batch(device: torch.device | str, window: Sequence[int], *, memory_bytes: int | None = None) -> int:
    """Sliding windows per forward pass for this device and window size (x, y, z voxels).

    CPU: CPU_WINDOW_BATCH (a larger batch does not run faster on a few cores: docs/benchmarks.md). CUDA: as many
    windows as a quarter of the GPU's memory holds at GPU_BYTES_PER_WINDOW_VOXEL, between 1 and
    MAX_GPU_WINDOW_BATCH. memory_bytes: the GPU's memory (default: asked from the device).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return CPU_WINDOW_BATCH
    if memory_bytes is None:
        memory_bytes = torch.cuda.get_device_properties(device).total_memory
    per_window = int(np.prod([int(w) for w in window])) * GPU_BYTES_PER_WINDOW_VOXEL
    return int(max(1, min(MAX_GPU_WINDOW_BATCH, memory_bytes // 4 // per_window)))


def decline_openvino_telemetry() -> None:
    """Record "no" to OpenVINO's usage telemetry (its opt-out: ~/intel/openvino_telemetry holding 0) unless an
    answer is recorded already. ov.convert_model otherwise takes a missing answer for consent and sends usage
    events to Google Analytics; a platform holding patients' CTs sends nothing it was not told to."""
    try:
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError:  # OpenVINO without its telemetry package: nothing is sent
        return
    checker = OptInChecker()
    if checker.consent_file_base_dir() is None or os.path.exists(checker.consent_file()):
        return
    if not checker.update_result(ConsentCheckResult.DECLINED):
        log.warning("could not record the opt-out of OpenVINO's telemetry in %s", checker.consent_file())


class OpenVinoMember:
    """A member network converted by OpenVINO straight from PyTorch (ov.convert_model: no ONNX file) and compiled
    for the CPU; called like the network on sliding windows: (batch, 1, *window) float32 -> logits (torch).

    The window is fixed (the checkpoint's patch; Swin UNETR's window attention is traced for it), the batch free.
    threads: OpenVINO's inference threads (torch's count by default); bf16: inference precision bfloat16 (float32
    otherwise: OpenVINO's own default is bfloat16 on CPUs that have it, which moves probabilities by up to 0.08).
    """

    def __init__(self, model: torch.nn.Module, window: Sequence[int], *, threads: int | None = None,
                 bf16: bool = False):
        import openvino as ov

        decline_openvino_telemetry()
        self.window = tuple(int(w) for w in window)
        with torch.no_grad(), warnings.catch_warnings():
            # tracing fixes Swin UNETR's shape arithmetic for this window: that is intended, not worth a warning
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            converted = ov.convert_model(model.eval(), example_input=torch.zeros(2, 1, *self.window),
                                         input=[(-1, 1, *self.window)])
        self.compiled = ov.Core().compile_model(converted, "CPU", {
            "INFERENCE_NUM_THREADS": int(threads or torch.get_num_threads()),
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32", "PERFORMANCE_HINT": "LATENCY"})
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()  # one infer request: one call at a time

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or tuple(x.shape[1:]) != (1, *self.window):
            raise ValueError(f"expected windows (batch, 1, {', '.join(map(str, self.window))}), got {tuple(x.shape)}")
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        with self._lock:
            out = self._request.infer({0: array})[self.compiled.output(0)]  # a copy (share_outputs=False)
        return torch.from_numpy(out)


def cpu_member(model: torch.nn.Module, window: Sequence[int], runtime: str, *, bf16: bool = False,
               name: str = "member") -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """(what runs the member's windows on the CPU, the runtime it got). runtime "openvino": an OpenVinoMember; where
    OpenVINO is not installed or cannot convert the network, PyTorch, with a warning naming the member and why."""
    if runtime == "openvino":
        try:
            return OpenVinoMember(model, window, bf16=bf16), "openvino"
        except Exception as exc:  # noqa: BLE001 - any failure to convert leaves the member to PyTorch, logged
            log.warning("%s: OpenVINO could not run it (%s: %s); it runs in PyTorch", name, type(exc).__name__,
                        str(exc).splitlines()[0][:200] if str(exc) else "")
    return model, "torch"


@dataclass
class EnsembleResult:
    """Per-member probabilities on their network grids, and how to put them back on the CT grid.

    members: names (architecture, made unique); probabilities[i]: (C, x', y', z') uint8 on specs[i]'s grid;
    organs: the C organ names; original_shape (x, y, z). pseudo_label: (x, y, z) uint8, filled by iter_organs.
    """

    organs: tuple[str, ...]
    members: list[str]
    specs: list[GridSpec]
    probabilities: list[np.ndarray]
    original_shape: tuple[int, int, int]
    seconds: dict[str, float] = field(default_factory=dict)
    pseudo_label: np.ndarray | None = None
    device: torch.device | None = None  # where to resample back to the CT grid (None: numpy on the CPU)

    def iter_members(self, extra: Mapping[str, Mapping[str, np.ndarray]] | None = None
                     ) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
        """Organ by organ on the CT grid: (organ, {member: (x, y, z) uint8 p x 255}), not yet combined.

        extra: {member: {organ: (x, y, z) uint8 p x 255}} of further members (external predictions) for the organs
        they cover.
        """
        for c, organ in enumerate(self.organs):
            soft = {name: restore_uint8(prob[c], spec, device=self.device)
                    for name, spec, prob in zip(self.members, self.specs, self.probabilities, strict=True)}
            for name, maps in (extra or {}).items():
                if organ in maps:
                    soft[name] = maps[organ]
            yield organ, soft

    def iter_organs(self, extra: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                    values: Mapping[str, int] | None = None) -> Iterator[OrganOutput]:
        """iter_members combined by EnsembleAverage; sets self.pseudo_label once exhausted.

        values: {organ: voxel value} of the pseudo-label; default 1, 2, ... in the checkpoints' organ order (the
        shipped checkpoints list the abdomenatlas organs in value order, so that is the abdomenatlas label set).
        """
        average = EnsembleAverage(self.original_shape, values or {o: c + 1 for c, o in enumerate(self.organs)})
        for organ, soft in self.iter_members(extra):
            yield average.add(organ, soft)
        self.pseudo_label = average.label


class Predictor:
    """Load the ensemble's checkpoints once; predict many cases.

    checkpoints: Checkpoints of one organ list (ValueError naming the odd one otherwise). device: None picks CUDA when
    available, else CPU. overlap: sliding-window overlap; sw_batch_size: windows per forward (None: window_batch for
    the device and each member's window); cpu_bf16: bfloat16 on the CPU (OpenVINO's inference precision, or
    PyTorch's autocast); cpu_runtime: one of CPU_RUNTIMES, how the members run on the CPU. `runtimes` says per
    member what it got ("openvino", "torch", or "cuda").
    """

    def __init__(self, checkpoints: Sequence[Checkpoint], *, device: str | None = None,
                 overlap: float = DEFAULT_OVERLAP,
                 sw_batch_size: int | None = None, cpu_bf16: bool = False,
                 cpu_runtime: str = DEFAULT_CPU_RUNTIME):
        if not checkpoints:
            raise ValueError("no checkpoints")
        if cpu_runtime not in CPU_RUNTIMES:
            raise ValueError(f"cpu_runtime: unknown {cpu_runtime!r} (valid: {', '.join(CPU_RUNTIMES)})")
        organs = checkpoints[0].organs
        for ckpt in checkpoints[1:]:
            if ckpt.organs != organs:
                raise ValueError(f"{ckpt.name or ckpt.arch}: organs {', '.join(ckpt.organs)} differ from "
                                 f"{checkpoints[0].name or checkpoints[0].arch}'s {', '.join(organs)}")
        self.organs = tuple(organs)
        self.device = pick_device(device)
        self.overlap = overlap
        self.sw_batch_size = sw_batch_size
        self.cpu_bf16 = cpu_bf16
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # each member's window shape is fixed: autotune it once
        self.checkpoints = list(checkpoints)
        names: list[str] = []
        for ckpt in checkpoints:
            name = ckpt.arch
            k = 2
            while name in names:
                name = f"{ckpt.arch}_{k}"
                k += 1
            names.append(name)
        self.members = names
        self.models: list[Callable[[torch.Tensor], torch.Tensor]] = []
        self.runtimes: list[str] = []
        for ckpt, name in zip(checkpoints, names, strict=True):
            model = ckpt.build(self.device)
            if self.device.type == "cpu":
                model, runtime = cpu_member(model, ckpt.patch, cpu_runtime, bf16=cpu_bf16, name=name)
            else:
                runtime = self.device.type
            self.models.append(model)
            self.runtimes.append(runtime)

    @torch.no_grad()
    def predict(self, ct: np.ndarray, affine: np.ndarray, *, progress: ProgressFn | None = None) -> EnsembleResult:
        """CT (x, y, z) HU with affine (4, 4) -> EnsembleResult (per-member uint8 probabilities, streamable)."""
        from monai.inferers import sliding_window_inference

        if ct.ndim != 3:
            raise ValueError(f"expected a 3D CT (x, y, z), got shape {ct.shape}")
        prepared: dict[tuple, tuple[np.ndarray, GridSpec]] = {}
        specs, probabilities, seconds = [], [], {}
        total = len(self.models)
        for i, (ckpt, model) in enumerate(zip(self.checkpoints, self.models, strict=True)):
            if progress is not None:
                progress(self.members[i], i, total)
            key = (ckpt.spacing, ckpt.hu_window)
            if key not in prepared:
                prepared[key] = prepare_image(ct, affine, ckpt.spacing, hu_window=ckpt.hu_window)
            image, spec = prepared[key]
            started = time.perf_counter()
            x = torch.from_numpy(image)[None, None].to(self.device)
            torch_bf16 = self.cpu_bf16 and self.runtimes[i] == "torch"  # OpenVINO's precision is set in it
            dtype = autocast_dtype(self.device)[0] or (torch.bfloat16 if torch_bf16 else None)
            batch = self.sw_batch_size or window_batch(self.device, ckpt.patch)
            with torch.autocast(device_type=self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = sliding_window_inference(x, roi_size=ckpt.patch, sw_batch_size=batch,
                                                  predictor=model, overlap=self.overlap, mode="gaussian")
            prob = torch.sigmoid(logits[0].float()).mul_(255.0).round_().to(torch.uint8).cpu().numpy()
            del logits, x
            specs.append(spec)
            probabilities.append(prob)
            seconds[self.members[i]] = time.perf_counter() - started
        if progress is not None:
            progress("done", total, total)
        return EnsembleResult(organs=self.organs, members=list(self.members), specs=specs,
                              probabilities=probabilities, original_shape=tuple(int(s) for s in ct.shape),
                              seconds=seconds, device=self.device if self.device.type == "cuda" else None)

    def predict_masks(self, ct: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Convenience for small volumes: (pseudo-label (x, y, z) uint8, {organ: mask (x, y, z) bool})."""
        result = self.predict(ct, affine)
        masks = {out.organ: out.mask for out in result.iter_organs()}
        return result.pseudo_label, masks  # type: ignore[return-value]
