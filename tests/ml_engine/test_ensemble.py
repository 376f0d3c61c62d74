"""The one rule by which members combine into a pseudo-label (ml_engine.ensemble.EnsembleAverage)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_engine.attention.maps import pseudo_label
from ml_engine.ensemble import EnsembleAverage, mean_probability, member_votes, pseudo_mask

VALUES = {"spleen": 1, "liver": 5, "stomach": 6}


def voxels(*probabilities: int) -> np.ndarray:
    """(1, 1, n) uint8 soft prediction, p x 255."""
    return np.array([[list(probabilities)]], dtype=np.uint8)


def combine(per_organ: dict[str, list[np.ndarray]], values=VALUES) -> tuple[np.ndarray, dict]:
    shape = next(iter(per_organ.values()))[0].shape
    average = EnsembleAverage(shape, values)
    outs = {organ: average.add(organ, {f"m{i}": a for i, a in enumerate(arrays)})
            for organ, arrays in per_organ.items()}
    return average.label, outs


def test_mean_and_mask_are_exact():
    _, outs = combine({"liver": [voxels(200, 100, 0, 128), voxels(100, 100, 255, 128)]})
    liver = outs["liver"]
    # rounded half down for storage: 255 / 2 = 127.5 is not > 0.5 x 255, and its stored mean (127) is not > 127
    assert liver.mean.tolist() == [[[150, 100, 127, 128]]]
    assert liver.mask.tolist() == [[[True, False, False, True]]]
    np.testing.assert_array_equal(liver.mean > 127, liver.mask)
    assert liver.value == 5 and liver.mask.dtype == bool


def test_overlap_goes_to_the_highest_exact_mean_across_member_counts():
    """Liver: two members (mean 200); stomach: one member (210). A rule on the members' sum (400 > 210) would give
    the voxel to the liver; the exact mean gives it to the stomach."""
    label, _ = combine({"liver": [voxels(200), voxels(200)], "stomach": [voxels(210)]})
    assert label.tolist() == [[[6]]]


def test_overlap_is_not_decided_by_the_rounded_mean():
    """Both round to 150 (751 / 5 = 150.2, 752 / 5 = 150.4): the exact mean gives the voxel to the stomach, where a
    rule on the rounded mean keeps the liver."""
    label, outs = combine({"liver": [voxels(151), *[voxels(150)] * 4],
                           "stomach": [voxels(151), voxels(151), *[voxels(150)] * 3]})
    assert outs["liver"].mean.tolist() == outs["stomach"].mean.tolist() == [[[150]]]
    assert label.tolist() == [[[6]]]


def test_an_exact_tie_goes_to_the_smaller_value_in_any_order():
    """300 / 2 == 150 / 1: equal fractions tie exactly; the organ earlier in the label set (smaller value) wins,
    whichever is added first."""
    tie = {"liver": [voxels(150, 200)], "spleen": [voxels(160, 140), voxels(140, 140)]}
    label, _ = combine(tie)
    assert label.tolist() == [[[1, 5]]]
    label, _ = combine(dict(reversed(tie.items())))
    assert label.tolist() == [[[1, 5]]]


def test_background_and_single_organs():
    label, outs = combine({"spleen": [voxels(255, 0, 100)], "liver": [voxels(0, 0, 255)]})
    assert label.tolist() == [[[1, 0, 5]]]
    assert outs["spleen"].mask.tolist() == [[[True, False, False]]]


def test_refusals():
    average = EnsembleAverage((1, 1, 2), VALUES)
    with pytest.raises(ValueError, match="liver: 0 members predict it"):
        average.add("liver", {})
    with pytest.raises(ValueError, match="expected uint8"):
        average.add("liver", {"m": np.zeros((1, 1, 3), np.uint8)})
    with pytest.raises(ValueError, match="does not fit"):
        EnsembleAverage((1, 1, 2), {"liver": 300}).add("liver", {"m": np.zeros((1, 1, 2), np.uint8)})


def test_member_votes_cover_the_listed_organs():
    label = np.array([[[5, 6, 0, 5]]], dtype=np.uint8)
    votes = member_votes(label, VALUES, ["liver", "spleen"])
    assert set(votes) == {"liver", "spleen"}  # the stomach is not covered: no vote, though present
    assert votes["liver"].tolist() == [[[255, 0, 0, 255]]] and not votes["spleen"].any()


def test_the_served_mean_above_127_is_the_mask_for_every_sum():
    """For every member count and every possible sum, the uint8 mean (what the workspace thresholds at > 127) and the
    exact mask agree, ties (an exact mean of 127.5) included; the attention's pseudo-label is the same rule."""
    for n in (1, 2, 3, 4, 5, 8, 255, 256):
        totals = np.arange(255 * n + 1)
        members = [np.minimum(np.maximum(totals - 255 * k, 0), 255).astype(np.uint8) for k in range(n)]
        assert np.array_equal(sum(m.astype(np.int64) for m in members), totals)
        mean = mean_probability(members)
        mask = pseudo_mask(members)
        np.testing.assert_array_equal(mask, totals * 2 > 255 * n)
        np.testing.assert_array_equal(mean > 127, mask)
        assert np.abs(mean.astype(np.float64) - totals / n).max() <= 0.5  # still the nearest whole number
        np.testing.assert_array_equal(pseudo_label(np.stack(members)), mask)
        for threshold in (0.1, 0.3, 0.9):
            np.testing.assert_array_equal(pseudo_mask(members, threshold), totals / n > threshold * 255)
    assert mean_probability([voxels(127), voxels(128)]).tolist() == [[[127]]]
    assert mean_probability([voxels(127), voxels(128), voxels(128)]).tolist() == [[[128]]]
    floats = np.array([[[[0.5, 0.6]]], [[[0.5, 0.5]]]], dtype=np.float32)
    assert pseudo_mask(floats).tolist() == [[[False, True]]] == pseudo_label(floats).tolist()
