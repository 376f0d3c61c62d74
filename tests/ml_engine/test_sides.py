"""Left and right: the phantoms and the real example CT held to one rule, in RAS+ world coordinates.

RAS+ puts +x toward the patient's right (DESIGN.md), so the organs of the patient's right lie at larger x. The
phantoms were once mirrored (liver at x = -24 mm, spleen at +37 mm, while the real CT has them at +64 and -113): these
tests hold the phantoms, as arrays and as written NIfTI files, and ../shared/data/ct_example to the same ordering.
"""

from __future__ import annotations

from collections.abc import Mapping

import nibabel as nib
import numpy as np
import pytest

from ml_engine.phantoms import ORGANS, make_phantom, write_phantom_case
from tests.conftest import CT_EXAMPLE

# In TotalSegmentator v2's `total` class map (the example's README): the organs the rule names.
REAL_VALUES = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
               "aorta": 52, "postcava": 63}
RIGHT = ("liver", "kidney_right", "gallbladder")  # the patient's right
LEFT = ("spleen", "kidney_left", "stomach")  # the patient's left


def world_centroids(labels: np.ndarray, affine: np.ndarray, values: Mapping[str, int]) -> dict[str, np.ndarray]:
    """{organ: (3,) centroid in world mm} of a label map (x, y, z) through its (4, 4) voxel-to-world affine."""
    out = {}
    for organ, value in values.items():
        index = np.argwhere(labels == value)
        assert index.size, f"{organ} (value {value}) is absent"
        out[organ] = affine[:3, :3] @ index.mean(axis=0) + affine[:3, 3]
    return out


def check_sides(c: Mapping[str, np.ndarray]) -> None:
    """The one rule, on world centroids (mm) in RAS+: every organ of the right at larger x than every organ of the
    left (liver and right kidney beyond spleen and left kidney), the IVC right of the aorta, the aorta between."""
    x = {organ: float(c[organ][0]) for organ in c}
    for right in RIGHT:
        for left in LEFT:
            assert x[right] > x[left], f"{right} at x = {x[right]:.1f} mm is not right of {left} at {x[left]:.1f} mm"
    assert x["postcava"] > x["aorta"], f"postcava at x = {x['postcava']:.1f} mm, aorta at {x['aorta']:.1f} mm"
    assert x["liver"] > x["aorta"] > x["spleen"], x
    assert x["kidney_right"] > x["aorta"] > x["kidney_left"], x


def test_the_rule_fails_on_mirrored_anatomy():
    """check_sides can fail: the same centroids with x negated (the old phantoms' mistake) are refused."""
    phantom = make_phantom(0, shape=(48, 48, 32), troubles=[])
    c = world_centroids(phantom.labels, phantom.affine, {o: i + 1 for i, o in enumerate(ORGANS)})
    check_sides(c)
    mirrored = {organ: centre * np.array([-1.0, 1.0, 1.0]) for organ, centre in c.items()}
    with pytest.raises(AssertionError, match="is not right of"):
        check_sides(mirrored)
    swapped = dict(c, postcava=c["aorta"], aorta=c["postcava"])
    with pytest.raises(AssertionError, match="postcava"):
        check_sides(swapped)


@pytest.mark.parametrize(("shape", "spacing"), [((96, 96, 64), (1.5, 1.5, 2.5)), ((33, 40, 24), (2.0, 1.7, 3.0)),
                                                 ((64, 64, 48), (0.8, 0.8, 1.25))])
def test_phantom_sides_match_the_real_ct(shape, spacing):
    for seed in range(6):
        phantom = make_phantom(seed, shape=shape, spacing=spacing)
        assert nib.aff2axcodes(phantom.affine) == ("R", "A", "S")
        c = world_centroids(phantom.labels, phantom.affine, {o: i + 1 for i, o in enumerate(ORGANS)})
        check_sides(c)
        assert c["liver"][0] > 0 > c["spleen"][0]  # the body is centred on x = 0
        assert c["kidney_right"][0] > 0 > c["kidney_left"][0]


def test_pancreas_tail_lies_on_the_patient_left_when_swollen():
    """The enlarged tail trouble follows the pancreas to the patient's left (smaller x), by the spleen."""
    plain = make_phantom(21, troubles=[])
    swollen = make_phantom(21, troubles=["enlarged_pancreas_tail"])
    x = (np.arange(plain.shape[0]) * plain.affine[0, 0] + plain.affine[0, 3]).reshape(-1, 1, 1)
    grown = swollen.organ_mask("pancreas") & ~plain.organ_mask("pancreas")
    assert grown.sum() > 100
    spleen_x = world_centroids(plain.labels, plain.affine, {"spleen": 1})["spleen"][0]
    head_x = float(np.broadcast_to(x, plain.shape)[plain.organ_mask("pancreas")].max())  # the head's right edge
    grown_x = float(np.broadcast_to(x, plain.shape)[grown].mean())
    assert grown_x < 0 and grown_x < head_x - 40, (grown_x, head_x)
    assert abs(grown_x - spleen_x) < abs(grown_x - head_x)


def test_written_phantom_files_keep_the_sides(tmp_path):
    """Through NIfTI: the file's affine, read back by nibabel, puts the right kidney on the patient's right."""
    case = write_phantom_case(make_phantom(5, shape=(48, 48, 32)), tmp_path)
    c = {}
    for organ in REAL_VALUES:
        image = nib.load(case / "segmentations" / f"{organ}.nii.gz")
        c.update(world_centroids(np.asarray(image.dataobj), image.affine, {organ: 1}))
    assert nib.aff2axcodes(nib.load(case / "ct.nii.gz").affine) == ("R", "A", "S")
    check_sides(c)


def test_real_example_ct_obeys_the_same_rule(ct_example):
    """../shared/data/ct_example (TotalSegmentator's segmentations of a real CT) by the same check_sides."""
    for name in ("seg_model_a.nii.gz", "seg_model_b.nii.gz"):
        image = nib.load(CT_EXAMPLE / name)
        c = world_centroids(np.asarray(image.dataobj), image.affine, REAL_VALUES)
        check_sides(c)
        # The figures: liver at x = +64 mm, spleen at -113 mm (world, RAS+).
        assert c["liver"][0] == pytest.approx(64, abs=3) and c["spleen"][0] == pytest.approx(-113, abs=3), name


def test_simulated_errors_sit_on_the_lateral_sides():
    """The simulated ensemble's spleen boundary shift and liver bite land on each organ's lateral side: the spleen's
    toward smaller x (patient's left), the liver's toward larger x (patient's right)."""
    from ml_engine.attention.simulate import simulate_organ

    phantom = make_phantom(2, shape=(64, 64, 48), troubles=[])
    x = np.arange(phantom.shape[0]).reshape(-1, 1, 1) * phantom.affine[0, 0] + phantom.affine[0, 3]
    x = np.broadcast_to(x, phantom.shape)
    for organ, error, lateral_sign in (("spleen", "boundary_shift", -1.0), ("liver", "liver_bite", 1.0)):
        truth = phantom.organ_mask(organ)
        _, injected = simulate_organ(truth, spacing=phantom.spacing, seed=1, errors=[error], organ=organ)
        assert injected.sum() > 20, organ
        organ_x, error_x = float(x[truth].mean()), float(x[injected].mean())
        assert lateral_sign * (error_x - organ_x) > 5.0, (organ, organ_x, error_x)
