"""Which interactive engines there are: the current click model (the latest round's, else the shipped one) and
registered ones; their versions, licences and validation figures, for the page, round_status and the dashboard."""

from __future__ import annotations

from annotation.models import InteractiveModel, Round
from ml_engine.interactive.engine import ATLAS_LICENCE
from ml_engine.interactive.nninteractive import CITATION as NNINTERACTIVE_CITATION
from ml_engine.interactive.nninteractive import LICENCE as NNINTERACTIVE_LICENCE
from ml_engine.interactive.nninteractive import SOURCE as NNINTERACTIVE_SOURCE

ATLAS_SOURCE = "trained by Atlas on this group's labelled and revised cases (shipped: on the phantoms)"

CLICK_FIGURES = ("dice_0", "dice_1", "dice_3", "dice_5")


def current_click_model() -> InteractiveModel | None:
    """The click model of the latest round that made one (None: the shipped model serves)."""
    return (InteractiveModel.objects.filter(kind=InteractiveModel.Kind.ATLAS_CLICK, round__isnull=False)
            .exclude(round__status__in=[Round.Status.FAILED, Round.Status.CANCELLED])
            .order_by("-round__number").first())


def validation(model: InteractiveModel | None) -> dict:
    """Dice before any click and after 1, 3 and 5 simulated clicks, and on which cases."""
    if model is None:
        from annotation.ml_adapter.interactive import shipped_metadata

        meta = shipped_metadata()
    else:
        meta = model.metadata
    metrics = meta.get("metrics") or {}
    return {**{k: (round(metrics[k], 4) if k in metrics else None) for k in CLICK_FIGURES},
            "cases": int(metrics.get("n_samples", 0)), "validated_on": meta.get("validated_on", "")}


def click_model_row(model: InteractiveModel | None) -> dict:
    """What round_status and the dashboard show of a click model."""
    return {"name": model.name if model is not None else "shipped click model", "kind": "atlas-click",
            "version": model.name if model is not None else "click_unet_tiny",
            "parent": (model.parent.name if model is not None and model.parent is not None
                       else (model.metadata.get("parent") if model is not None else None)),
            "fine_tuned": bool(model.metadata.get("fine_tuned")) if model is not None else False,
            "licence": ATLAS_LICENCE, "source": ATLAS_SOURCE, "citation": "", "validation": validation(model)}


def registered_engines() -> list[InteractiveModel]:
    """The registered interactive engines (nnInteractive folders), oldest first."""
    return list(InteractiveModel.objects.filter(kind=InteractiveModel.Kind.NNINTERACTIVE, registered=True)
                .order_by("created", "pk"))


def registered_row(model: InteractiveModel) -> dict:
    """What the page, round_status and the dashboard show of a registered engine: its weights' licence, source and
    citation; Atlas never validates or fine-tunes it."""
    meta = model.metadata
    return {"name": model.name, "kind": model.kind,
            "version": meta.get("version") or f"{meta.get('folder', '')} {meta.get('fold', '')}".strip(),
            "parent": None, "fine_tuned": False, "licence": meta.get("licence") or NNINTERACTIVE_LICENCE,
            "source": meta.get("source") or NNINTERACTIVE_SOURCE, "citation": meta.get("citation") or
            NNINTERACTIVE_CITATION,
            "validation": {**{k: None for k in CLICK_FIGURES}, "cases": 0,
                           "validated_on": "not validated by Atlas (registered weights, never fine-tuned)"}}


def registered_engine(engine: str) -> InteractiveModel | None:
    """The registered engine a request names: its kind (the latest registered of it) or its name."""
    engines = registered_engines()
    by_name = [m for m in engines if m.name == engine]
    if by_name:
        return by_name[0]
    of_kind = [m for m in engines if m.kind == engine]
    return of_kind[-1] if of_kind else None


def round_click_model(round: Round) -> dict | None:
    model = InteractiveModel.objects.filter(round=round).first()
    return click_model_row(model) if model is not None else None


def engine_rows() -> list[dict]:
    """The engines the workspace offers, the default first (Atlas's click model), then the registered ones."""
    return [click_model_row(current_click_model()), *(registered_row(m) for m in registered_engines())]
