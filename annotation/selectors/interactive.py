"""Which interactive engines there are: the current click model (the latest round's, else the shipped one) and
registered ones; their versions, licences and validation figures, for the page, round_status and the dashboard."""

from __future__ import annotations

from annotation.models import InteractiveModel, Round
from ml_engine.interactive.engine import ATLAS_LICENCE

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
            "licence": ATLAS_LICENCE, "validation": validation(model)}


def round_click_model(round: Round) -> dict | None:
    model = InteractiveModel.objects.filter(round=round).first()
    return click_model_row(model) if model is not None else None


def engine_rows() -> list[dict]:
    """The engines the workspace offers, the default first."""
    return [click_model_row(current_click_model())]
