"""Do the audit's 95% intervals cover the truth? A simulation on phantoms, where every case's truth is known.

    python benchmarks/simulate_audit.py [--cases 150] [--populations 2] [--worked 0.1] [--sizes 10 20 40 80]
                                        [--repeats 400] [--rater-mm 0.7] [--shape 48 48 32] [--spacing 3 3 5]

How it is built (honestly: the ensemble is simulated, not run):

1. A population of phantoms (ml_engine.phantoms, small: 48 x 48 x 32 voxels of 3 x 3 x 5 mm) with their true labels.
2. Per case, an ensemble of three members is *simulated* from the truth (ml_engine.attention.simulate: models that
   disagree along every boundary, with the paper's typical errors injected at random: a missed stomach cavity, a
   spleen boundary pushed out, a bite out of the liver, each with a random size and jitter), combined into the
   pseudo-label by the platform's own rule (ml_engine.ensemble.EnsembleAverage), and its attention computed by the
   platform's own code (ml_engine.attention.case_attention). Running the three real networks on every case of every
   population would take hours on this 2-core machine; the audit only needs pseudo-labels whose errors the
   attention partly predicts, which this gives.
3. The cases are ranked by attention; the top `--worked` share is the revision queue's worked part; the rest is the
   frame (the unrevised part). The truth is computed on every frame case: the share needing a correction (an organ
   with more than 5 mL changed or Dice below 0.85, the platform's defaults), the mean Dice and NSD of the pseudo-label.
   The auto-accept rule's part (attention below its 40th percentile) is estimated too, as the platform does.
4. Each repeat draws an audit sample (ml_engine.audit.draw: deciles of attention, seeded) and estimates with
   ml_engine.audit.estimate, the code the platform serves. Raters:
   - perfect: the audit revision is the truth;
   - noisy: a rater whose boundary wanders (a smooth random displacement of sd `--rater-mm` mm, a fresh one per read;
     ml_engine.attention.simulate with one model), one read per case;
   - noisy, double read: two independent reads of each audit case, the case's value their mean.
   Coverage counts the repeats whose interval holds the truth (step 3, always against the real truth).

Prints one markdown table; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml_engine.attention import case_attention  # noqa: E402
from ml_engine.attention.simulate import SIMULATED_ERRORS, simulate_ensemble, simulate_organ  # noqa: E402
from ml_engine.audit import Read, Thresholds, case_values, draw, estimate  # noqa: E402
from ml_engine.ensemble import EnsembleAverage  # noqa: E402
from ml_engine.metrics import dice, nsd, tolerance_for  # noqa: E402
from ml_engine.phantoms import ORGANS, make_phantom  # noqa: E402

RATERS = ("perfect", "noisy", "noisy, double read", "noisy, double read, rater range")
READS = 4  # independent noisy reads simulated per case; each repeat picks one (or two) of them


@dataclass
class SimCase:
    name: str
    attention_ml: float
    truth: Read
    noisy: list[Read]
    between: list[Read]  # read 0 against read 1, read 2 against read 3: the double reads' agreement


def _read(pseudo: np.ndarray, label: np.ndarray, spacing: tuple[float, float, float], voxel_ml: float) -> Read:
    d, changed, s = {}, {}, {}
    for value, organ in enumerate(ORGANS, start=1):
        a, b = pseudo == value, label == value
        d[organ] = float(dice(a, b))
        changed[organ] = float(np.count_nonzero(a ^ b)) * voxel_ml
        s[organ] = float(nsd(a, b, spacing, tolerance_for(organ)))
    return Read(dice=d, changed_ml=changed, nsd=s)


def make_case(seed: int, index: int, *, shape, spacing, rater_mm: float) -> SimCase:
    rng = np.random.default_rng([seed, index])
    phantom = make_phantom(seed * 100_000 + index, shape=shape, spacing=spacing)
    spacing = tuple(float(s) for s in spacing)
    errors = [e for e in SIMULATED_ERRORS if rng.random() < 0.4]
    ensemble = simulate_ensemble(phantom.labels, spacing=spacing, seed=int(rng.integers(2**31)), errors=errors,
                                 jitter_mm=float(rng.uniform(0.5, 3.0)), shift_mm=float(rng.uniform(4, 14)),
                                 bite_mm=float(rng.uniform(8, 20)))
    average = EnsembleAverage(phantom.labels.shape, {organ: i + 1 for i, organ in enumerate(ORGANS)})
    for organ in ORGANS:
        average.add(organ, {f"m{k}": p for k, p in enumerate(ensemble.probs[organ])})
    pseudo = average.label
    attention = case_attention(ensemble.probs, spacing=spacing).total_ml
    voxel_ml = float(np.prod(spacing)) / 1000.0
    reads, labels = [], []
    for _ in range(READS):
        label = np.zeros_like(phantom.labels)
        for value in range(1, len(ORGANS) + 1):
            maps, _ = simulate_organ(phantom.labels == value, spacing=spacing, models=1,
                                     seed=int(rng.integers(2**31)), jitter_mm=rater_mm, edge_mm=0.05)
            label[(maps[0] > 127) & (label == 0)] = value
        reads.append(_read(pseudo, label, spacing, voxel_ml))
        labels.append(label)
    between = [_read(labels[k], labels[k + 1], spacing, voxel_ml) for k in range(0, READS, 2)]
    return SimCase(phantom.name, float(attention), _read(pseudo, phantom.labels, spacing, voxel_ml), reads, between)


def truth_of(cases: list[SimCase], thresholds: Thresholds) -> dict[str, float]:
    values = [case_values([c.truth], ORGANS, thresholds)["overall"] for c in cases]
    return {metric: float(np.mean([v[metric] for v in values])) for metric in ("needs", "dice", "nsd")}


def run(population: list[SimCase], *, worked: float, sizes: list[int], repeats: int, thresholds: Thresholds,
        rows: dict) -> None:
    ranked = sorted(population, key=lambda c: -c.attention_ml)
    frame = ranked[int(round(worked * len(ranked))):]
    by_name = {c.name: c for c in frame}
    attention = {c.name: c.attention_ml for c in frame}
    cut = float(np.percentile([c.attention_ml for c in frame], 40))
    accepted = {c.name for c in frame if c.attention_ml < cut}
    truth = {"frame": truth_of(frame, thresholds),
             "auto-accepted": truth_of([c for c in frame if c.name in accepted], thresholds)}
    for n in sizes:
        for rater in RATERS:
            for rep in range(repeats):
                rng = np.random.default_rng([rep, n, len(rater)])
                drawn, sizes_h = draw(attention, n, seed=rep)
                read, read_domain = [], []
                for d in drawn:
                    case = by_name[d.name]
                    between = None
                    if rater == "perfect":
                        reads = [case.truth]
                    elif "double" in rater:
                        pair = int(rng.integers(READS // 2))
                        reads = case.noisy[2 * pair:2 * pair + 2]
                        between = case.between[pair] if "range" in rater else None
                    else:
                        reads = [case.noisy[int(rng.integers(READS))]]
                    values = case_values(reads, ORGANS, thresholds, between=between)
                    read.append((d.stratum, values))
                    if d.name in accepted:
                        read_domain.append((d.stratum, values))
                domain_sizes = _domain_sizes(attention, accepted, n, rep, len(sizes_h))
                for part, frame_sizes, reads_of in (("frame", sizes_h, read),
                                                    ("auto-accepted", domain_sizes, read_domain)):
                    est = estimate(frame_sizes, reads_of, ["overall"], seed=rep, resamples=1000)["overall"]
                    for metric, key in (("needs", "needs_correction"), ("dice", "dice"), ("nsd", "nsd")):
                        e = est[key]
                        row = rows.setdefault((part, metric, n, rater), {"cover": 0, "width": [], "runs": 0,
                                                                           "bias": []})
                        row["runs"] += 1
                        if e["estimate"] is None:
                            continue
                        t = truth[part][metric]
                        row["cover"] += int(e["low"] - 1e-9 <= t <= e["high"] + 1e-9)
                        row["width"].append(e["high"] - e["low"])
                        row["bias"].append(e["estimate"] - t)


def _domain_sizes(attention: dict[str, float], domain: set[str], n: int, seed: int, strata: int) -> list[int]:
    """How many of each stratum's frame cases lie in the domain (the strata as draw() cut them)."""
    from ml_engine.audit import stratify

    of = stratify(attention, strata=max(1, min(10, n // 2)), seed=seed)
    sizes = [0] * strata
    for name, h in of.items():
        if name in domain:
            sizes[h] += 1
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--populations", type=int, default=2)
    parser.add_argument("--worked", type=float, default=0.1, help="share of cases revised by the queue (top)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 40, 80])
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--rater-mm", type=float, default=1.5)
    parser.add_argument("--shape", type=int, nargs=3, default=[48, 48, 32])
    parser.add_argument("--spacing", type=float, nargs=3, default=[3.0, 3.0, 5.0])
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    started = time.perf_counter()
    thresholds = Thresholds()
    rows: dict = {}
    for p in range(args.populations):
        population = [make_case(p, i, shape=args.shape, spacing=args.spacing, rater_mm=args.rater_mm)
                      for i in range(args.cases)]
        frame = sorted(population, key=lambda c: -c.attention_ml)[int(round(args.worked * args.cases)):]
        t = truth_of(frame, thresholds)
        print(f"population {p}: {args.cases} cases built in {time.perf_counter() - started:.0f} s; frame "
              f"{len(frame)} cases: truth share needing correction {t['needs']:.3f}, mean Dice {t['dice']:.4f}, "
              f"mean NSD {t['nsd']:.4f}", flush=True)
        run(population, worked=args.worked, sizes=args.sizes, repeats=args.repeats, thresholds=thresholds, rows=rows)
    print()
    print("| part | figure | sample | rater | coverage of the 95% interval | mean width | mean error (estimate - "
          "truth) | runs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    names = {"needs": "share needing correction", "dice": "mean Dice", "nsd": "mean NSD"}
    for (part, metric, n, rater), row in rows.items():
        runs = len(row["width"])
        print(f"| {part} | {names[metric]} | {n} | {rater} | {100 * row['cover'] / max(runs, 1):.1f}% | "
              f"{np.mean(row['width']):.4f} | {np.mean(row['bias']):+.4f} | {runs} |")
    print(f"\n{args.populations} populations x {args.repeats} draws per sample size and rater; wall time "
          f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
