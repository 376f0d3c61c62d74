"""Fine-tuning on revised labels: Dice on the revised cases before and after, per architecture and ensemble.

    python benchmarks/bench_finetune.py [--cases 4] [--steps N] [--models DIR]

The shipped tiny checkpoints (M0) predict a few phantoms from another "scanner" (finer, anisotropic spacing and both
troubles: an air cavity in the stomach, a swollen pancreas tail), where they make mistakes. The annotator's revised
labels are the phantoms' true labels; each member is fine-tuned on them (M1, parent M0) and the same cases are
predicted again. Prints Dice before and after and the CPU time of fine-tuning. Asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_engine.phantoms import ORGANS, make_phantom  # noqa: E402
from ml_engine.predict import Predictor  # noqa: E402
from ml_engine.train import TrainConfig, load_checkpoint, make_train_case, train  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool masks (ml_engine.metrics.dice when present); 1.0 when both are empty."""
    try:
        from ml_engine.metrics import dice as metrics_dice

        return float(metrics_dice(a, b))
    except ImportError:
        total = int(a.sum()) + int(b.sum())
        return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def scores(checkpoints, cases) -> dict[str, float]:
    """{member or 'ensemble': mean Dice over organs and cases}."""
    out: dict[str, list[float]] = {}
    for case in cases:
        result = Predictor(checkpoints).predict(case.ct, case.affine)
        for organ in result.iter_organs():
            truth = case.labels == organ.value
            for member, soft in organ.soft.items():
                out.setdefault(member, []).append(dice(soft > 127, truth))
            out.setdefault("ensemble", []).append(dice(organ.mask, truth))
    return {m: float(np.mean(v)) for m, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None, help="default: a fifth of training's")
    parser.add_argument("--models", type=Path, default=REPO / "ml_engine" / "checkpoints")
    parser.add_argument("--archs", nargs="+", default=["unet", "nnunet", "swin_unetr"])
    args = parser.parse_args()

    parents = [load_checkpoint(args.models / f"{arch}_tiny.pt", organs=ORGANS) for arch in args.archs]
    cases = [make_phantom(7000 + i, shape=(112, 112, 48), spacing=(1.2, 1.2, 3.5),
                          troubles=("stomach_air_cavity", "enlarged_pancreas_tail"), name=f"revised_{i}")
             for i in range(args.cases)]
    before = scores(parents, cases)
    children, cost = [], {}
    for parent in parents:
        prepared = [make_train_case(c.name, c.ct, c.affine, {o: c.labels == i + 1 for i, o in enumerate(ORGANS)},
                                    ORGANS, parent.spacing) for c in cases]
        t = time.process_time()
        child = train(prepared, TrainConfig(arch=parent.arch, steps=args.steps, seed=1, lr=None), init=parent)
        cost[parent.arch] = time.process_time() - t
        children.append(child)
    after = scores(children, cases)
    steps = {c.arch: int(c.metrics["steps"]) for c in children}
    print(f"Fine-tuning on {args.cases} revised cases (steps {steps}, learning rate a third of training's); "
          f"mean Dice over 9 organs on those cases:")
    print("| member | before (M0) | after (M1) | fine-tuning CPU |")
    print("| --- | --- | --- | --- |")
    for member in before:
        cpu = f"{cost[member] / 60:.1f} min" if member in cost else "-"
        print(f"| {member} | {before[member]:.3f} | {after[member]:.3f} | {cpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
