"""ml_engine.label_diff: per-organ voxels added and removed, and the diff volume."""

import numpy as np

from ml_engine.label_diff import ADDED, REMOVED, diff_mask, organ_diff


def maps():
    old = np.zeros((10, 8, 6), dtype=np.uint8)
    old[1:4, 1:4, 1:3] = 5  # liver: 18 voxels
    old[6:8, 5:7, 2:4] = 1  # spleen: 8 voxels
    new = old.copy()
    new[1:4, 1:4, 2] = 0  # the liver loses a slice (9)
    new[8, 5:7, 2:4] = 1  # the spleen grows (4)
    new[6, 5, 2] = 5  # one spleen voxel becomes liver
    return new, old


def test_organ_diff_counts_and_centres():
    new, old = maps()
    result = organ_diff(new, old, [1, 2, 5])
    assert set(result) == {1, 5}  # 2 is in neither
    assert result[5] == {"added": 1, "removed": 9, "before": 18, "after": 10, "centre": [3, 3, 2]}
    assert result[1] == {"added": 4, "removed": 1, "before": 8, "after": 11, "centre": [7, 5, 2]}
    same = organ_diff(old, old, [5])
    assert same[5]["added"] == same[5]["removed"] == 0 and same[5]["centre"] is None


def test_diff_mask_per_organ_and_for_all():
    new, old = maps()
    liver = diff_mask(new, old, 5)
    assert (liver == REMOVED).sum() == 9 and (liver == ADDED).sum() == 1 and liver[6, 5, 2] == ADDED
    every = diff_mask(new, old)
    assert (every == REMOVED).sum() == 9 and (every == ADDED).sum() == 5
    assert not diff_mask(old, old).any()


def test_organ_diff_is_the_same_in_fortran_order():
    new, old = maps()  # nibabel hands volumes over in Fortran order
    assert organ_diff(np.asfortranarray(new), np.asfortranarray(old), [1, 5]) == organ_diff(new, old, [1, 5])


def test_the_diff_as_nifti_bytes_reads_back(tmp_path):
    from ml_engine.io import load_nifti
    from ml_engine.label_diff import nifti_gz_bytes

    new, old = maps()
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    path = tmp_path / "diff.nii.gz"
    path.write_bytes(nifti_gz_bytes(diff_mask(new, old, 5), affine))
    volume = load_nifti(path)
    assert np.array_equal(np.asarray(volume.data), diff_mask(new, old, 5)) and np.allclose(volume.affine, affine)
