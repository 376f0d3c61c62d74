"""Dice, NSD, HD95, ASSD (DeepMind definitions, FLARE empty-mask rules) and attention sensitivity / precision."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from ml_engine.metrics import (
    FLARE_TOLERANCE_MM,
    assd,
    attention_detection,
    dice,
    error_region,
    evaluate_masks,
    hd95,
    mean_detection,
    nsd,
    surface_distances,
    tolerance_for,
)


def ball(shape, centre_mm, radius_mm, spacing) -> np.ndarray:
    grids = [np.arange(n) * s - c for n, s, c in zip(shape, spacing, centre_mm, strict=True)]
    d2 = grids[0].reshape(-1, 1, 1) ** 2 + grids[1].reshape(1, -1, 1) ** 2 + grids[2].reshape(1, 1, -1) ** 2
    return d2 <= radius_mm**2


def shifted_sphere_distances(radius: float, shift: float, n: int = 200_001) -> np.ndarray:
    """Exact distances from sphere A's surface to sphere B's (B = A shifted), area-uniform samples.

    On a sphere, cos(angle to the shift axis) is uniform in [-1, 1] under the area measure (Archimedes).
    """
    c = np.linspace(-1, 1, n)
    return np.abs(radius - np.sqrt(radius**2 - 2 * radius * shift * c + shift**2))


def test_flare_tolerances():
    assert FLARE_TOLERANCE_MM == {"liver": 5, "kidney_right": 3, "kidney_left": 3, "spleen": 3, "pancreas": 5,
                                  "aorta": 2, "postcava": 2, "gallbladder": 2, "stomach": 5}
    assert tolerance_for("liver") == 5 and tolerance_for("duodenum") == 2 and tolerance_for("x", 7.0) == 7.0


def test_dice_basics_and_empty_masks():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros((10, 10, 10), bool)
    assert dice(a, b) == 1.0  # both empty: FLARE
    a[2:6, 2:6, 2:6] = True
    assert dice(a, b) == 0.0
    b[4:8, 2:6, 2:6] = True
    assert dice(a, b) == pytest.approx(2 * 32 / 128)
    assert dice(a, a) == 1.0
    with pytest.raises(ValueError, match="shape"):
        dice(a, b[:9])


def test_empty_masks_follow_flare():
    empty = np.zeros((8, 8, 8), bool)
    full = empty.copy()
    full[2:5, 2:5, 2:5] = True
    sp = (1.0, 1.0, 2.0)
    assert nsd(empty, empty, sp, 2.0) == 1.0 and hd95(empty, empty, sp) == 0.0 and assd(empty, empty, sp) == 0.0
    for a, b in ((empty, full), (full, empty)):
        assert nsd(a, b, sp, 2.0) == 0.0
        assert hd95(a, b, sp) == math.inf and assd(a, b, sp) == math.inf
    d = surface_distances(empty, full, sp)
    assert d.pred_empty and not d.ref_empty and d.pred_to_ref.size == 0 and d.ref_to_pred.size > 0


def test_identical_masks_are_perfect():
    a = ball((20, 20, 20), (10, 10, 10), 6, (1, 1, 1))
    assert nsd(a, a, (1, 1, 1), 0.0) == 1.0 and hd95(a, a, (1, 1, 1)) == 0.0 and assd(a, a, (1, 1, 1)) == 0.0


def test_cube_inside_a_cube():
    """Inner cube 10^3 inside an outer 14^3 with a 2 voxel gap on every side, 1 mm voxels.

    Every inner surface element is 2 mm from the outer surface; outer ones lie between 2 mm (faces) and
    2 sqrt 3 mm (corners) from the inner surface.
    """
    outer = np.zeros((20, 20, 20), bool)
    outer[3:17, 3:17, 3:17] = True
    inner = np.zeros_like(outer)
    inner[5:15, 5:15, 5:15] = True
    sp = (1.0, 1.0, 1.0)
    d = surface_distances(inner, outer, sp)
    assert np.allclose(d.pred_to_ref, 2.0)
    assert d.ref_to_pred.min() == pytest.approx(2.0) and d.ref_to_pred.max() == pytest.approx(2 * math.sqrt(3))
    assert np.mean(np.isclose(d.ref_to_pred, 2.0)) > 0.5  # mostly the flat faces
    assert dice(inner, outer) == pytest.approx(2 * 1000 / (1000 + 2744))
    assert nsd(inner, outer, sp, 1.99) == 0.0
    assert nsd(inner, outer, sp, 2 * math.sqrt(3)) == pytest.approx(1.0)
    middle = nsd(inner, outer, sp, 2.5)
    assert 0.5 < middle < 1.0  # all of the inner surface, the outer surface's flat faces
    assert hd95(inner, outer, sp) == pytest.approx(2 * math.sqrt(2), abs=1e-4)
    assert 2.0 < assd(inner, outer, sp) < 2.3
    # surface areas: the inner cube's surface is about 6 x 10^2 mm^2 (less at the bevelled edges)
    assert 560 < d.pred_areas.sum() < 600


def test_cube_inside_a_cube_with_anisotropic_spacing():
    """Same cubes with 3 mm slices: the gap is 2 mm along x and y but 6 mm along z."""
    outer = np.zeros((20, 20, 20), bool)
    outer[3:17, 3:17, 3:17] = True
    inner = np.zeros_like(outer)
    inner[5:15, 5:15, 5:15] = True
    sp = (1.0, 1.0, 3.0)
    d = surface_distances(inner, outer, sp)
    assert d.pred_to_ref.min() == pytest.approx(2.0) and d.pred_to_ref.max() == pytest.approx(6.0)
    assert nsd(inner, outer, sp, 5.9) < nsd(inner, outer, sp, 6.0) < 1.0  # x-z edges (6.3 mm), corners (6.6 mm)
    assert nsd(inner, outer, sp, math.sqrt(2**2 + 2**2 + 6**2) + 1e-4) == pytest.approx(1.0)
    assert hd95(inner, outer, sp) == pytest.approx(6.0, abs=0.5)
    assert nsd(inner, outer, sp, 2.0) < nsd(inner, outer, (1.0, 1.0, 1.0), 2.0)


def spheres(spacing, radius=10.0, shift=3.0):
    shape = tuple(int(np.ceil(32 / s)) for s in spacing)
    return ball(shape, (14.0, 16.0, 16.0), radius, spacing), ball(shape, (14.0 + shift, 16.0, 16.0), radius, spacing)


@pytest.mark.parametrize("spacing", [(0.25, 0.25, 0.25), (0.3, 0.4, 0.5)])
def test_two_shifted_spheres_have_the_known_surface_distances(spacing):
    """Spheres of radius 10 mm, 3 mm apart. In the continuum the distances are known (see
    shifted_sphere_distances): HD95 2.85 mm, mean 1.5 mm, NSD(t) about t / 3. Surface elements are the 2 x 2 x 2
    cubes that straddle each digital surface, so distances come out up to about half a voxel shorter."""
    a, b = spheres(spacing)
    exact = shifted_sphere_distances(10.0, 3.0)
    voxel = max(spacing)
    assert hd95(a, b, spacing) == pytest.approx(np.percentile(exact, 95), abs=0.5 * voxel)
    assert exact.mean() - 0.6 * voxel < assd(a, b, spacing) < exact.mean()
    for tolerance in (1.0, 1.5, 2.0):
        assert nsd(a, b, spacing, tolerance) == pytest.approx(np.mean(exact <= tolerance), abs=0.1)
    assert nsd(a, b, spacing, 1.5) == pytest.approx(nsd(b, a, spacing, 1.5))  # symmetric by construction
    assert hd95(a, b, spacing) == pytest.approx(hd95(b, a, spacing))


def test_sphere_distances_converge_as_voxels_shrink():
    exact = shifted_sphere_distances(10.0, 3.0).mean()
    errors = [abs(assd(*spheres((s, s, s)), (s, s, s)) - exact) for s in (0.5, 0.25)]
    assert errors[1] < 0.7 * errors[0]


def test_distances_scale_with_the_spacing():
    rng = np.random.default_rng(5)
    a = ndimage.gaussian_filter(rng.random((20, 18, 14)), 2) > 0.5
    b = ndimage.gaussian_filter(rng.random((20, 18, 14)), 2) > 0.5
    sp = (0.8, 1.1, 2.5)
    big = tuple(3 * s for s in sp)
    assert hd95(a, b, big) == pytest.approx(3 * hd95(a, b, sp), rel=1e-5)
    assert assd(a, b, big) == pytest.approx(3 * assd(a, b, sp), rel=1e-5)
    assert nsd(a, b, big, 6.0) == pytest.approx(nsd(a, b, sp, 2.0), abs=1e-9)


def test_bad_arguments_are_refused():
    a = np.zeros((5, 5, 5), bool)
    with pytest.raises(ValueError, match="spacing"):
        nsd(a, a, (1, 1), 1.0)
    with pytest.raises(ValueError, match="spacing"):
        hd95(a, a, (1, -1, 1))
    with pytest.raises(ValueError, match="tolerance"):
        nsd(a, a, (1, 1, 1), -1.0)
    with pytest.raises(ValueError, match="percentile"):
        hd95(a, a, (1, 1, 1), percentile=101)
    with pytest.raises(ValueError, match="3D"):
        dice(np.zeros((4, 4), bool), np.zeros((4, 4), bool))


def test_evaluate_masks_reports_everything_once():
    a = ball((24, 24, 24), (12, 12, 12), 7, (1, 1, 1))
    b = ball((24, 24, 24), (13, 12, 12), 7, (1, 1, 1))
    out = evaluate_masks(a, b, (1, 1, 1), tolerance_mm=1.0)
    assert out["dice"] == pytest.approx(dice(a, b)) and out["nsd"] == pytest.approx(nsd(a, b, (1, 1, 1), 1.0))
    assert out["hd95_mm"] == pytest.approx(hd95(a, b, (1, 1, 1)))
    assert out["assd_mm"] == pytest.approx(assd(a, b, (1, 1, 1)))
    assert out["pred_ml"] == pytest.approx(a.sum() / 1000) and out["tolerance_mm"] == 1.0


def test_agreement_with_monai_surface_dice_in_subvoxel_mode():
    import torch
    from monai.metrics import compute_surface_dice

    def one_hot(mask: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(mask.astype(np.float32))[None, None]
        return torch.cat([1 - t, t], dim=1)

    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(8):
        shape = tuple(int(v) for v in rng.integers(12, 26, size=3))
        a = ndimage.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.55)
        b = ndimage.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.55)
        b |= np.roll(a, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3))) & (rng.random(shape) > 0.4)
        spacing = tuple(float(v) for v in rng.uniform(0.5, 3.0, size=3))
        tolerance = float(rng.uniform(0.5, 4.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = compute_surface_dice(one_hot(a), one_hot(b), [tolerance], spacing=spacing,
                                            use_subvoxels=True).item()
        assert nsd(a, b, spacing, tolerance) == pytest.approx(expected, abs=1e-3)
        checked += 1
    assert checked == 8


# --------------------------------------------------------------------------------------------------------------
# Attention sensitivity / precision


def test_attention_detection_counts_components():
    shape = (30, 30, 30)
    truth = np.zeros(shape, bool)
    truth[5:25, 5:25, 5:25] = True
    pseudo = truth.copy()
    pseudo[5:9, 5:9, 5:9] = False  # error 1: a missed corner (FN)
    pseudo[26:28, 10:14, 10:14] = True  # error 2: a false positive outside
    pseudo[15, 15, 15] = False  # error 3: one voxel
    attention = np.zeros(shape, bool)
    attention[4:7, 4:7, 4:7] = True  # touches error 1
    attention[0:2, 0:2, 0:2] = True  # touches nothing
    d = attention_detection(attention, pseudo, truth)
    assert (d.error_components, d.detected_errors, d.attention_components, d.useful_attention) == (3, 1, 2, 1)
    assert d.sensitivity == pytest.approx(1 / 3) and d.precision == pytest.approx(0.5)
    assert d.error_voxels == 64 + 32 + 1 and d.attention_voxels == 27 + 8
    small = attention_detection(attention, pseudo, truth, min_voxels=2)  # the one-voxel error no longer counts
    assert (small.error_components, small.detected_errors) == (2, 1) and small.sensitivity == 0.5
    assert np.array_equal(error_region(pseudo, truth), pseudo ^ truth)
    out = d.to_dict()
    assert out["sensitivity"] == pytest.approx(1 / 3) and out["error_components"] == 3


def test_attention_detection_without_errors_or_attention():
    truth = np.zeros((10, 10, 10), bool)
    truth[2:8, 2:8, 2:8] = True
    none = np.zeros_like(truth)
    d = attention_detection(none, truth, truth)
    assert math.isnan(d.sensitivity) and math.isnan(d.precision)
    assert d.to_dict()["sensitivity"] is None
    attention = none.copy()
    attention[0, 0, 0] = True
    d2 = attention_detection(attention, truth, truth)
    assert math.isnan(d2.sensitivity) and d2.precision == 0.0
    mean = mean_detection({"a": d, "b": d2})
    assert mean == {"sensitivity": None, "precision": 0.0}
    with pytest.raises(ValueError, match="min_voxels"):
        attention_detection(attention, truth, truth, min_voxels=0)
