"""The method itself: does revising the cases with the largest attention first give a better dataset than revising
cases at random? (AbdomenAtlas-8K's claim, measured on phantoms.)

    python benchmarks/simulate_loop.py [--cases 16] [--shifted 4] [--labelled 3] [--k 2] [--rounds 3] [--steps 30]
                                       [--archs unet nnunet] [--random-repeats 3] [--threads N]

The dataset mixes phantoms like the shipped checkpoints' training data with phantoms from "another scanner" (finer,
anisotropic spacing, an air cavity in the stomach and a swollen pancreas tail), where the models err, as real
datasets mix hospitals. A few home cases come with labels (`--labelled`; the truth, for both orderings); M0 is the
shipped tiny checkpoints. Each round:

1. the current models predict every case (the ensemble's pseudo-labels and attention, as the platform does);
2. a simulated annotator revises k more cases, which then carry the truth: the k with the largest total attention
   (attention ordering) or k drawn at random (random ordering, repeated with different draws and averaged);
3. the dataset's labels are the truth for revised cases and the pseudo-label elsewhere: print their mean Dice
   against the truth (mean over the nine organs, then over cases);
4. each member is fine-tuned from its current checkpoint on every case revised so far together with the labelled
   ones (as the platform does: without the original labels, fine-tuning on a few cases of the other scanner makes
   the models forget the home cases), for the next round.

Both orderings revise the same number of cases; only the choice differs. Prints a table per round and the mean
Dice of the pseudo-labels of the cases left unrevised. Asserts nothing about time.

With `--click-steps N` the attention ordering also fine-tunes the click model each round (N steps from the previous
round's, the shipped one first) on the cases revised so far, as the platform's CLICK job does, and prints its Dice
after 0, 1, 3 and 5 simulated clicks on held-out phantoms of the other scanner (seeds not in the dataset; starting
labels a seeded degradation of the truth, the same every round).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_engine.attention import case_attention  # noqa: E402
from ml_engine.interactive import SPACING as CLICK_SPACING  # noqa: E402
from ml_engine.interactive import (  # noqa: E402
    ClickCheckpoint,
    ClickTrainConfig,
    evaluate,
    load_click_checkpoint,
    train_click_model,
    validation_samples,
)
from ml_engine.io import spacing_from_affine  # noqa: E402
from ml_engine.metrics import dice  # noqa: E402
from ml_engine.phantoms import ORGANS, Phantom, make_phantom  # noqa: E402
from ml_engine.predict import Predictor  # noqa: E402
from ml_engine.train import Checkpoint, TrainConfig, load_checkpoint, make_train_case, train  # noqa: E402

CHECKPOINTS = REPO / "ml_engine" / "checkpoints"


def make_dataset(n: int, shifted: int, seed: int) -> list[Phantom]:
    cases = [make_phantom(seed * 1000 + i, name=f"home_{i:02d}") for i in range(n - shifted)]
    cases += [make_phantom(seed * 1000 + 500 + i, shape=(112, 112, 48), spacing=(1.2, 1.2, 3.5),
                           troubles=("stomach_air_cavity", "enlarged_pancreas_tail"), name=f"away_{i:02d}")
              for i in range(shifted)]
    return cases


def away_phantoms(n: int, seed: int) -> list[Phantom]:
    return [make_phantom(seed * 1000 + 900 + i, shape=(112, 112, 48), spacing=(1.2, 1.2, 3.5),
                         troubles=("stomach_air_cavity", "enlarged_pancreas_tail"), name=f"heldout_{i:02d}")
            for i in range(n)]


def click_cases(cases: list[Phantom]) -> list:
    return [make_train_case(c.name, c.ct, c.affine, {o: c.labels == i + 1 for i, o in enumerate(ORGANS)}, ORGANS,
                            CLICK_SPACING) for c in cases]


def click_figures(model: ClickCheckpoint, samples: list) -> str:
    m = evaluate(model, samples)
    return " / ".join(f"{m[f'dice_{k}']:.3f}" for k in (0, 1, 3, 5))


def case_dice(label: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([dice(label == i + 1, truth == i + 1) for i in range(len(ORGANS))]))


@dataclass
class Predicted:
    """Per case: the ensemble's pseudo-label Dice against the truth, and the total attention size (mL)."""

    dice: dict[str, float] = field(default_factory=dict)
    attention: dict[str, float] = field(default_factory=dict)


def predict(models: list[Checkpoint], cases: list[Phantom]) -> Predicted:
    predictor = Predictor(models)
    out = Predicted()
    for case in cases:
        result = predictor.predict(case.ct, case.affine)
        probs = {o.organ: list(o.soft.values()) for o in result.iter_organs()}
        out.dice[case.name] = case_dice(result.pseudo_label, case.labels)
        attention = case_attention(probs, spacing=spacing_from_affine(case.affine))
        out.attention[case.name] = float(sum(a.volume_ml for a in attention.organs.values()))
    return out


def fine_tune(models: list[Checkpoint], cases: list[Phantom], steps: int, seed: int) -> list[Checkpoint]:
    tuned = []
    for model in models:
        prepared = [make_train_case(c.name, c.ct, c.affine, {o: c.labels == i + 1 for i, o in enumerate(ORGANS)},
                                    ORGANS, model.spacing) for c in cases]
        tuned.append(train(prepared, TrainConfig(arch=model.arch, size=model.size, steps=steps, seed=seed, lr=None),
                           init=model))
    return tuned


@dataclass
class Strategy:
    name: str
    models: list[Checkpoint]
    rng: random.Random | None = None  # None: attention ordering
    revised: list[str] = field(default_factory=list)
    labelled: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def run_round(strategy: Strategy, predicted: Predicted, cases: list[Phantom], k: int) -> None:
    left = [c.name for c in cases if c.name not in strategy.revised and c.name not in strategy.labelled]
    if strategy.rng is None:
        chosen = sorted(left, key=lambda name: -predicted.attention[name])[:k]
    else:
        chosen = strategy.rng.sample(left, min(k, len(left)))
    strategy.revised += chosen
    unrevised = [predicted.dice[n] for n in left if n not in chosen]
    truth = set(strategy.revised) | set(strategy.labelled)
    dataset = [1.0 if c.name in truth else predicted.dice[c.name] for c in cases]
    strategy.rows.append({"revised": len(strategy.revised), "chosen": chosen, "dataset": float(np.mean(dataset)),
                          "unrevised": float(np.mean(unrevised)) if unrevised else float("nan"),
                          "attention": float(sum(predicted.attention.values()))})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--shifted", type=int, default=4, help="cases from the other scanner (default 4)")
    parser.add_argument("--labelled", type=int, default=3, help="home cases labelled from the start (default 3)")
    parser.add_argument("--k", type=int, default=2, help="cases revised per round (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="fine-tuning steps per member and round")
    parser.add_argument("--archs", nargs="+", default=["unet", "nnunet"])
    parser.add_argument("--random-repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--click-steps", type=int, default=0, help="fine-tune the click model too (default: off)")
    parser.add_argument("--click-heldout", type=int, default=3, help="held-out phantoms for the click figures")
    args = parser.parse_args()
    if not (0 <= args.shifted <= args.cases and 0 <= args.labelled <= args.cases - args.shifted
            and min(args.k, args.rounds, args.random_repeats) >= 1):
        parser.error("need 0 <= --shifted <= --cases, 0 <= --labelled <= --cases - --shifted, "
                     "and --k, --rounds, --random-repeats at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    cases = make_dataset(args.cases, args.shifted, args.seed)
    m0 = [load_checkpoint(CHECKPOINTS / f"{arch}_tiny.pt", organs=ORGANS) for arch in args.archs]
    labelled = [c.name for c in cases[:args.labelled]]
    strategies = [Strategy("attention", m0, labelled=labelled)] + [
        Strategy(f"random #{r + 1}", m0, random.Random(args.seed * 100 + r), labelled=labelled)
        for r in range(args.random_repeats)]
    print(f"{args.cases} phantoms ({args.shifted} from another scanner, with troubles; {args.labelled} labelled), "
          f"ensemble {args.archs}, "
          f"k = {args.k} revised per round, {args.steps} fine-tuning steps per member and round", flush=True)
    first = predict(m0, cases)
    click_model, click_rows, click_samples = None, [], []
    if args.click_steps:
        click_model = load_click_checkpoint()
        click_samples = validation_samples(click_cases(away_phantoms(args.click_heldout, args.seed)), seed=args.seed)
        click_rows.append(("shipped", click_figures(click_model, click_samples)))
        print(f"  click model, shipped: Dice before / after 1 / 3 / 5 clicks {click_rows[-1][1]}", flush=True)
    for round_number in range(1, args.rounds + 1):
        for strategy in strategies:
            predicted = first if round_number == 1 else predict(strategy.models, cases)
            run_round(strategy, predicted, cases, args.k)
            revised = [c for c in cases if c.name in strategy.revised or c.name in strategy.labelled]
            if round_number < args.rounds:
                strategy.models = fine_tune(strategy.models, revised, args.steps, args.seed + round_number)
            if click_model is not None and strategy.rng is None:
                click_model = train_click_model(click_cases(revised), organs=ORGANS, init=click_model,
                                                config=ClickTrainConfig(steps=args.click_steps, lr=1e-3,
                                                                        seed=args.seed + round_number))
                click_rows.append((f"after round {round_number}", click_figures(click_model, click_samples)))
                print(f"  click model after round {round_number} ({len(revised)} cases): Dice before / after "
                      f"1 / 3 / 5 clicks {click_rows[-1][1]}", flush=True)
            row = strategy.rows[-1]
            print(f"  round {round_number} {strategy.name:<10} revised {row['revised']:>2} "
                  f"(+{', '.join(row['chosen'])}): dataset Dice {row['dataset']:.4f}, unrevised pseudo-labels "
                  f"{row['unrevised']:.4f}, total attention {row['attention']:.1f} mL", flush=True)
    randoms = strategies[1:]
    print()
    print("| round | cases revised | dataset Dice, attention order | dataset Dice, random order (mean of "
          f"{len(randoms)}) | gain | unrevised pseudo-labels, attention / random | total attention (mL), "
          "attention / random |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in range(args.rounds):
        a = strategies[0].rows[r]
        rnd = {key: float(np.mean([s.rows[r][key] for s in randoms])) for key in ("dataset", "unrevised", "attention")}
        print(f"| {r + 1} | {a['revised']} | {a['dataset']:.4f} | {rnd['dataset']:.4f} | "
              f"{a['dataset'] - rnd['dataset']:+.4f} | {a['unrevised']:.4f} / {rnd['unrevised']:.4f} | "
              f"{a['attention']:.0f} / {rnd['attention']:.0f} |")
    if click_rows:
        print(f"\n| click model | Dice before / after 1 / 3 / 5 simulated clicks ({len(click_samples)} held-out "
              "organ samples) |\n| --- | --- |")
        for name, figures in click_rows:
            print(f"| {name} | {figures} |")
    away = sum(name.startswith("away") for name in strategies[0].revised)
    print(f"\nattention ordering revised {away} of its {len(strategies[0].revised)} cases from the other scanner; "
          f"random ordering {np.mean([sum(n.startswith('away') for n in s.revised) for s in randoms]):.1f} on "
          f"average. Wall time {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
