"""The figures of the effort benchmark: the ratio of actions over the cases both policies finished, its bootstrap
interval over cases, and the geometric mean of per-case ratios. Pure functions of the runs' rows."""

from __future__ import annotations

import math

import numpy as np

from .rules import STOP


def paired(rows: list[dict], other: str = "b") -> list[tuple[dict, dict]]:
    """(a, other) rows of the same case, in the order of (a)'s: (b) the tools, (c) the clicks."""
    b = {r["case"]: r for r in rows if r["policy"] == other}
    return [(r, b[r["case"]]) for r in rows if r["policy"] == "a" and r["case"] in b]


def finished(pairs: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
    """The pairs where both policies reached the stopping rule: the only ones a ratio is taken over (a case one
    policy never finished is a failure, reported with its final Dice, never a bound on a ratio)."""
    return [(a, b) for a, b in pairs if a["dice"] >= STOP and b["dice"] >= STOP]


def ratio(pairs: list[tuple[dict, dict]]) -> float:
    sb = sum(b["actions"] for _, b in pairs)
    return math.nan if not pairs or sb == 0 else sum(a["actions"] for a, _ in pairs) / sb


def bootstrap(pairs: list[tuple[dict, dict]], n: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the ratio of sums, resampling cases with replacement."""
    if len(pairs) < 2:
        return math.nan, math.nan
    acts = np.array([(a["actions"], b["actions"]) for a, b in pairs], dtype=float)
    pick = np.random.default_rng(seed).integers(0, len(pairs), size=(n, len(pairs)))
    sums = acts[pick].sum(axis=1)
    ratios = sums[:, 0] / np.maximum(sums[:, 1], 1)
    lo, hi = np.percentile(ratios, [2.5, 97.5])
    return float(lo), float(hi)


def geometric_mean(pairs: list[tuple[dict, dict]]) -> float:
    """Geometric mean of per-case ratios (a case with 0 actions counts as 1: Dice was already past the rule)."""
    if not pairs:
        return math.nan
    logs = [math.log(max(a["actions"], 1) / max(b["actions"], 1)) for a, b in pairs]
    return math.exp(sum(logs) / len(logs))


def summary(pairs: list[tuple[dict, dict]]) -> dict:
    done = finished(pairs)
    lo, hi = bootstrap(done)
    return {"cases": len(pairs), "finished": len(done), "a": sum(a["actions"] for a, _ in done),
            "b": sum(b["actions"] for _, b in done), "ratio": ratio(done), "lo": lo, "hi": hi,
            "geomean": geometric_mean(done),
            "failed_a": sum(a["dice"] < STOP for a, _ in pairs), "failed_b": sum(b["dice"] < STOP for _, b in pairs)}
