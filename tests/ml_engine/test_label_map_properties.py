"""Property tests: label maps (ml_engine.labels) translate foreign values onto a label set exactly as the map says.

- a map that permutes some of a label set's values, then its inverse, gives the original volume back;
- any map (foreign values of any size, null targets) agrees with a per-voxel reference: listed values land on their
  organ (or background for null), unlisted non-zero values on background or LabelMapError, as "unmapped" says;
- a map naming an organ the label set lacks, a non-positive value or an unknown "unmapped" is refused; several keys
  naming one organ are accepted (they merge: the module docstring);
- the shipped maps load against the label set they translate into, and every target is one of its organs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml_engine.labels import (
    ABDOMENATLAS,
    LABEL_MAPS_DIR,
    LabelMap,
    LabelMapError,
    integer_labels,
    label_set,
    read_label_sets,
    translate,
)

LABEL_SETS = [entry["name"] for entry in read_label_sets()]
SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 3))


def spelling(draw, organs, organ: str) -> str:
    """The organ's canonical name or one of its aliases, in some capitalisation (targets are resolved by normalise)."""
    names = [organ, *(alias for alias, target in organs.aliases.items() if target == organ)]
    name = draw(st.sampled_from(names))
    return name.upper() if draw(st.booleans()) else name


@st.composite
def permutation_maps(draw):
    """(label set, {foreign value: organ value} permuting a subset of its values, the map's JSON, its inverse's)."""
    organs = label_set(draw(st.sampled_from(LABEL_SETS)))
    subset = draw(st.lists(st.sampled_from(list(organs.values.values())), min_size=1, unique=True))
    image = draw(st.permutations(subset))
    forward = dict(zip(subset, image, strict=True))
    raw = {str(k): spelling(draw, organs, organs.organ_of(v)) for k, v in forward.items()}
    inverse = {str(v): spelling(draw, organs, organs.organ_of(k)) for k, v in forward.items()}
    return organs, forward, raw, inverse


@settings(max_examples=150, deadline=None, derandomize=True)
@given(permutation_maps(), SHAPES, st.data())
def test_a_permutation_and_its_inverse_round_trip(maps, shape, data):
    organs, forward, raw, inverse = maps
    volume = np.array(data.draw(st.lists(st.sampled_from([0, *forward]), min_size=int(np.prod(shape)),
                                         max_size=int(np.prod(shape)))), dtype=np.uint8).reshape(shape)
    there, present = translate(volume, organs, LabelMap.parse({"labels": raw}, organs, source="forward"))
    expected = np.vectorize(lambda v: forward.get(int(v), 0), otypes=[np.uint8])(volume)
    np.testing.assert_array_equal(there, expected)
    assert present == {organs.organ_of(int(v)) for v in np.unique(expected) if v}
    back, _ = translate(there, organs, LabelMap.parse(inverse, organs, source="inverse"))  # the flat shorthand
    np.testing.assert_array_equal(back, volume)


FOREIGN = st.one_of(st.integers(1, 300), st.integers(1, 1 << 40))  # small values, and huge ones (int64 labels)


@st.composite
def foreign_maps(draw):
    """(label set, {foreign value: organ or None}, unmapped, values the map does not list)."""
    organs = label_set(draw(st.sampled_from(LABEL_SETS)))
    keys = draw(st.lists(FOREIGN, min_size=1, max_size=8, unique=True))
    targets = draw(st.lists(st.sampled_from(list(organs.values)), min_size=len(keys), max_size=len(keys), unique=True))
    nulls = draw(st.lists(st.booleans(), min_size=len(keys), max_size=len(keys)))
    mapping = {k: (None if null else t) for k, t, null in zip(keys, targets, nulls, strict=True)}
    unlisted = draw(st.lists(FOREIGN.filter(lambda v: v not in mapping), max_size=3, unique=True))
    return organs, mapping, draw(st.sampled_from(["error", "background"])), unlisted


@settings(max_examples=200, deadline=None, derandomize=True)
@given(foreign_maps(), SHAPES, st.data())
def test_translation_agrees_with_a_per_voxel_reference(maps, shape, data):
    organs, mapping, unmapped, unlisted = maps
    label_map = LabelMap.parse({"labels": {str(k): v for k, v in mapping.items()}, "unmapped": unmapped}, organs,
                               source="map.json")
    pool = [0, *mapping, *unlisted]
    flat = data.draw(st.lists(st.sampled_from(pool), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    volume = np.array(flat, dtype=np.int64).reshape(shape)
    if unmapped == "error" and any(v in unlisted for v in flat):
        with pytest.raises(LabelMapError, match="not in map.json"):
            translate(volume, organs, label_map)
        return
    out, present = translate(volume, organs, label_map)
    expected = np.zeros(shape, dtype=np.uint8)
    for index, v in np.ndenumerate(volume):
        organ = mapping.get(int(v))
        expected[index] = organs.values[organ] if organ else 0
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8
    assert present == {mapping[v] for v in flat if mapping.get(v)}
    # the way back, on the values the map sends to an organ (injective there): the inverse gives the original
    inverse = {organs.values[organ]: foreign for foreign, organ in mapping.items() if organ}
    onto_organs = np.isin(volume, list(inverse.values()))
    back = np.vectorize(lambda v: inverse.get(int(v), 0), otypes=[np.int64])(out)
    np.testing.assert_array_equal(back[onto_organs], volume[onto_organs])
    assert not out[~onto_organs].any()


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.sampled_from(LABEL_SETS), st.text(min_size=1, max_size=12), st.integers(-5, 0))
def test_bad_maps_are_refused(name, stranger, bad_value):
    organs = label_set(name)
    if organs.resolve(stranger) is None:
        with pytest.raises(LabelMapError, match="not an organ of the label set"):
            LabelMap.parse({"7": stranger}, organs, source="m.json")
    with pytest.raises(LabelMapError, match="positive integers"):
        LabelMap.parse({str(bad_value): organs.organs[0]}, organs, source="m.json")
    with pytest.raises(LabelMapError, match="'unmapped' must be"):
        LabelMap.parse({"labels": {"7": None}, "unmapped": stranger}, organs, source="m.json")


def test_several_keys_may_name_one_organ():
    """Not injective is allowed: foreign labels merge into one organ (e.g. an organ and its lesion)."""
    label_map = LabelMap.parse({"1": "liver", "2": "liver", "3": None, "4": None}, ABDOMENATLAS, source="m.json")
    out, present = translate(np.array([[[1, 2, 3, 4, 0]]]), ABDOMENATLAS, label_map)
    assert out.tolist() == [[[5, 5, 0, 0, 0]]] and present == {"liver"}


@pytest.mark.parametrize("path", sorted(LABEL_MAPS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_the_shipped_maps_fit_the_label_set_they_translate_into(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    label_map = LabelMap.load(path.stem, ABDOMENATLAS)  # by name, as `import_cases --label-map NAME` loads it
    assert label_map.unmapped in ("error", "background")
    for key, target in raw["labels"].items():
        assert target is None or ABDOMENATLAS.resolve(target) is not None, (key, target)
        if key.isdigit():
            want = ABDOMENATLAS.values[ABDOMENATLAS.resolve(target)] if target else 0
            assert label_map.values[int(key)] == want, key
        else:
            assert label_map.organ_for_name(key, ABDOMENATLAS) == (ABDOMENATLAS.resolve(target) if target else None)
    # no two listed values land on one organ (the shipped maps are injective where they name organs)
    landed = [v for v in label_map.values.values() if v]
    assert len(landed) == len(set(landed)), path.stem
    assert label_map.organs_covered(ABDOMENATLAS) <= set(ABDOMENATLAS.values)
    every = np.array(sorted(label_map.values), dtype=np.int64).reshape(1, 1, -1)
    out, present = translate(every, ABDOMENATLAS, label_map)
    np.testing.assert_array_equal(out.ravel(), [label_map.values[v] for v in sorted(label_map.values)])
    assert present == {ABDOMENATLAS.organ_of(v) for v in landed}


@pytest.mark.parametrize("name", LABEL_SETS)
def test_a_label_sets_own_name_is_the_identity(name):
    organs = label_set(name)
    values = np.array([0, *organs.values.values()], dtype=np.uint8).reshape(1, 1, -1)
    out, present = translate(values, organs, LabelMap.load(name, organs))
    np.testing.assert_array_equal(out, values)
    assert present == set(organs.values)
    assert integer_labels(values) is values
