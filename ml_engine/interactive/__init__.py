"""Interactive segmentation: one engine interface for clicks, scribbles and boxes, Atlas's own click model (trained
with the ensemble every round), and the sessions that keep a case's CT in memory between clicks.

An engine takes the CT of a crop around the prompts (HU, on the case's grid, with the crop's affine), the active
organ's current label in that crop, and the prompts (prompts.Prompts, voxel indices of the crop); it returns the
organ's new mask in that crop. Engines: `ClickModelEngine` (Atlas's click model, engine.py) and, where a group
installs it, nnInteractive (nninteractive.py).

Modules: prompts (Prompts, click maps), model (the network and its checkpoint), simulate (simulated clicks,
degraded labels, the Dice-after-k-clicks figures), train (DeepEdit-style training), engine (the interface and the
click model's engine), sessions (bounded LRU of open cases).
"""

from ml_engine.interactive.engine import ClickModelEngine, Crop, EngineError, InteractiveEngine, ras_index
from ml_engine.interactive.model import (
    CLICK_FORMAT,
    SHIPPED,
    SPACING,
    ClickCheckpoint,
    build_click_network,
    load_click_checkpoint,
    save_click_checkpoint,
    version_of,
)
from ml_engine.interactive.prompts import MAX_POINTS, PromptError, Prompts, Scribble
from ml_engine.interactive.sessions import EngineBusy, SessionPool, Slots
from ml_engine.interactive.simulate import click_session, degrade, evaluate, next_click
from ml_engine.interactive.train import (
    FINE_TUNE,
    ClickTrainConfig,
    train_click_model,
    validation_samples,
    with_validation,
)

__all__ = [
    "CLICK_FORMAT", "MAX_POINTS", "SHIPPED", "SPACING", "FINE_TUNE", "ClickCheckpoint", "ClickModelEngine",
    "ClickTrainConfig", "Crop", "EngineBusy", "EngineError", "InteractiveEngine", "PromptError", "Prompts", "Scribble",
    "SessionPool", "Slots", "build_click_network", "click_session", "degrade", "evaluate", "load_click_checkpoint",
    "next_click", "ras_index", "save_click_checkpoint", "train_click_model", "validation_samples", "version_of",
    "with_validation",
]
