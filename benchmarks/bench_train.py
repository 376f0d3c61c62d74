"""Quality benchmark: train the tiny ensemble on phantoms, Dice on held-out phantoms, CPU time per architecture.

    python benchmarks/bench_train.py [--train 20] [--test 5] [--archs unet nnunet swin_unetr] [--save DIR]

Generates train + test phantoms (96 x 96 x 64, seeds fixed), trains each architecture with its `tiny` defaults
(networks.TRAINING_DEFAULTS) or --steps, and prints per-organ Dice on the held-out phantoms, on their original grid,
for each architecture and for the ensemble (mean probability > 0.5), with the CPU and wall time each took.
--save writes the checkpoints (float16 weights) as DIR/<arch>_tiny.pt: that is how ml_engine/checkpoints/ was made.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_engine.networks import ARCHITECTURES, count_parameters, defaults_for  # noqa: E402
from ml_engine.phantoms import ORGANS, make_phantom  # noqa: E402
from ml_engine.predict import Predictor  # noqa: E402
from ml_engine.train import TrainConfig, load_checkpoint, make_train_case, save_checkpoint, train  # noqa: E402

TRAIN_SEED = 1000
TEST_SEED = 5000


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool masks; 1.0 when both are empty."""
    try:
        from ml_engine.metrics import dice as metrics_dice

        return float(metrics_dice(a, b))
    except ImportError:  # metrics.py is another issue's; a tiny local dice otherwise
        total = int(a.sum()) + int(b.sum())
        return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def phantoms(seed: int, n: int) -> list:
    return [make_phantom(seed + i, name=f"phantom_{seed + i}") for i in range(n)]


def evaluate(predictor: Predictor, cases: list) -> dict[str, dict[str, list[float]]]:
    """{member or 'ensemble': {organ: [dice per case]}} on the original grids."""
    scores: dict[str, dict[str, list[float]]] = {}
    for case in cases:
        result = predictor.predict(case.ct, case.affine)
        for out in result.iter_organs():
            truth = case.labels == out.value
            for member, soft in out.soft.items():
                scores.setdefault(member, {}).setdefault(out.organ, []).append(dice(soft > 127, truth))
            scores.setdefault("ensemble", {}).setdefault(out.organ, []).append(dice(out.mask, truth))
    return scores


def table(scores: dict[str, dict[str, list[float]]]) -> str:
    members = list(scores)
    lines = ["| organ | " + " | ".join(members) + " |", "| --- |" + " --- |" * len(members)]
    for organ in ORGANS:
        lines.append(f"| {organ} | " + " | ".join(f"{np.mean(scores[m][organ]):.3f}" for m in members) + " |")
    lines.append("| **mean** | " + " | ".join(
        f"**{np.mean([np.mean(v) for v in scores[m].values()]):.3f}**" for m in members) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=20)
    parser.add_argument("--test", type=int, default=5)
    parser.add_argument("--archs", nargs="+", default=["unet", "nnunet", "swin_unetr"], choices=ARCHITECTURES)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: each arch's tiny default)")
    parser.add_argument("--save", type=Path, default=None, help="write DIR/<arch>_tiny.pt")
    parser.add_argument("--load", type=Path, default=None, help="evaluate DIR/<arch>_tiny.pt instead of training")
    parser.add_argument("--json", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--reuse", action="store_true", help="with --save: load the checkpoints already there "
                                                             "instead of training them again")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue training DIR/<arch>_tiny.pt on the same cases (a second stage; costs add up)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the architecture's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}")
    started = time.perf_counter()
    train_cases = phantoms(TRAIN_SEED, args.train)
    test_cases = phantoms(TEST_SEED, args.test)
    print(f"phantoms: {args.train} train + {args.test} test, {train_cases[0].shape}, "
          f"{time.perf_counter() - started:.1f} s")
    checkpoints, costs = [], {}
    prepared: dict[tuple, list] = {}
    for arch in args.archs:
        reuse = args.save / f"{arch}_tiny.pt" if args.reuse and args.save else None
        if args.load or (reuse is not None and reuse.is_file()):
            ckpt = load_checkpoint(reuse if reuse is not None and reuse.is_file() else args.load / f"{arch}_tiny.pt")
            print(f"{arch}: loaded {ckpt.name} (trained earlier: {int(ckpt.metrics['steps'])} steps, "
                  f"loss {ckpt.metrics['loss_first']:.3f} -> {ckpt.metrics['loss_last']:.3f})", flush=True)
            checkpoints.append(ckpt)
            costs[arch] = dict(ckpt.metrics)
            continue
        d = defaults_for(arch, "tiny")
        if d.spacing not in prepared:
            prepared[d.spacing] = [make_train_case(c.name, c.ct, c.affine,
                                                   {o: c.labels == i + 1 for i, o in enumerate(ORGANS)}, ORGANS,
                                                   d.spacing) for c in train_cases]
        config = TrainConfig(arch=arch, size="tiny", organs=ORGANS, steps=args.steps, seed=0, lr=args.lr)
        parent = load_checkpoint(args.init / f"{arch}_tiny.pt") if args.init else None
        steps = args.steps or d.steps
        with tqdm(total=steps, desc=f"train {arch}", unit="step", file=sys.stderr, mininterval=5) as bar:
            def progress(done: int, total: int, loss: float, bar=bar) -> None:
                bar.update(done - bar.n)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

            ckpt = train(prepared[d.spacing], config, init=parent, progress=progress)
        if parent is not None:  # a second stage of the same training: report the whole cost
            for key in ("cpu_seconds", "wall_seconds", "steps"):
                ckpt.metrics[key] += parent.metrics.get(key, 0.0)
            ckpt.metrics["loss_first"] = parent.metrics["loss_first"]
            ckpt.parent = None
        ckpt.name = f"{arch}_tiny.pt"
        model = ckpt.build()
        costs[arch] = {**ckpt.metrics, "parameters": float(count_parameters(model))}
        print(f"{arch}: {int(ckpt.metrics['steps'])} steps, batch {int(ckpt.metrics['batch'])}, patch {ckpt.patch}, "
              f"spacing {ckpt.spacing}, lr {ckpt.metrics['lr']:g}, {count_parameters(model) / 1e6:.2f} M parameters, "
              f"loss {ckpt.metrics['loss_first']:.3f} -> {ckpt.metrics['loss_last']:.3f}, "
              f"CPU {ckpt.metrics['cpu_seconds'] / 60:.1f} min, wall {ckpt.metrics['wall_seconds'] / 60:.1f} min",
              flush=True)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            save_checkpoint(args.save / f"{arch}_tiny.pt", ckpt, half=True)
            ckpt = load_checkpoint(args.save / f"{arch}_tiny.pt")  # evaluate what ships (float16 weights)
        checkpoints.append(ckpt)
    started = time.perf_counter()
    scores = evaluate(Predictor(checkpoints), test_cases)
    best = max((m for m in scores if m != "ensemble"), key=lambda m: np.mean([np.mean(v) for v in scores[m].values()]))
    print(f"\nDice on {args.test} held-out phantoms (original grid), evaluation {time.perf_counter() - started:.1f} s")
    print(table(scores))
    means = {m: float(np.mean([np.mean(v) for v in scores[m].values()])) for m in scores}
    print(f"\nbest member {best} {means[best]:.3f}; ensemble {means['ensemble']:.3f} "
          f"({'not worse' if means['ensemble'] >= means[best] - 1e-9 else 'WORSE'} than its best member)")
    for arch, cost in costs.items():
        print(f"{arch}: CPU {cost.get('cpu_seconds', float('nan')) / 60:.1f} min, "
              f"wall {cost.get('wall_seconds', float('nan')) / 60:.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"scores": {m: {o: float(np.mean(v)) for o, v in s.items()}
                                                    for m, s in scores.items()},
                                         "means": means, "costs": costs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
