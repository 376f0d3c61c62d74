"""Audit samples and what they say about the cases nobody revised: a seeded, stratified draw and estimates with 95%
intervals (pure Python + NumPy; the platform's annotation.services.audit and benchmarks/simulate_audit.py both use
it, so the simulation measures the same code the dashboard shows).

The frame is the set of cases an audit speaks for (the unrevised part of the dataset). Cases are stratified by
attention: sorted by their total attention size (mL), ties broken by a seeded hash of their names, and cut into
strata of (nearly) equal size (deciles with 10 strata). The sample is allocated to the strata in proportion to
their sizes (at least two per stratum when the sample allows it, so that each stratum's variance can be
estimated), and drawn inside each stratum in the order of a seeded hash of the case names: the same frame, size
and seed give the same sample.

Estimates (stratified weights W_h = N_h / N):
- a share (cases needing a correction): p = sum W_h p_h, with variance sum W_h^2 (1 - f_h) s_h^2 / n_h
  (f_h = n_h / N_h, the finite-population correction); the 95% interval is Wilson's with the effective sample
  size p (1 - p) / variance (never more than the sample's own size, corrected for the share of the frame sampled);
- a mean (Dice, NSD): the same stratified mean; its 95% interval from a seeded Rao-Wu rescaling bootstrap
  (n_h - 1 drawn with replacement in each stratum, rescaled by sqrt(1 - f_h)), percentile method, its two sides
  stretched by Student's t over the normal quantile (degrees of freedom: read cases minus strata), which small
  samples need (benchmarks/simulate_audit.py: 85% coverage at 10 cases without it).

A stratum with fewer than two read cases is merged with its neighbour for the estimate (its cases still count).
A case read twice (a double read) contributes the mean of its two reads, and the two reads' agreement measures the
rater's own noise, which the AI should not be blamed for: the estimate is then made twice, with the reads corrected
for that noise and without, and the interval spans both (`estimate`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import t as student_t

Z95 = 1.959963984540054
DEFAULT_STRATA = 10
BOOTSTRAP = 2000


def draw_key(seed: int, name: str) -> str:
    """The seeded order of a case: sha256 of 'seed:name' (hex)."""
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def stratify(attention: Mapping[str, float], *, strata: int = DEFAULT_STRATA, seed: int = 0) -> dict[str, int]:
    """{case name: stratum 0..S-1}: the cases sorted by attention (ties in the seeded order), cut into S strata of
    nearly equal size (S at most the number of cases). Stratum 0 holds the smallest attention."""
    names = sorted(attention, key=lambda n: (float(attention[n]), draw_key(seed, n)))
    count = max(1, min(int(strata), len(names)))
    return {name: (rank * count) // len(names) for rank, name in enumerate(names)}


def allocate(sizes: Sequence[int], n: int, *, minimum: int = 2) -> list[int]:
    """Split a sample of n over strata of these sizes: at least `minimum` per stratum when n allows it (else one per
    stratum, else one each for the largest strata), the rest in proportion to size (the largest shortfall first),
    never more than a stratum holds."""
    sizes = [int(s) for s in sizes]
    n = max(0, min(int(n), sum(sizes)))
    filled = sum(1 for s in sizes if s > 0)
    if n < filled:
        alloc = [0] * len(sizes)
        for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))[:n]:
            alloc[i] = 1
        return alloc
    floor = minimum if n >= minimum * filled else 1
    alloc = [min(s, floor) for s in sizes]
    total = sum(sizes)
    for _ in range(n - sum(alloc)):
        i = max((i for i in range(len(sizes)) if alloc[i] < sizes[i]),
                key=lambda i: (n * sizes[i] / total - alloc[i], sizes[i], -i))
        alloc[i] += 1
    return alloc


@dataclass(frozen=True)
class Drawn:
    name: str
    stratum: int
    order: int  # 0-based position in the draw (stratum by stratum, each in its seeded order)


def draw(attention: Mapping[str, float], n: int, *, strata: int = DEFAULT_STRATA, seed: int = 0
         ) -> tuple[list[Drawn], list[int]]:
    """A stratified random sample of n cases of the frame {name: attention mL}: (the drawn cases, the strata's
    sizes). Reproducible: the same frame, n, strata and seed give the same sample."""
    strata = max(1, min(int(strata), max(1, int(n) // 2)))
    of = stratify(attention, strata=strata, seed=seed)
    count = max(of.values(), default=-1) + 1
    members: list[list[str]] = [[] for _ in range(count)]
    for name, h in of.items():
        members[h].append(name)
    sizes = [len(m) for m in members]
    alloc = allocate(sizes, n)
    drawn: list[Drawn] = []
    for h, (names, k) in enumerate(zip(members, alloc, strict=True)):
        for name in sorted(names, key=lambda x: draw_key(seed, x))[:k]:
            drawn.append(Drawn(name, h, len(drawn)))
    return drawn, sizes


def wilson(p: float, n_eff: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a share p observed on n_eff (possibly fractional) independent cases."""
    if n_eff <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (p + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = z * math.sqrt(max(p * (1 - p) / n_eff + z2 / (4 * n_eff * n_eff), 0.0)) / (1 + z2 / n_eff)
    return max(0.0, centre - half), min(1.0, centre + half)


def sample_size(width: float, *, expected: float = 0.1, population: int | None = None, z: float = Z95) -> int:
    """The smallest sample whose Wilson 95% interval of a share near `expected` is at most `width` wide (full width),
    with the finite-population correction when the frame's size is given (capped at it)."""
    if not 0 < width < 1:
        raise ValueError(f"width must be between 0 and 1, got {width}")
    if not 0 <= expected <= 1:
        raise ValueError(f"expected must be between 0 and 1, got {expected}")
    cap = population if population else 1_000_000
    for n in range(1, cap + 1):
        if population and n >= population:
            return population
        n_eff = n / (1 - n / population) if population else n
        low, high = wilson(expected, n_eff, z)
        if high - low <= width:
            return n
    return cap


@dataclass
class Stratum:
    """One stratum of the frame: N_h cases, and the values of those read (one per read case)."""

    size: int
    values: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Estimate:
    estimate: float | None
    low: float | None
    high: float | None
    n: int  # read cases
    frame: int  # cases it speaks for

    def as_dict(self, digits: int = 4) -> dict:
        def r(v):
            return None if v is None else round(float(v), digits)

        return {"estimate": r(self.estimate), "low": r(self.low), "high": r(self.high), "n": self.n,
                "frame": self.frame}


def collapse(strata: Sequence[Stratum], minimum: int = 2) -> list[Stratum]:
    """Merge each stratum with fewer than `minimum` read cases into its neighbour (the next one up, the last into the
    one below), until every stratum has enough or one is left."""
    merged = [Stratum(s.size, list(s.values)) for s in strata if s.size > 0]
    i = 0
    while len(merged) > 1 and i < len(merged):
        if len(merged[i].values) < minimum:
            j = i + 1 if i + 1 < len(merged) else i - 1
            a, b = sorted((i, j))
            merged[a] = Stratum(merged[a].size + merged[b].size, merged[a].values + merged[b].values)
            del merged[b]
            i = 0
            continue
        i += 1
    return merged


def _prepared(strata: Sequence[Stratum]) -> tuple[list[Stratum], int, int]:
    merged = collapse(strata)
    frame = sum(s.size for s in merged)
    n = sum(len(s.values) for s in merged)
    return merged, frame, n


def stratified_share(strata: Sequence[Stratum], z: float = Z95) -> Estimate:
    """The frame's share of cases with value 1 (values in [0, 1]; a double read's mean may be 0.5) and its Wilson
    interval with the stratified design's effective sample size."""
    merged, frame, n = _prepared(strata)
    if n == 0 or frame == 0:
        return Estimate(None, None, None, 0, frame)
    p, var = 0.0, 0.0
    for s in merged:
        values = np.asarray(s.values, dtype=float)
        w = s.size / frame
        p += w * float(values.mean())
        if len(values) > 1:
            f = min(1.0, len(values) / s.size)
            var += w * w * (1 - f) * float(values.var(ddof=1)) / len(values)
    p = min(1.0, max(0.0, p))
    f_all = min(n / frame, 1.0)
    if f_all >= 1.0:
        return Estimate(p, p, p, n, frame)
    ceiling = n / (1 - f_all)
    n_eff = min(ceiling, p * (1 - p) / var) if var > 0 and 0 < p < 1 else ceiling
    low, high = wilson(p, n_eff, z)
    return Estimate(p, min(low, p), max(high, p), n, frame)


def stratified_mean(strata: Sequence[Stratum], *, seed: int = 0, resamples: int = BOOTSTRAP) -> Estimate:
    """The frame's mean value and its 95% interval from a Rao-Wu rescaling bootstrap over the strata (seeded)."""
    merged, frame, n = _prepared(strata)
    if n == 0 or frame == 0:
        return Estimate(None, None, None, 0, frame)
    rng = np.random.default_rng(seed)
    point = 0.0
    boot = np.zeros(resamples)
    for s in merged:
        values = np.asarray(s.values, dtype=float)
        w = s.size / frame
        mean = float(values.mean())
        point += w * mean
        k = len(values)
        if k < 2:
            boot += w * mean
            continue
        f = min(1.0, k / s.size)
        picks = rng.integers(0, k, size=(resamples, k - 1))
        means = values[picks].mean(axis=1)
        boot += w * (mean + math.sqrt(1 - f) * (means - mean))
    if n >= frame:
        return Estimate(point, point, point, n, frame)
    low, high = np.percentile(boot, [2.5, 97.5])
    # small samples: the percentile interval is too narrow by about Student's t over the normal quantile, with the
    # stratified design's degrees of freedom (read cases minus strata)
    stretch = float(student_t.ppf(0.975, max(1, n - len(merged)))) / Z95
    low, high = point - stretch * (point - low), point + stretch * (high - point)
    return Estimate(point, float(min(low, point)), float(max(high, point)), n, frame)


@dataclass(frozen=True)
class Thresholds:
    """When an organ of a case needed a correction: more than `ml` mL changed, or Dice below `dice` (None: that test
    is off)."""

    ml: float | None = 5.0
    dice: float | None = 0.85

    def needs(self, changed_ml: float, dice: float) -> bool:
        return bool((self.ml is not None and changed_ml > self.ml) or (self.dice is not None and dice < self.dice))


@dataclass(frozen=True)
class Read:
    """One read of an audit case, organ by organ: the pseudo-label against the person's label."""

    dice: Mapping[str, float]
    changed_ml: Mapping[str, float]
    nsd: Mapping[str, float] | None = None


def corrected(reads: Sequence[Read], between: Read | None) -> list[Read]:
    """The reads of a double-read case corrected for the rater's own noise, from the two reads' agreement `between`
    (read 1 against read 2). When a rater's errors are independent of the AI's, |AI - R| ~ |AI - T| + |R - T| and
    |R1 - R2| ~ 2 |R - T| (T the truth), so half the disagreement between the reads is what one read adds to its
    difference from the AI: each read's Dice and NSD get (1 - between) / 2 back, its changed mL loses half the mL
    changed between the reads (floored at 0, Dice and NSD capped at 1). Without `between`: the reads as they are."""
    if between is None:
        return list(reads)
    out = []
    for read in reads:
        d = {o: min(1.0, v + (1.0 - between.dice.get(o, 1.0)) / 2) for o, v in read.dice.items()}
        ml = {o: max(0.0, v - between.changed_ml.get(o, 0.0) / 2) for o, v in read.changed_ml.items()}
        nsd = None if read.nsd is None else {
            o: min(1.0, v + (1.0 - (between.nsd or {}).get(o, 1.0)) / 2) for o, v in read.nsd.items()}
        out.append(Read(dice=d, changed_ml=ml, nsd=nsd))
    return out


def case_values(reads: Sequence[Read], organs: Sequence[str], thresholds: Thresholds, *,
                between: Read | None = None) -> dict[str, dict[str, float]]:
    """A read case's values: {"overall" | organ: {"needs": 0..1, "dice": mean, "nsd": mean or absent}}, averaged over
    its reads (overall: a read needs a correction when any organ does; Dice and NSD are the mean over organs). With
    two reads and their agreement `between`, the values are those of the reads corrected for the rater's noise
    (`corrected`), and the uncorrected ones come beside them as "needs_raw", "dice_raw", "nsd_raw": the two ends of
    what the rater's noise leaves open (see `estimate`)."""
    out = _values(corrected(reads, between), organs, thresholds)
    if between is not None:
        for key, raw in _values(reads, organs, thresholds).items():
            out.setdefault(key, {}).update({f"{metric}_raw": value for metric, value in raw.items()})
    return out


def _values(reads: Sequence[Read], organs: Sequence[str], thresholds: Thresholds) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key in ["overall", *organs]:
        needs, dices, nsds = [], [], []
        for read in reads:
            names = list(organs) if key == "overall" else [key]
            names = [o for o in names if o in read.dice]
            if not names:
                continue
            needs.append(float(any(thresholds.needs(read.changed_ml.get(o, 0.0), read.dice[o]) for o in names)))
            dices.append(float(np.mean([read.dice[o] for o in names])))
            if read.nsd is not None and all(o in read.nsd for o in names):
                nsds.append(float(np.mean([read.nsd[o] for o in names])))
        if needs:
            values = {"needs": float(np.mean(needs)), "dice": float(np.mean(dices))}
            if len(nsds) == len(needs):
                values["nsd"] = float(np.mean(nsds))
            out[key] = values
    return out


def estimate(frame_strata: Sequence[int], read: Sequence[tuple[int, dict[str, dict[str, float]]]],
             keys: Sequence[str], *, seed: int = 0, resamples: int = BOOTSTRAP) -> dict[str, dict]:
    """Per key ("overall", organs): the share needing a correction, the mean Dice and NSD, with intervals, and the
    number of frame cases estimated to need a correction (the share's interval times the frame's size).

    frame_strata: N_h per stratum; read: (stratum, case_values(...)) per read case.

    When some cases were read twice (their values carry "_raw" twins), the rater's noise leaves a range open: fully
    corrected (`corrected`: the rater's errors fall where the AI is right) and not corrected at all (they fall where
    the AI is wrong already, and add nothing). Both are estimated; the figure's interval is the union of their two
    95% intervals, its estimate the middle of their two estimates, and "rater_low" / "rater_high" the two estimates.
    Without double reads: one estimate, "rater_low" / "rater_high" null.
    """
    result: dict[str, dict] = {}
    for key in keys:
        per = {metric: [Stratum(size) for size in frame_strata] for metric in ("needs", "dice", "nsd")}
        raw = {metric: [Stratum(size) for size in frame_strata] for metric in per}
        bracket = False
        for h, values in read:
            for metric in per:
                if key in values and metric in values[key]:
                    per[metric][h].values.append(values[key][metric])
                    raw[metric][h].values.append(values[key].get(f"{metric}_raw", values[key][metric]))
                    bracket = bracket or f"{metric}_raw" in values[key]
        share = _bracketed(stratified_share(per["needs"]), stratified_share(raw["needs"]) if bracket else None)
        frame = share["frame"]
        entry = {"needs_correction": share,
                 "cases_needing_correction": {
                     "estimate": None if share["estimate"] is None else round(share["estimate"] * frame, 1),
                     "low": None if share["low"] is None else round(share["low"] * frame, 1),
                     "high": None if share["high"] is None else round(share["high"] * frame, 1), "frame": frame}}
        for metric in ("dice", "nsd"):
            entry[metric] = _bracketed(stratified_mean(per[metric], seed=seed, resamples=resamples),
                                       stratified_mean(raw[metric], seed=seed, resamples=resamples) if bracket
                                       else None)
        result[key] = entry
    return result


def _bracketed(fixed: Estimate, raw: Estimate | None, digits: int = 4) -> dict:
    """An estimate as served: with the rater's range when there were double reads (see `estimate`)."""
    out = {**fixed.as_dict(digits), "rater_low": None, "rater_high": None}
    if raw is None or fixed.estimate is None or raw.estimate is None:
        return out
    ends = sorted((fixed.estimate, raw.estimate))
    out.update(estimate=round((ends[0] + ends[1]) / 2, digits), low=round(min(fixed.low, raw.low), digits),
               high=round(max(fixed.high, raw.high), digits), rater_low=round(ends[0], digits),
               rater_high=round(ends[1], digits))
    return out
