"""ml_engine.io: gzip through ISA-L or the standard library, compression levels, and maps stored cropped to a box."""

from __future__ import annotations

import gzip
import os

import nibabel as nib
import numpy as np
import pytest

from ml_engine import io
from ml_engine.attention import case_attention, max_heatmap
from ml_engine.attention.simulate import simulate_ensemble
from ml_engine.io import gz
from ml_engine.phantoms import make_phantom

AFFINE = np.array([[-0.8, 0, 0, 120.0], [0, -0.8, 0, 95.5], [0, 0, 1.5, -300.0], [0, 0, 0, 1]])


def _volume(shape=(40, 30, 20), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1500, shape).astype(np.int16)


def test_written_files_are_plain_gzip_nifti_for_every_reader(tmp_path):
    data = _volume()
    path = io.write_nifti(tmp_path / "ct.nii.gz", data, AFFINE)
    assert gzip.open(path).read(4)  # the standard library reads the stream
    assert np.array_equal(np.asarray(nib.load(str(path)).dataobj), data)
    back = io.load_nifti(path)
    assert np.array_equal(back.data, data) and np.allclose(back.affine, AFFINE)


def test_the_same_voxels_give_the_same_bytes(tmp_path):
    data = _volume(seed=4)
    a = io.write_nifti(tmp_path / "a.nii.gz", data, AFFINE)
    import time

    time.sleep(1.1)  # a gzip header's mtime has 1 s resolution
    b = io.write_nifti(tmp_path / "b.nii.gz", data, AFFINE)
    assert a.read_bytes() == b.read_bytes()


def test_both_levels_read_back_the_same(tmp_path):
    data = np.zeros((64, 64, 32), np.uint8)
    data[10:40, 12:50, 5:25] = np.random.default_rng(1).integers(0, 4, (30, 38, 20))
    fast = io.write_nifti(tmp_path / "fast.nii.gz", data, AFFINE, level=io.FAST)
    small = io.write_nifti(tmp_path / "small.nii.gz", data, AFFINE, level=io.DEFAULT)
    assert io.FAST < io.DEFAULT
    assert np.array_equal(io.load_nifti(fast).data, data) and np.array_equal(io.load_nifti(small).data, data)


def test_the_standard_library_fallback_reads_and_writes_the_same_files(tmp_path, monkeypatch):
    data = _volume(seed=2)
    accelerated = io.write_nifti(tmp_path / "a.nii.gz", data, AFFINE)
    monkeypatch.setattr(gz, "_gzip", gzip)  # every gzip stream of ml_engine.io opens through gz._gzip
    plain = io.write_nifti(tmp_path / "b.nii.gz", data, AFFINE, level=6)
    assert np.array_equal(io.load_nifti(accelerated).data, data)
    assert np.array_equal(io.load_nifti(plain).data, data)
    # the bounded read keeps its guarantees on the fallback: a tail after the voxels is refused
    with open(plain, "ab") as handle:
        handle.write(gzip.compress(b"\0" * 1000))
    with pytest.raises(io.ImageError, match="trailing data"):
        io.load_nifti(plain)


def test_the_accelerated_reader_refuses_truncated_and_trailing_data(tmp_path):
    data = _volume(seed=3)
    path = io.write_nifti(tmp_path / "ct.nii.gz", data, AFFINE)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(io.ImageError, match="ct.nii.gz: truncated or corrupt"):
        io.load_nifti(path)
    path.write_bytes(whole + gzip.compress(b"\0" * 4096))
    with pytest.raises(io.ImageError, match="trailing data"):
        io.load_nifti(path)


def test_a_map_cropped_to_a_box_lands_on_the_grid(tmp_path):
    shape = (40, 30, 20)
    full = np.zeros(shape, np.uint8)
    full[12:20, 5:9, 3:11] = np.arange(1, 8 * 4 * 8 + 1).reshape(8, 4, 8) % 250 + 1
    path = io.write_nifti_box(tmp_path / "map.nii.gz", full[12:20, 5:9, 3:11], AFFINE, (12, 5, 3))
    image = nib.load(str(path))
    assert image.shape == (8, 4, 8)
    # the crop's voxel (0, 0, 0) is at the grid's voxel (12, 5, 3) in world space
    assert np.allclose(image.affine @ [0, 0, 0, 1], AFFINE @ [12, 5, 3, 1], atol=1e-4)
    assert np.array_equal(io.load_on_grid(path, shape, AFFINE), full)
    box = (slice(10, 15), slice(0, 30), slice(9, 20))  # partly outside the stored box
    assert np.array_equal(io.load_on_grid(path, shape, AFFINE, box=box), full[box])
    assert not io.load_on_grid(path, shape, AFFINE, box=(slice(0, 5), slice(0, 5), slice(0, 5))).any()
    # an old map stored on the whole grid reads the same way
    whole = io.write_nifti(tmp_path / "whole.nii.gz", full, AFFINE)
    assert np.array_equal(io.load_on_grid(whole, shape, AFFINE), full)
    assert np.array_equal(io.load_on_grid(whole, shape, AFFINE, box=box), full[box])


@pytest.mark.parametrize(("affine", "shape", "message"), [
    (io.box_affine(AFFINE, (0.5, 0, 0)), (4, 4, 4), "fraction of a voxel"),
    (np.diag([1.0, 1.0, 1.0, 1.0]), (4, 4, 4), "spacing or orientation"),
    (io.box_affine(AFFINE, (38, 0, 0)), (4, 4, 4), "reaches outside"),
    (io.box_affine(AFFINE, (-1, 0, 0)), (4, 4, 4), "reaches outside"),
])
def test_a_map_off_the_grid_is_refused_naming_the_file(tmp_path, affine, shape, message):
    path = io.write_nifti(tmp_path / "bad.nii.gz", np.ones(shape, np.uint8), affine)
    with pytest.raises(io.ImageError, match=f"bad.nii.gz: .*{message}"):
        io.load_on_grid(path, (40, 30, 20), AFFINE)


def test_compact_heatmaps_hold_the_whole_attention():
    phantom = make_phantom(0, shape=(48, 48, 32), troubles=[])
    ensemble = simulate_ensemble(phantom.labels, spacing=phantom.spacing, seed=0)
    case = case_attention(ensemble.probs, spacing=phantom.spacing)
    crops = []
    for organ, result in case.organs.items():
        crop, start = result.compact_heatmap()
        assert min(crop.shape) >= 2 and crop.dtype == np.uint8, organ
        assert all(s >= 0 and s + n <= g for s, n, g in zip(start, crop.shape, result.shape, strict=True))
        full = np.zeros(result.shape, np.uint8)
        full[tuple(slice(s, s + n) for s, n in zip(start, crop.shape, strict=True))] = crop
        assert np.array_equal(full, result.full_heatmap()), organ
        if result.voxels:  # the box is the attention's bounding box (grown to 2 voxels a side at most)
            assert crop.size <= np.prod([max(2, n) for n in np.ptp(np.argwhere(full), axis=0) + 1])
        crops.append((crop, start))
    combined, start = max_heatmap(crops)
    full = np.zeros(phantom.labels.shape, np.uint8)
    full[tuple(slice(s, s + n) for s, n in zip(start, combined.shape, strict=True))] = combined
    expected = np.max([r.full_heatmap() for r in case.organs.values()], axis=0)
    assert np.array_equal(full, expected) and expected.any()


def test_an_empty_attention_is_a_small_box_of_zeros():
    probs = {"liver": [np.zeros((10, 10, 10), np.uint8)] * 3}
    crop, start = case_attention(probs, spacing=(1, 1, 1)).organs["liver"].compact_heatmap()
    assert crop.shape == (2, 2, 2) and not crop.any() and start == (0, 0, 0)


def test_atomic_folder_lands_whole_or_not_at_all(tmp_path):
    """The one folder staging (export, the training cache, the attention CLI): a hidden sibling renamed into place on
    success, removed on failure; replace swaps out a folder that holds files."""
    target = tmp_path / "out"
    with io.atomic_folder(target) as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".") and not target.exists()
        (staging / "a.txt").write_text("a")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and (target / "a.txt").read_text() == "a"
    assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()

    with pytest.raises(RuntimeError), io.atomic_folder(target, replace=True) as staging:
        (staging / "b.txt").write_text("b")
        raise RuntimeError("fails half-way")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in target.iterdir()] == ["a.txt"]

    with pytest.raises(OSError), io.atomic_folder(target) as staging:  # not empty, not replace: refused
        (staging / "b.txt").write_text("b")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in target.iterdir()] == ["a.txt"]

    with io.atomic_folder(target, replace=True) as staging:
        (staging / "b.txt").write_text("b")
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in target.iterdir()] == ["b.txt"]

    empty = tmp_path / "empty"
    empty.mkdir()
    with io.atomic_folder(empty) as staging:  # an empty folder is taken over
        (staging / "c.txt").write_text("c")
    assert [p.name for p in empty.iterdir()] == ["c.txt"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
