"""The one label vocabulary (ml_engine.labels): label sets, aliases, the label map format, translation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml_engine.labels import (
    ABDOMENATLAS,
    LABEL_MAPS_DIR,
    LABEL_SETS_FILE,
    ORGANS,
    LabelMap,
    LabelMapError,
    label_set,
    read_label_sets,
    translate,
)
from ml_engine.phantoms import ORGANS as PHANTOM_ORGANS
from ml_engine.phantoms import organ_value


def test_label_sets_come_from_the_fixture():
    sets = {entry["name"]: entry for entry in read_label_sets()}
    assert set(sets) == {"abdomenatlas", "word", "btcv", "flare"}
    assert ABDOMENATLAS.values == {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5,
                                   "stomach": 6, "aorta": 7, "postcava": 8, "pancreas": 9}
    assert ORGANS == PHANTOM_ORGANS == tuple(ABDOMENATLAS.values)
    assert all(organ_value(o) == v for o, v in ABDOMENATLAS.values.items())  # the phantoms' values are the set's
    word = label_set("word")
    assert word.values["liver"] == 1 and word.organs[:2] == ("liver", "spleen")
    assert LABEL_SETS_FILE.parent == LABEL_MAPS_DIR.parent
    with pytest.raises(ValueError, match="unknown label set 'nope'.*abdomenatlas"):
        label_set("nope")


def test_aliases_resolve_to_canonical_organs():
    assert ABDOMENATLAS.resolve("Inferior Vena Cava") == "postcava"
    assert ABDOMENATLAS.resolve("kidney-l") == "kidney_left"
    assert ABDOMENATLAS.resolve("LIVER") == "liver"
    assert ABDOMENATLAS.resolve("appendix") is None
    assert ABDOMENATLAS.organ_of(8) == "postcava"
    with pytest.raises(KeyError):
        ABDOMENATLAS.organ_of(10)


def test_the_shipped_totalsegmentator_map_by_name_and_by_file():
    by_name = LabelMap.load("totalsegmentator", ABDOMENATLAS)
    by_file = LabelMap.load(LABEL_MAPS_DIR / "totalsegmentator.json", ABDOMENATLAS)
    assert by_name.values == by_file.values == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 9, 52: 7, 63: 8}
    assert by_name.unmapped == "background" and by_name.organs_covered(ABDOMENATLAS) == set(ORGANS)


def test_the_label_sets_own_name_is_the_identity():
    identity = LabelMap.load("abdomenatlas", ABDOMENATLAS)
    data = np.array([[[0, 5, 9]]], dtype=np.int16)
    assert translate(data, ABDOMENATLAS, identity)[0].tolist() == [[[0, 5, 9]]]
    with pytest.raises(LabelMapError, match="label values 10 are not in the abdomenatlas label set"):
        translate(np.array([[[10]]]), ABDOMENATLAS, identity)


def test_flat_shorthand_names_aliases_and_null(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"3": "ivc", "4": None, "Liver Mask": "liver"}))
    mapping = LabelMap.load(path, ABDOMENATLAS)
    assert mapping.values == {3: 8, 4: 0} and mapping.unmapped == "error"
    assert mapping.organ_for_name("liver mask", ABDOMENATLAS) == "liver"
    label, present = translate(np.array([[[3, 4, 0]]], dtype=np.uint8), ABDOMENATLAS, mapping)
    assert label.tolist() == [[[8, 0, 0]]] and present == {"postcava"}
    with pytest.raises(LabelMapError, match=f"label values 7 are not in {path}"):
        translate(np.array([[[7]]], dtype=np.uint8), ABDOMENATLAS, mapping)


def test_unmapped_background_drops_unlisted_values(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"labels": {"20": "liver"}, "unmapped": "background"}))
    label, present = translate(np.array([[[20, 21, 0]]], dtype=np.uint16), ABDOMENATLAS,
                               LabelMap.load(path, ABDOMENATLAS))
    assert label.dtype == np.uint8 and label.tolist() == [[[5, 0, 0]]] and present == {"liver"}


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "map.json: not valid JSON"),
    ("[1, 2]", "map.json: expected a JSON object"),
    ('{"1": "appendix"}', "map.json: key '1' maps to 'appendix', which is not an organ"),
    ('{"labels": [1]}', "map.json: 'labels' must be an object"),
    ('{"labels": {}, "unmapped": "ignore"}', "map.json: 'unmapped' must be"),
    ('{"0": "liver"}', "map.json: key '0': foreign values must be positive"),
    ('{"liver": 5}', "map.json: key 'liver' maps to 5"),  # the retired {organ: value} form is refused by name
])
def test_bad_maps_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(LabelMapError, match=message):
        LabelMap.load(path, ABDOMENATLAS)


def test_a_missing_map_lists_the_names_it_knows(tmp_path):
    with pytest.raises(LabelMapError, match="absent.json: not a readable JSON label map .*totalsegmentator"):
        LabelMap.load(tmp_path / "absent.json", ABDOMENATLAS)


def test_labels_without_a_map_must_be_the_label_sets_values():
    with pytest.raises(LabelMapError, match=r"label values 42 are not in the label set \(values 1-9\)"):
        translate(np.array([[[1, 42]]], dtype=np.uint8), ABDOMENATLAS)
    with pytest.raises(LabelMapError, match="negative"):
        translate(np.array([[[-1]]], dtype=np.int16), ABDOMENATLAS)
    with pytest.raises(LabelMapError, match="non-integer"):
        translate(np.array([[[1.5]]], dtype=np.float32), ABDOMENATLAS)
