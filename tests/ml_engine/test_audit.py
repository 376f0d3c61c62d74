"""ml_engine.audit: the stratified draw, Wilson's interval, the sample size for a width, the stratified estimates and
the rater-noise correction (issue 26; coverage on phantoms: benchmarks/simulate_audit.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_engine import audit as a


def test_wilson_matches_its_formula():
    low, high = a.wilson(0.0, 10)
    assert low == 0.0 and high == pytest.approx(a.Z95**2 / (10 + a.Z95**2), abs=1e-12)
    low, high = a.wilson(0.5, 100)
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_the_sample_size_is_the_smallest_for_the_width():
    n = a.sample_size(0.1, expected=0.1)
    assert a.wilson(0.1, n)[1] - a.wilson(0.1, n)[0] <= 0.1 < a.wilson(0.1, n - 1)[1] - a.wilson(0.1, n - 1)[0]
    assert a.sample_size(0.1, expected=0.1, population=50) < n  # a small frame needs fewer
    with pytest.raises(ValueError):
        a.sample_size(0, expected=0.1)


def test_allocation_is_proportional_with_two_per_stratum():
    assert a.allocate([40, 30, 20, 10], 20) == [8, 6, 4, 2]
    assert a.allocate([40, 3, 2, 1], 8) == [3, 2, 2, 1]  # two each as far as the strata hold, the rest by size
    assert a.allocate([5, 5, 5], 2) == [1, 1, 0]
    assert all(x <= s for x, s in zip(a.allocate([1, 1, 50], 30), [1, 1, 50], strict=True))


def test_the_draw_is_seeded_and_stratified():
    frame = {f"c{i}": float(i % 13) for i in range(60)}
    drawn, sizes = a.draw(frame, 12, seed=1)
    assert sizes == [10] * 6 and sorted(d.stratum for d in drawn) == [h for h in range(6) for _ in (0, 1)]
    assert a.draw(frame, 12, seed=1)[0] == drawn and a.draw(frame, 12, seed=2)[0] != drawn
    of = a.stratify(frame, strata=6, seed=1)
    top = [max(frame[n] for n in of if of[n] == h) for h in range(6)]
    low = [min(frame[n] for n in of if of[n] == h) for h in range(6)]
    assert all(top[h] <= low[h + 1] for h in range(5))


def test_a_census_has_no_uncertainty_and_strata_are_weighted():
    census = [a.Stratum(4, [1, 0, 0, 0]), a.Stratum(4, [1, 1, 0, 0])]
    e = a.stratified_share(census)
    assert (e.estimate, e.low, e.high) == (0.375, 0.375, 0.375)
    weighted = a.stratified_share([a.Stratum(90, [0, 0]), a.Stratum(10, [1, 1])])
    assert weighted.estimate == pytest.approx(0.1) and weighted.low < 0.1 < weighted.high
    mean = a.stratified_mean([a.Stratum(90, [0.9, 0.8, 0.85]), a.Stratum(10, [0.5, 0.6])], seed=3)
    assert mean.estimate == pytest.approx(0.9 * 0.85 + 0.1 * 0.55)
    assert mean.low < mean.estimate < mean.high
    assert a.stratified_mean([a.Stratum(90, [0.9, 0.8, 0.85]), a.Stratum(10, [0.5, 0.6])], seed=3) == mean


def test_a_stratum_with_one_read_is_merged():
    merged = a.collapse([a.Stratum(5, [1.0]), a.Stratum(5, [0.0, 1.0]), a.Stratum(5, [])])
    assert [(s.size, len(s.values)) for s in merged] == [(15, 3)]


def test_double_reads_are_corrected_for_the_rater():
    organs = ["liver"]
    ai_vs_read = a.Read(dice={"liver": 0.90}, changed_ml={"liver": 12.0}, nsd={"liver": 0.9})
    between = a.Read(dice={"liver": 0.96}, changed_ml={"liver": 8.0}, nsd={"liver": 0.98})
    fixed = a.corrected([ai_vs_read, ai_vs_read], between)
    assert fixed[0].dice["liver"] == pytest.approx(0.92) and fixed[0].changed_ml["liver"] == pytest.approx(8.0)
    values = a.case_values([ai_vs_read], organs, a.Thresholds(ml=10.0, dice=None))
    assert values["overall"]["needs"] == 1.0
    values = a.case_values([ai_vs_read, ai_vs_read], organs, a.Thresholds(ml=10.0, dice=None), between=between)
    assert values["overall"]["needs"] == 0.0 and values["liver"]["dice"] == pytest.approx(0.92)


def test_double_reads_give_the_range_the_rater_leaves_open():
    fixed = {"overall": {"needs": 0.0, "dice": 0.95, "needs_raw": 1.0, "dice_raw": 0.90}}
    plain = {"overall": {"needs": 0.0, "dice": 0.97}}
    e = a.estimate([10, 10], [(0, fixed), (0, fixed), (1, plain), (1, plain)], ["overall"], seed=0)["overall"]
    share = e["needs_correction"]
    assert (share["rater_low"], share["rater_high"]) == (0.0, 0.5) and share["estimate"] == 0.25
    assert share["low"] == 0.0 and share["high"] >= 0.5
    assert e["dice"]["rater_low"] == pytest.approx(0.935) and e["dice"]["rater_high"] == pytest.approx(0.96)
    single = a.estimate([10, 10], [(0, plain), (0, plain), (1, plain), (1, plain)], ["overall"])["overall"]
    assert single["dice"]["rater_low"] is None and single["dice"]["estimate"] == 0.97


def test_estimate_extrapolates_to_the_frame():
    reads = [(0, {"overall": {"needs": 1.0, "dice": 0.8}}), (0, {"overall": {"needs": 0.0, "dice": 1.0}}),
             (1, {"overall": {"needs": 0.0, "dice": 1.0}}), (1, {"overall": {"needs": 0.0, "dice": 0.9}})]
    e = a.estimate([50, 50], reads, ["overall"], seed=0)["overall"]
    assert e["needs_correction"]["estimate"] == 0.25 and e["cases_needing_correction"]["estimate"] == 25.0
    assert e["cases_needing_correction"]["high"] == pytest.approx(100 * e["needs_correction"]["high"], abs=0.1)
    assert e["nsd"]["n"] == 0 and e["nsd"]["estimate"] is None
    assert np.isclose(e["dice"]["estimate"], 0.5 * 0.9 + 0.5 * 0.95)
