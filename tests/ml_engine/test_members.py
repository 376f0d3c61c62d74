"""ml_engine.members without Django: classes of a model mapped to organs, probabilities turned into soft votes,
nnU-Net dataset.json classes (softmax and region-based), a member's spec stored and read back."""

from __future__ import annotations

import numpy as np
import pytest

from ml_engine.labels import ABDOMENATLAS, LabelMap
from ml_engine.members import MemberError, MemberSpec, map_classes, organ_votes
from ml_engine.members.nnunet import model_classes


def test_classes_map_by_the_label_map_then_by_name_and_alias():
    classes = {1: "Leber", 2: "right kidney", 3: "IVC", 4: "tumor"}
    mapping = LabelMap.parse({"labels": {"Leber": "liver", "4": None}, "unmapped": "background"}, ABDOMENATLAS,
                             source="map.json")
    assert map_classes(classes, ABDOMENATLAS, mapping, source="m") == {1: "liver", 2: "kidney_right", 3: "postcava"}
    assert map_classes(classes, ABDOMENATLAS, None, source="m") == {2: "kidney_right", 3: "postcava"}
    strict = LabelMap.parse({"Leber": "liver"}, ABDOMENATLAS, source="strict.json")
    with pytest.raises(MemberError, match="m: class 4 \\('tumor'\\): .*nor in strict.json"):
        map_classes(classes, ABDOMENATLAS, strict, source="m")
    with pytest.raises(MemberError, match="none of the model's classes \\(1 Leber\\) maps to an organ"):
        map_classes({1: "Leber"}, ABDOMENATLAS, None, source="m")


def test_probabilities_become_soft_votes_and_classes_of_one_organ_add_up():
    p = {1: np.array([0.0, 0.25, 1.0]), 2: np.array([0.5, 0.5, 0.2]), 3: np.array([0.6, 0.6, 0.0])}
    votes = organ_votes(p, {1: "liver", 2: "kidney_right", 3: "kidney_right"})
    assert votes["liver"].dtype == np.uint8 and votes["liver"].tolist() == [0, 64, 255]
    assert votes["kidney_right"].tolist() == [255, 255, 51]  # 1.1 clipped to 1


def test_nnunet_dataset_json_classes():
    assert model_classes({"labels": {"background": 0, "liver": 1, "spleen": 2}}, "d") == (
        {1: "liver", 2: "spleen"}, False)
    assert model_classes({"labels": {"background": 0, "kidney": [1, 2], "tumour": 2}}, "d") == (
        {1: "kidney", 2: "tumour"}, True)
    with pytest.raises(MemberError, match="d: label 'liver' has value 'one'"):
        model_classes({"labels": {"background": 0, "liver": "one"}}, "d")
    with pytest.raises(MemberError, match="d: no 'labels' object"):
        model_classes({}, "d")


def test_a_spec_survives_storage():
    spec = MemberSpec(kind="nnunetv2", folder="/m", folds=("0", "1"), use_mirroring=False, tile_step_size=0.75)
    assert MemberSpec.from_dict(spec.as_dict()) == spec
    assert MemberSpec.from_dict({"kind": "totalsegmentator", "task": "fast"}).task == "fast"
