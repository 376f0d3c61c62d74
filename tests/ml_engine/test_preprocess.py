"""Preprocessing: RAS reorientation, body crop, resampling, window, and the exact inverse to the CT grid."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from ml_engine.phantoms import make_phantom
from ml_engine.preprocess import (
    from_ras,
    prepare_image,
    prepare_masks,
    resample,
    resampled_affine,
    restore,
    restore_uint8,
    to_ras,
    window,
)


def _lps_like(ct: np.ndarray, labels: np.ndarray, affine: np.ndarray):
    """The same scan stored with x flipped and y / z swapped: a non-RAS file of the same anatomy."""
    perm = np.zeros((4, 4))
    perm[0, 0] = -1
    perm[0, 3] = ct.shape[0] - 1
    perm[1, 2] = 1
    perm[2, 1] = 1
    perm[3, 3] = 1
    return (np.ascontiguousarray(ct[::-1].transpose(0, 2, 1)), np.ascontiguousarray(labels[::-1].transpose(0, 2, 1)),
            affine @ perm)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(7, shape=(48, 40, 32), spacing=(2.0, 2.0, 3.0))


def test_to_ras_and_back_is_exact(phantom):
    ct, _, affine = _lps_like(phantom.ct, phantom.labels, phantom.affine)
    assert nib.aff2axcodes(affine) != ("R", "A", "S")
    ras, ras_affine, original = to_ras(ct, affine)
    assert nib.aff2axcodes(ras_affine) == ("R", "A", "S")
    np.testing.assert_array_equal(ras, phantom.ct)
    np.testing.assert_allclose(ras_affine, phantom.affine, atol=1e-9)
    np.testing.assert_array_equal(from_ras(ras, original), ct)


@pytest.mark.parametrize("non_ras", [False, True])
def test_round_trip_returns_the_original_grid(phantom, non_ras):
    ct, labels, affine = phantom.ct, phantom.labels, phantom.affine
    if non_ras:
        ct, labels, affine = _lps_like(ct, labels, affine)
    image, spec = prepare_image(ct, affine, (3.0, 3.0, 3.0))
    assert image.dtype == np.float32 and image.shape == spec.shape
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert np.allclose(spec.spacing, 3.0, rtol=0.1)
    assert spec.original_shape == ct.shape
    np.testing.assert_array_equal(spec.original_affine, affine)
    masks = np.stack([labels == v for v in range(1, 10)]).astype(np.uint8)
    small = prepare_masks(masks, spec)
    assert small.shape == (9, *spec.shape)
    for c in (4, 5):  # liver, stomach: big enough to survive 3 mm well
        back = restore(small[c].astype(np.float32), spec) >= 0.5
        assert back.shape == ct.shape
        truth = masks[c].astype(bool)
        dice = 2 * np.logical_and(back, truth).sum() / (back.sum() + truth.sum())
        assert dice > 0.85
    nearest = restore(small[4], spec, mode="nearest")
    assert nearest.dtype == np.uint8 and nearest.shape == ct.shape
    soft = restore_uint8(small[4].astype(np.float32), spec)
    assert soft.dtype == np.uint8 and soft.shape == ct.shape and soft.max() == 255


def test_network_grid_affine_is_exact(phantom):
    """World position of the liver's centre is the same on the network grid as on the CT grid (within a voxel)."""
    ct, labels, affine = _lps_like(phantom.ct, phantom.labels, phantom.affine)
    _, spec = prepare_image(ct, affine, (3.0, 3.0, 3.0))
    masks = np.stack([labels == 5]).astype(np.uint8)
    small = prepare_masks(masks, spec)[0]
    world_small = spec.affine @ np.r_[np.argwhere(small).mean(axis=0), 1.0]
    world_orig = affine @ np.r_[np.argwhere(masks[0]).mean(axis=0), 1.0]
    assert np.linalg.norm(world_small[:3] - world_orig[:3]) < 1.5


def test_resampled_affine_matches_interpolation():
    """A ramp resampled with torch lands where resampled_affine says."""
    ramp = np.broadcast_to(np.arange(20, dtype=np.float32)[:, None, None], (20, 4, 4)).copy()
    out = resample(ramp, (8, 4, 4))
    aff = resampled_affine(np.eye(4), (20, 4, 4), (8, 4, 4))
    expected = (aff @ np.c_[np.arange(8), np.zeros(8), np.zeros(8), np.ones(8)].T)[0]
    np.testing.assert_allclose(out[:, 0, 0], expected, atol=1e-5)


def test_window_clips_and_scales():
    out = window(np.array([-1000, -175, 37.5, 250, 3000]))
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])


def test_body_crop_keeps_the_grid(phantom):
    ct = phantom.ct.copy()
    ct[:6] = -1000  # air on one side: cropped away, restored as zero
    image, spec = prepare_image(ct, phantom.affine, (2.0, 2.0, 3.0))
    assert spec.crop[0][0] > 0
    back = restore_uint8(np.ones(spec.shape, dtype=np.float32), spec)
    assert back.shape == ct.shape
    inside = tuple(slice(a, b) for a, b in spec.crop)
    assert back[inside].min() == 255
    assert back[: spec.crop[0][0]].max() == 0
    assert int(back.sum()) == 255 * int(np.prod(spec.crop_shape))


def test_bad_input():
    with pytest.raises(ValueError, match="3D"):
        prepare_image(np.zeros((4, 4)), np.eye(4), (1, 1, 1))
    _, spec = prepare_image(np.zeros((8, 8, 8)), np.eye(4), (2, 2, 2))
    with pytest.raises(ValueError, match="shape"):
        restore(np.zeros((3, 3, 3)), spec)
