"""The click tool's server side: training the round's click model (its CLICK job), registering nnInteractive
folders (manage.py register_interactive), and one click's computation for the workspace (and for 3D Slicer through
the MONAI Label protocol).

A click request carries the crop (a box of the case's grid), the active organ's current label in that crop as the
page holds it (packed bits), and the prompts in voxel indices of the case's grid; the answer is the organ's new
mask in the crop (packed bits). Nothing is stored: the page applies the mask as one undoable edit and uploads the
revision as it does every other edit.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from annotation.errors import Busy, Conflict, Invalid, NotFound
from annotation.ml_adapter import interactive as adapter
from annotation.models import Case, InteractiveModel, Job, Round
from annotation.selectors.interactive import current_click_model, engine_rows, registered_engine
from annotation.selectors.rounds import holdout_cases, round_cases
from annotation.services.training import labelled

# the API's limits (CROP_MM, MAX_POINTS) are re-exported from here: views never import the engine
from ml_engine.interactive import MAX_POINTS as MAX_POINTS
from ml_engine.interactive import Crop, EngineBusy, EngineError, PromptError, Prompts, Scribble
from ml_engine.interactive.engine import CROP_MM as CROP_MM
from ml_engine.interactive.engine import MAX_CROP_VOXELS
from ml_engine.interactive.nninteractive import CITATION, KIND, LICENCE, SOURCE, EngineUnavailable, version_of

MAX_LABEL_BYTES = MAX_CROP_VOXELS // 8 + 1


def click_train_job(job: Job, progress: Callable[[float, str], None]) -> InteractiveModel:
    """Fine-tune the click model for job.round from the latest earlier round's (round 0: the shipped one) on the
    round's labelled cases but the held-out ones; validate; record it. Without a labelled case the parent is kept
    (round 0: the shipped model, recorded with its own validation figures)."""
    round: Round = job.round
    parent = (InteractiveModel.objects.filter(kind=InteractiveModel.Kind.ATLAS_CLICK, round__number__lt=round.number)
              .order_by("-round__number").first())
    holdout = holdout_cases(round)
    cases = labelled(round_cases(round).exclude(pk__in=[c.pk for c in holdout]))
    name = f"round{round.number}-click"
    if not cases:
        meta = ({**parent.metadata, "fine_tuned": False, "note": f"no labelled case: {parent.name} kept"}
                if parent is not None else {**adapter.shipped_metadata(), "note": "no labelled case: the shipped "
                                                                                  "click model as it is"})
        storage = parent.checkpoint.name if parent is not None else ""
        progress(1.0, meta["note"])
    else:
        storage = f"models/{name}.pt"
        meta = adapter.train_click(organs=round.label_set.organ_names(), values=round.label_set.organ_values(),
                                   cases=cases, holdout=labelled(holdout), parent=parent,
                                   steps=round.settings.get("click_steps") or round.settings.get("steps"),
                                   seed=int(round.settings.get("seed", 0)), storage_name=storage, progress=progress)
        meta["fine_tuned"] = True
    with transaction.atomic():
        model, _ = InteractiveModel.objects.update_or_create(
            name=name, defaults={"kind": InteractiveModel.Kind.ATLAS_CLICK, "round": round, "checkpoint": storage,
                                 "parent": parent, "metadata": {**meta, "round": round.number}})
    return model


# --- registered engines -------------------------------------------------------------------------------------------

INTERACTIVE_KINDS = (KIND,)


def register_interactive(*, kind: str, folder: str | None, name: str | None = None) -> tuple[InteractiveModel, bool]:
    """Record a downloaded nnInteractive model folder as an engine the workspace offers, after checking the folder
    and the package where this runs (Invalid naming --folder otherwise); (the model, whether it is new)."""
    if kind not in INTERACTIVE_KINDS:
        raise Invalid(f"{kind!r}: the interactive kinds that can be registered are {', '.join(INTERACTIVE_KINDS)}",
                      field="kind")
    if not folder:
        raise Invalid("give the model folder you downloaded (plans.json, dataset.json, fold_N/...)", field="folder")
    name = name or kind
    taken = InteractiveModel.objects.filter(name=name).exclude(kind=InteractiveModel.Kind.NNINTERACTIVE).first()
    if taken is not None:
        raise Invalid(f"{name!r} is already {taken.get_kind_display()}: choose another --name", field="name")
    try:
        info = adapter.inspect_nninteractive(folder)
    except EngineUnavailable as exc:
        raise Invalid(str(exc), field="folder") from None
    meta = {**info, "version": version_of(info), "licence": LICENCE, "source": SOURCE, "citation": CITATION}
    with transaction.atomic():
        model, created = InteractiveModel.objects.update_or_create(
            name=name, defaults={"kind": InteractiveModel.Kind.NNINTERACTIVE, "round": None, "checkpoint": "",
                                 "registered": True, "metadata": meta})
    return model, created


def unregister_interactive(*, name: str) -> InteractiveModel:
    """The workspace stops offering a registered engine (its row stays, unregistered)."""
    model = InteractiveModel.objects.filter(name=name, kind=InteractiveModel.Kind.NNINTERACTIVE).first()
    if model is None:
        raise NotFound(f"no registered interactive engine {name!r}", field="name")
    model.registered = False
    model.save(update_fields=["registered"])
    return model


def _engine(name: str):
    """The engine a click request names ("" or atlas-click: the current click model; a registered engine's kind or
    name), loaded once per process."""
    if name in ("", InteractiveModel.Kind.ATLAS_CLICK):
        return adapter.click_engine(current_click_model())
    model = registered_engine(name)
    if model is None:
        raise NotFound(f"no interactive engine {name!r}; the engines are "
                       f"{', '.join(sorted({row['kind'] for row in engine_rows()}))}", field="engine")
    try:
        return adapter.nninteractive_engine(model)
    except EngineUnavailable as exc:
        raise Conflict(f"{model.name} is registered but cannot run on this server: {exc}", field="engine") from None


# --- one click ----------------------------------------------------------------------------------------------------

@dataclass
class ClickRequest:
    organ: str
    box: tuple[list[int], list[int]]  # file voxel indices, inclusive
    label: str  # base64 of np.packbits(mask, bitorder="little") of the box, x fastest
    positive: Sequence[Sequence[int]] = ()
    negative: Sequence[Sequence[int]] = ()
    scribbles: Sequence[dict] = ()  # {"points": [[x, y, z], ...], "positive": bool}
    box2d: Sequence[Sequence[int]] | None = None  # [[x0, y0, z], [x1, y1, z]] file indices, one slice
    engine: str = ""


def _slices(box: tuple[list[int], list[int]], shape: Sequence[int]) -> tuple[slice, slice, slice]:
    lo, hi = box
    if any(not 0 <= a <= b < n for a, b, n in zip(lo, hi, shape, strict=True)):
        raise Invalid(f"the box {lo}..{hi} does not lie inside the volume of {' x '.join(map(str, shape))}",
                      field="box")
    size = int(np.prod([b - a + 1 for a, b in zip(lo, hi, strict=True)]))
    if size > MAX_CROP_VOXELS:
        raise Invalid(f"the box holds {size} voxels: at most {MAX_CROP_VOXELS}", field="box")
    return tuple(slice(a, b + 1) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]


def unpack_mask(text: str, shape: Sequence[int], *, field: str = "label") -> np.ndarray:
    """A packed-bit mask (base64, little bit order, x fastest) of `shape`; Invalid naming the field otherwise."""
    count = int(np.prod(shape))
    if len(text) > 4 * (MAX_LABEL_BYTES // 3 + 1):
        raise Invalid("too long for any allowed box", field=field)
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise Invalid("not base64", field=field) from None
    if len(raw) != (count + 7) // 8:
        raise Invalid(f"{len(raw)} bytes; the box of {' x '.join(map(str, shape))} needs {(count + 7) // 8}",
                      field=field)
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=count, bitorder="little")
    return bits.reshape(tuple(shape), order="F").astype(bool)


def pack_mask(mask: np.ndarray) -> str:
    return base64.b64encode(np.packbits(mask.ravel(order="F"), bitorder="little").tobytes()).decode()


def _prompts(request: ClickRequest, offset: Sequence[int]) -> Prompts:
    def shift(points: Sequence[Sequence[int]], field: str) -> tuple:
        try:
            return tuple(tuple(int(p[k]) - int(offset[k]) for k in range(3)) for p in points)
        except (TypeError, ValueError, IndexError, KeyError):
            raise Invalid("give points as [x, y, z] whole numbers", field=field) from None

    scribbles = []
    for item in request.scribbles:
        if not isinstance(item, dict):
            raise Invalid("a scribble is {points: [[x, y, z], ...], positive: true|false}", field="scribbles")
        scribbles.append(Scribble(points=shift(item.get("points") or [], "scribbles"),
                                  positive=bool(item.get("positive", True))))
    box2d = None
    if request.box2d is not None:
        lo, hi = shift(request.box2d, "box2d") if len(request.box2d) == 2 else ((), ())
        if not lo:
            raise Invalid("a box is [[x0, y0, z], [x1, y1, z]]", field="box2d")
        box2d = (lo, hi)
    return Prompts(positive=shift(request.positive, "positive"), negative=shift(request.negative, "negative"),
                   scribbles=tuple(scribbles), box=box2d)


def click(case: Case, request: ClickRequest) -> dict:
    """Run the chosen engine (default: the current round's click model) on one request; the new mask in the box,
    the engine's name and version, and the seconds spent (waiting for a slot, in the engine, in all)."""
    started = time.perf_counter()
    if request.organ not in case.dataset.label_set.organ_names():
        raise Invalid(f"{request.organ!r} is not an organ of the label set {case.dataset.label_set.name}",
                      field="organ")
    slices = _slices(request.box, case.shape)
    label = unpack_mask(request.label, [s.stop - s.start for s in slices])
    prompts = _prompts(request, [s.start for s in slices])
    engine = _engine(request.engine)
    try:
        with adapter.slots.take() as waited:
            return _run(case, request, engine, slices, label, prompts, waited, started)
    except EngineBusy as exc:
        raise Busy(f"the interactive engine is busy: {exc.busy} request(s) running, waited {exc.waited:.1f} s; "
                   "try again", waited=round(exc.waited, 2), running=exc.busy) from None


def _run(case: Case, request: ClickRequest, engine, slices: tuple[slice, slice, slice], label: np.ndarray,
         prompts: Prompts, waited: float, started: float) -> dict:
    ct, affine = adapter.case_ct(case)
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in slices]
    try:
        mask = engine.segment(Crop(ct=ct[slices], affine=np.asarray(affine) @ shift, label=label, prompts=prompts,
                                   key=(case.pk, case.checksum, tuple(s.start for s in slices),
                                        tuple(s.stop for s in slices))))
    except (PromptError, EngineError) as exc:  # a prompt's box is this API's box2d (its box is the crop)
        raise Invalid(str(exc), field="box2d" if isinstance(exc, PromptError) and exc.field == "box"
                      else exc.field) from None
    return {"organ": request.organ, "box": [list(request.box[0]), list(request.box[1])], "shape": list(label.shape),
            "mask": pack_mask(mask), "engine": {"name": engine.name, "version": engine.version,
                                                "licence": engine.licence},
            "changed": int((mask != label).sum()),
            "seconds": {"wait": round(waited, 4), "engine": round(engine.last_seconds, 4),
                        "total": round(time.perf_counter() - started, 4)}}
