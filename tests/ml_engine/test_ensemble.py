"""The one rule by which members combine into a pseudo-label (ml_engine.ensemble.EnsembleAverage)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_engine.ensemble import EnsembleAverage, member_votes

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
    assert liver.mean.tolist() == [[[150, 100, 128, 128]]]  # rounded, for storage
    # 255 / 2 = 127.5 is not > 0.5 x 255, though its rounded mean (128) would be
    assert liver.mask.tolist() == [[[True, False, False, True]]]
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
