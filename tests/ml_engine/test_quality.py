"""Each automatic quality check on a phantom made to trip it, and on one that must not."""

from __future__ import annotations

import numpy as np
import pytest

from ml_engine.labels import ABDOMENATLAS
from ml_engine.phantoms import make_phantom
from ml_engine.quality import DEFAULT_VOLUME_ML, check_label, robust_range, side_of

VALUES = ABDOMENATLAS.values


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(3, shape=(64, 64, 48), spacing=(3.0, 3.0, 3.0))


def ranges(phantom) -> dict:
    """Volume ranges centred on this phantom's own volumes (phantoms are smaller than adults)."""
    voxel_ml = 27.0 / 1000
    return {o: (np.count_nonzero(phantom.labels == v) * voxel_ml, 5.0) for o, v in VALUES.items()}


def flags_of(phantom, label, **kwargs) -> dict[tuple[str, str], dict]:
    flags, _ = check_label(label, phantom.affine, VALUES, ct=phantom.ct,
                           volume_ranges=kwargs.pop("volume_ranges", ranges(phantom)), **kwargs)
    return {(f.organ, f.check): f.detail for f in flags}


def test_a_clean_phantom_raises_no_flag(phantom):
    assert flags_of(phantom, phantom.labels, previous=phantom.labels) == {}


def test_volume_outside_the_range(phantom):
    found = flags_of(phantom, phantom.labels, volume_ranges={"liver": (5000.0, 100.0)})
    assert set(found) == {("liver", "volume")} and found["liver", "volume"]["z"] < -3.5
    _, volumes = check_label(phantom.labels, phantom.affine, VALUES)
    assert ("liver", "volume") in flags_of(phantom, phantom.labels, volume_ranges=DEFAULT_VOLUME_ML)  # not adult
    assert volumes["liver"] == pytest.approx(np.count_nonzero(phantom.labels == 5) * 0.027)


def test_robust_range_needs_data_and_spread():
    assert robust_range([1.0, 2.0]) is None and robust_range([3.0] * 8) is None
    median, scale = robust_range([10.0, 11.0, 9.0, 10.0, 12.0, 8.0, 100.0])
    assert median == 10.0 and scale == pytest.approx(1.4826)  # the outlier does not widen the range


def test_an_island_is_an_extra_component(phantom):
    label = phantom.labels.copy()
    spleen_x = np.argwhere(label == VALUES["spleen"])[:, 0].mean()
    free = (label == 0) & (phantom.ct > -200)  # soft tissue of no organ, inside the body
    block = free[:-1, :-1, :-1] & free[1:, :-1, :-1] & free[:-1, 1:, :-1] & free[:-1, :-1, 1:] & \
        free[1:, 1:, :-1] & free[1:, :-1, 1:] & free[:-1, 1:, 1:] & free[1:, 1:, 1:]
    corners = np.argwhere(block)
    x, y, z = corners[np.argmin(np.abs(corners[:, 0] - spleen_x))]  # on the spleen's side, far from the liver
    label[x:x + 2, y:y + 2, z:z + 2] = VALUES["liver"]  # 8 voxels of "liver"
    found = flags_of(phantom, label)
    assert set(found) == {("liver", "components")}
    assert found["liver", "components"]["components"] == 2 and found["liver", "components"]["extra"][0]["voxels"] == 8


def test_a_kidney_on_the_wrong_side(phantom):
    label = phantom.labels.copy()
    right, left = label == VALUES["kidney_right"], label == VALUES["kidney_left"]
    label[right], label[left] = VALUES["kidney_left"], VALUES["kidney_right"]
    found = flags_of(phantom, label, volume_ranges={})
    assert {k for k in found if k[1] == "side"} == {("kidney_right", "side"), ("kidney_left", "side")}
    assert side_of("kidney_right") == 1 and side_of("spleen") == -1 and side_of("aorta") == 0


def test_an_organ_at_the_edge_of_the_volume(phantom):
    top = int(np.argwhere(phantom.labels == VALUES["liver"])[:, 2].max())
    cropped = phantom.labels[:, :, :top - 2]  # the scan ends inside the liver
    flags, _ = check_label(cropped, phantom.affine, VALUES, volume_ranges={})
    edges = {f.organ: f.detail["faces"] for f in flags if f.check == "edge"}
    assert edges["liver"] == ["z+"]
    assert "aorta" not in edges and "postcava" not in edges  # vessels leave through the top and bottom


def test_voxels_outside_the_body(phantom):
    label = phantom.labels.copy()
    label[1:3, 1:3, 20:22] = VALUES["stomach"]  # in the air beyond the skin
    found = flags_of(phantom, label)
    assert ("stomach", "outside_body") in found and found["stomach", "outside_body"]["voxels"] == 8


def test_a_revision_that_erased_most_of_an_organ(phantom):
    label = phantom.labels.copy()
    pancreas = np.argwhere(label == VALUES["pancreas"])
    for x, y, z in pancreas[: int(len(pancreas) * 0.8)]:
        label[x, y, z] = 0
    found = flags_of(phantom, label, previous=phantom.labels, volume_ranges={})
    assert ("pancreas", "erased") in found
    label[label == VALUES["gallbladder"]] = 0
    found = flags_of(phantom, label, previous=phantom.labels, volume_ranges={})
    assert found["gallbladder", "erased"]["after_ml"] == 0.0
    assert ("pancreas", "erased") not in flags_of(phantom, phantom.labels, previous=label, volume_ranges={})
