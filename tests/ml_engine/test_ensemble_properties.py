"""Property tests: ml_engine.ensemble.EnsembleAverage against a slow reference written from its docstring.

The rule, as DESIGN.md and the docstring state it: each organ's members (uint8, p x 255) are averaged; the organ's mask
is mean probability > 0.5; mean is the average rounded to uint8 (halves down, so that mean > 127 is the mask); the
pseudo-label gives a voxel inside several masks to the organ with the highest exact mean, an exact tie to the organ
with the smaller value, whatever order the organs are added in. The reference works voxel by voxel in exact fractions.
The attention maps' own pseudo-label and overlap (ml_engine.attention) must agree with it too.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_engine.attention import overlap_masks, pseudo_label
from ml_engine.ensemble import MAX_MEMBERS, EnsembleAverage

# values near the threshold (127.5), the ends, and anything: exact ties at 0.5 come from pairs like 127 + 128
PROBABILITY = st.one_of(st.sampled_from([0, 1, 126, 127, 128, 129, 254, 255]), st.integers(0, 255))


def reference(shape, values, soft_by_organ):
    """(mean, mask) per organ and the label, voxel by voxel, in exact fractions: the docstring's rule."""
    means, masks = {}, {}
    for organ, soft in soft_by_organ.items():
        mean = np.zeros(shape, dtype=np.uint8)
        mask = np.zeros(shape, dtype=bool)
        for index in itertools.product(*(range(n) for n in shape)):
            exact = Fraction(sum(int(a[index]) for a in soft.values()), len(soft))  # p x 255
            mask[index] = exact / 255 > Fraction(1, 2)
            mean[index] = math.ceil(exact - Fraction(1, 2))  # round half down: ceil(x - 1/2)
        means[organ], masks[organ] = mean, mask
    label = np.zeros(shape, dtype=np.uint8)
    for index in itertools.product(*(range(n) for n in shape)):
        inside = [o for o in soft_by_organ if masks[o][index]]
        if inside:
            exact = {o: Fraction(sum(int(a[index]) for a in soft_by_organ[o].values()), len(soft_by_organ[o]))
                     for o in inside}
            top = max(exact.values())
            label[index] = min(values[o] for o in inside if exact[o] == top)
    return means, masks, label


@st.composite
def ensembles(draw, max_members=4):
    """(shape, values, {organ: {member: uint8 array}}, order in which the organs are added)."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=3, max_size=3)))
    n_organs = draw(st.integers(1, 5))
    organs = [f"organ{i}" for i in range(n_organs)]
    values = dict(zip(organs, draw(st.lists(st.integers(1, 255), min_size=n_organs, max_size=n_organs,
                                            unique=True)), strict=True))
    members = [f"m{i}" for i in range(draw(st.integers(1, max_members)))]
    # a small pool of arrays that organs and members share, so that whole organs tie exactly
    arrays = st.lists(PROBABILITY, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(
        lambda flat: np.array(flat, dtype=np.uint8).reshape(shape))
    pool = draw(st.lists(arrays, min_size=1, max_size=3))
    soft = {}
    for organ in organs:
        chosen = draw(st.lists(st.sampled_from(members), min_size=1, max_size=len(members), unique=True))
        soft[organ] = {m: pool[draw(st.integers(0, len(pool) - 1))] if draw(st.booleans()) else draw(arrays)
                       for m in chosen}
    order = draw(st.permutations(organs))
    return shape, values, soft, order


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ensembles())
def test_the_ensemble_agrees_with_the_reference(case):
    shape, values, soft, order = case
    means, masks, label = reference(shape, values, soft)
    average = EnsembleAverage(shape, values)
    for organ in order:
        out = average.add(organ, soft[organ])
        assert out.value == values[organ]
        np.testing.assert_array_equal(out.mask, masks[organ], err_msg=f"{organ} mask")
        np.testing.assert_array_equal(out.mean, means[organ], err_msg=f"{organ} mean")
        # the attention maps' pseudo-label is the same mask (ml_engine.attention: overlap, the heatmap's box)
        stack = np.stack(list(soft[organ].values()))
        np.testing.assert_array_equal(pseudo_label(stack), masks[organ], err_msg=f"{organ} attention mask")
    np.testing.assert_array_equal(average.label, label)
    # overlap: a voxel inside the masks of two organs or more
    overlap = overlap_masks(masks)
    for organ in soft:
        shared = sum(m.astype(int) for m in masks.values()) >= 2
        np.testing.assert_array_equal(overlap[organ], masks[organ] & shared)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(2, MAX_MEMBERS), a=st.integers(0, 255), b=st.integers(0, 255), split=st.data())
def test_many_members_compare_exactly(n, a, b, split):
    """Up to MAX_MEMBERS members: two organs whose exact means differ by as little as 1 / (n n2) go to the right one,
    equal means to the smaller value, and 0.5 exactly is outside (the float32 division's claim of exactness)."""
    k = split.draw(st.integers(0, n))  # organ one: k members say a, the rest b
    one = [np.full((1, 1, 2), a, np.uint8)] * k + [np.full((1, 1, 2), b, np.uint8)] * (n - k)
    n2 = split.draw(st.integers(1, MAX_MEMBERS))  # organs may have different member counts
    k2 = split.draw(st.integers(0, n2))
    two = [np.full((1, 1, 2), a, np.uint8)] * k2 + [np.full((1, 1, 2), b, np.uint8)] * (n2 - k2)
    soft = {"one": {f"m{i}": x for i, x in enumerate(one)}, "two": {f"m{i}": x for i, x in enumerate(two)}}
    values = {"one": 9, "two": 4}
    _, masks, label = reference((1, 1, 2), values, soft)
    for order in (("one", "two"), ("two", "one")):
        average = EnsembleAverage((1, 1, 2), values)
        for organ in order:
            np.testing.assert_array_equal(average.add(organ, soft[organ]).mask, masks[organ])
        np.testing.assert_array_equal(average.label, label)


def test_the_reference_itself_on_hand_cases():
    """The reference's own rule on cases worked by hand: 127 + 128 is 0.5 exactly (outside); a tie between organs goes
    to the smaller value; a higher mean wins over a smaller value."""
    def one(*ps):
        return {f"m{i}": np.full((1, 1, 1), p, np.uint8) for i, p in enumerate(ps)}

    means, masks, label = reference((1, 1, 1), {"a": 3, "b": 2}, {"a": one(127, 128), "b": one(200)})
    assert not masks["a"][0, 0, 0] and means["a"][0, 0, 0] == 127 and label[0, 0, 0] == 2
    _, _, label = reference((1, 1, 1), {"a": 3, "b": 2}, {"a": one(200, 200), "b": one(200)})
    assert label[0, 0, 0] == 2
    _, _, label = reference((1, 1, 1), {"a": 3, "b": 2}, {"a": one(201, 200), "b": one(200)})
    assert label[0, 0, 0] == 3


@pytest.mark.parametrize("n", [1, 2, 3, MAX_MEMBERS])
def test_exactly_half_is_outside_and_just_above_is_inside(n):
    total = 255 * n // 2  # the largest total not above half (255 n / 2)
    base = total // n
    arrays = {f"m{i}": np.full((1, 1, 1), base + (1 if i < total - base * n else 0), np.uint8) for i in range(n)}
    assert sum(int(a[0, 0, 0]) for a in arrays.values()) == total
    assert not EnsembleAverage((1, 1, 1), {"x": 1}).add("x", arrays).mask[0, 0, 0]
    arrays["m0"] = arrays["m0"] + np.uint8(1)
    assert EnsembleAverage((1, 1, 1), {"x": 1}).add("x", arrays).mask[0, 0, 0]
