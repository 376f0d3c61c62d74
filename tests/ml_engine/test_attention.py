"""Attention maps: the three criteria, the opening, the heatmap, hotspots, priority, the published reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage, special

from ml_engine.attention import (
    AttentionSettings,
    case_attention,
    find_hotspots,
    inconsistency,
    iter_case_attention,
    open_mask,
    organ_attention,
    overlap_masks,
    pseudo_label,
    rank_cases,
    rank_organs,
    stack_probabilities,
    uncertainty,
)
from ml_engine.attention.reference import published_attention, published_pseudo_label
from ml_engine.attention.simulate import SIMULATED_ERRORS, simulate_ensemble, simulate_organ
from ml_engine.phantoms import ORGANS, make_phantom

CUBE = ndimage.generate_binary_structure(3, 3)


def u8(p: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(p) * 255).astype(np.uint8)


def blobs(shape, seed: int, sigma: float = 2.0, level: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), sigma) > level


def scipy_opening(mask: np.ndarray, n: int) -> np.ndarray:
    """The published cleaning: n erosions then n dilations with the 26-connected cube, whole array."""
    eroded = ndimage.binary_erosion(mask, structure=CUBE, iterations=n)
    return ndimage.binary_dilation(eroded, structure=CUBE, iterations=n) if eroded.any() else eroded


# --------------------------------------------------------------------------------------------------------------
# Settings


def test_defaults_are_the_published_ones():
    s = AttentionSettings()
    assert (s.std_threshold, s.entropy_threshold, s.entropy, s.pseudo_threshold) == (0.1, 0.05, "term", 0.5)
    assert s.opening_voxels == 2 and s.opening_mm is None and s.connectivity == 26
    assert s.opening_radius((3.0, 3.0, 3.0)) == (2, 2, 2) == s.opening_radius((0.7, 0.7, 5.0))
    assert s.to_dict()["std_threshold"] == 0.1


def test_opening_in_mm_means_the_same_anatomy_at_any_spacing():
    s = AttentionSettings(opening_mm=6.0)
    assert s.opening_radius((3.0, 3.0, 3.0)) == (2, 2, 2)  # the published 2 voxels at 3 mm
    assert s.opening_radius((1.5, 1.5, 1.5)) == (4, 4, 4)
    assert s.opening_radius((0.8, 0.8, 3.0)) == (8, 8, 2)
    assert AttentionSettings(opening_mm=0.0).opening_radius((1, 1, 1)) == (0, 0, 0)


@pytest.mark.parametrize("kwargs", [{"std_threshold": -0.1}, {"entropy_threshold": math.nan}, {"entropy": "shannon"},
                                    {"pseudo_threshold": 1.0}, {"opening_voxels": -1}, {"opening_voxels": 1.5},
                                    {"opening_mm": -2.0}, {"connectivity": 8}, {"margin_voxels": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        AttentionSettings(**kwargs)


def test_settings_are_keyword_only():
    with pytest.raises(TypeError):
        AttentionSettings(0.2)  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------------------
# Building blocks


@pytest.mark.parametrize("n", [1, 2, 3])
def test_open_mask_equals_iterated_26_connected_erosion_and_dilation(n):
    for seed in range(3):
        mask = blobs((30, 26, 22), seed, sigma=1.5, level=0.48)
        mask[:4, :, :] = True  # touch the array border: scipy treats the outside as background
        mask[-3:, -5:, :] = True
        assert np.array_equal(open_mask(mask, (n, n, n)), scipy_opening(mask, n)), (seed, n)


def test_open_mask_anisotropic_radius_is_a_box_opening():
    mask = blobs((40, 40, 16), 4, sigma=2.0, level=0.47)
    radius = (3, 2, 1)
    box = np.ones(tuple(2 * r + 1 for r in radius), dtype=bool)
    expected = ndimage.binary_dilation(ndimage.binary_erosion(mask, structure=box), structure=box)
    assert np.array_equal(open_mask(mask, radius), expected)
    assert np.array_equal(open_mask(mask, (0, 0, 0)), mask)
    assert not open_mask(np.zeros((5, 5, 5), bool), (1, 1, 1)).any()


def test_std_and_entropy_match_float64_numpy():
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 256, size=(12, 10, 8), dtype=np.uint8) for _ in range(3)]
    stack = stack_probabilities(maps)
    assert stack.dtype == np.uint8 and stack.shape == (3, 12, 10, 8)
    p = np.stack(maps) / 255.0
    assert np.allclose(inconsistency(stack), p.std(axis=0), atol=1e-6)
    assert np.allclose(uncertainty(stack), special.entr(p).mean(axis=0), atol=1e-6)
    m = p.mean(axis=0)
    assert np.allclose(uncertainty(stack, form="binary"), special.entr(m) + special.entr(1 - m), atol=1e-6)
    floats = stack_probabilities([x / 255.0 for x in maps])
    assert floats.dtype == np.float32
    assert np.allclose(inconsistency(floats), p.std(axis=0), atol=1e-6)
    assert np.allclose(uncertainty(floats), special.entr(p).mean(axis=0), atol=1e-6)
    assert np.array_equal(pseudo_label(stack), p.mean(axis=0) > 0.5)
    with pytest.raises(ValueError, match="entropy form"):
        uncertainty(stack, form="renyi")  # type: ignore[arg-type]


def test_std_threshold_is_exact_for_uint8():
    # Two models: std = |a - b| / 510, so a difference of 51 is exactly 0.1 (not kept) and 52 is above it.
    shape = (6, 6, 6)
    a = np.zeros(shape, np.uint8)
    b = np.zeros(shape, np.uint8)
    b[:3] = 51
    b[3:] = 52
    result = organ_attention([a, b], spacing=(1, 1, 1), settings=AttentionSettings(opening_voxels=0))
    kept = result.full(result.inconsistency)
    assert not kept[:3].any() and kept[3:].all()


def test_pseudo_label_is_mean_strictly_above_half():
    a = np.full((3, 3, 3), 255, np.uint8)
    b = np.zeros((3, 3, 3), np.uint8)
    assert not pseudo_label(stack_probabilities([a, b])).any()  # mean exactly 0.5
    b[0] = 1
    assert np.array_equal(pseudo_label(stack_probabilities([a, b]))[0], np.ones((3, 3), bool))


@pytest.mark.parametrize(("maps", "message"), [
    ([], "no probability maps"),
    ([np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8)], "shape"),
    ([np.zeros((4, 4, 4), np.int16)], "uint8"),
    ([np.full((4, 4, 4), 1.5, np.float32)], r"\[0, 1\]"),
    ([np.full((4, 4, 4), np.nan, np.float32)], "finite"),
    ([np.zeros((4, 4), np.uint8)], "3D"),
])
def test_bad_probabilities_are_refused(maps, message):
    with pytest.raises(ValueError, match=message):
        organ_attention(maps, spacing=(1, 1, 1))


def test_bad_spacing_is_refused():
    with pytest.raises(ValueError, match="spacing"):
        organ_attention([np.zeros((4, 4, 4), np.uint8)], spacing=(1, 0, 1))


# --------------------------------------------------------------------------------------------------------------
# One organ: hand-built arrays with known answers


def cube_models(shape=(30, 30, 30), block=(slice(10, 16),) * 3):
    """Three models agree on a cube of organ (p = 1) except in block, where one of them says 1 and two say 0."""
    organ = np.zeros(shape, dtype=np.uint8)
    organ[5:25, 5:25, 5:25] = 255
    maps = [organ.copy() for _ in range(3)]
    for m in maps[1:]:
        m[block] = 0
    maps[0][block] = 255
    return maps


def test_cube_of_disagreement_inside_a_cube():
    maps = cube_models()  # a 6-voxel block survives the published opening (5-voxel box)
    result = organ_attention(maps, spacing=(1, 1, 1))
    block = np.zeros((30, 30, 30), bool)
    block[10:16, 10:16, 10:16] = True
    assert np.array_equal(result.full(result.inconsistency), block)
    assert not result.uncertainty.any()  # p is 0 or 1: no entropy
    assert not result.overlap.any()
    assert result.voxels == 216 and result.volume_ml == pytest.approx(0.216)
    heat = result.full_heatmap()
    assert heat.dtype == np.uint8 and heat.shape == (30, 30, 30)
    assert np.array_equal(heat > 0, block) and heat.max() == 255
    assert [h.voxels for h in result.hotspots] == [216]
    assert result.hotspots[0].bbox_start == (10, 10, 10) and result.hotspots[0].bbox_stop == (16, 16, 16)
    assert result.hotspots[0].centroid == pytest.approx((12.5, 12.5, 12.5))
    # mean p = 1/3 in the block: not in the pseudo-label, which is the cube minus the block
    cube = np.zeros((30, 30, 30), bool)
    cube[5:25, 5:25, 5:25] = True
    assert np.array_equal(result.full(result.pseudo), cube & ~block)
    assert result.expected_voxels == pytest.approx(cube.sum() - 216 * 2 / 3)


def test_small_disagreement_vanishes_with_the_published_opening():
    maps = cube_models(block=(slice(10, 14),) * 3)  # 4 voxels wide: smaller than the 5-voxel box
    assert organ_attention(maps, spacing=(1, 1, 1)).voxels == 0
    assert organ_attention(maps, spacing=(1, 1, 1), settings=AttentionSettings(opening_voxels=1)).voxels == 64
    raw = organ_attention(maps, spacing=(1, 1, 1), settings=AttentionSettings(opening_voxels=0))
    assert raw.voxels == 64 and raw.inconsistency_raw_voxels == 64


def test_heatmap_is_at_least_one_on_every_attention_voxel_and_zero_elsewhere():
    shape = (24, 24, 24)
    strong = np.zeros(shape, np.uint8)
    strong[2:10, 2:10, 2:10] = 255  # one model only: std 0.47
    faint = np.zeros(shape, np.uint8)
    faint[14:22, 14:22, 14:22] = 30  # p = 0.12 in every model: entropy 0.25, std 0
    maps = [np.maximum(strong, faint), faint.copy(), faint.copy()]
    result = organ_attention(maps, spacing=(1, 1, 1), settings=AttentionSettings(opening_voxels=1))
    heat = result.full_heatmap()
    attention = result.full(result.attention)
    assert np.array_equal(heat > 0, attention)
    assert attention[14:22, 14:22, 14:22].all() and attention[2:10, 2:10, 2:10].all()
    assert heat.max() == 255 and heat[attention].min() >= 1
    assert heat[15, 15, 15] < heat[5, 5, 5]


def test_faint_attention_still_shows_in_the_uint8_heatmap():
    shape = (24, 24, 24)
    sure = np.zeros(shape, np.uint8)
    sure[14:22, 14:22, 14:22] = 254  # every model: -p ln p = 0.0039, kept with a tiny threshold
    block = np.zeros(shape, bool)
    block[2:10, 2:10, 2:10] = True
    maps = [sure.copy(), sure.copy(), sure.copy()]
    maps[0][block] = 255
    maps[1][block] = 255  # std 0.47 and mean 2/3 (pseudo-label) in the block, where another organ also is
    result = organ_attention(maps, spacing=(1, 1, 1), others=[block],
                             settings=AttentionSettings(opening_voxels=1, entropy_threshold=0.0005))
    heat = result.full_heatmap()
    # raw heat 1.47 in the block, 0.0039 in the sure region: 0.0039 / 1.47 * 255 = 0.7 would truncate to 0
    assert heat[block].min() >= 254 and heat[18, 18, 18] == 1
    assert np.array_equal(heat > 0, result.full(result.attention))


def test_overlap_between_two_organs_pseudo_labels():
    shape = (20, 20, 20)
    a = np.zeros(shape, np.uint8)
    a[2:12, 2:12, 2:12] = 255
    b = np.zeros(shape, np.uint8)
    b[8:18, 8:18, 8:18] = 255
    case = case_attention({"liver": [a, a], "stomach": [b, b]}, spacing=(1, 1, 1))
    shared = (a > 0) & (b > 0)
    for organ in ("liver", "stomach"):
        result = case.organs[organ]
        assert np.array_equal(result.full(result.overlap), shared)
        assert np.array_equal(result.full_heatmap() > 0, shared)
        assert result.voxels == 64 and not result.inconsistency.any()
    assert case.total_voxels == 128 and case.total_ml == pytest.approx(0.128)
    masks = overlap_masks({"liver": a > 0, "stomach": b > 0, "spleen": np.zeros(shape, bool)})
    assert np.array_equal(masks["liver"], shared) and not masks["spleen"].any()


def test_one_model_has_no_inconsistency_but_uncertainty_still_works():
    p = np.zeros((20, 20, 20), np.uint8)
    p[4:16, 4:16, 4:16] = 255
    p[6:12, 6:12, 6:12] = 100  # an unsure region
    result = organ_attention([p], spacing=(1, 1, 1))
    assert not result.inconsistency.any() and result.inconsistency_raw_voxels == 0
    unsure = np.zeros(p.shape, bool)
    unsure[6:12, 6:12, 6:12] = True
    assert np.array_equal(result.full(result.uncertainty), unsure)
    assert result.models == 1


def test_binary_entropy_option():
    p = np.zeros((20, 20, 20), np.uint8)
    p[4:16, 4:16, 4:16] = 250  # p = 0.98: -p ln p = 0.0196 (below 0.05), binary entropy 0.098 (above)
    term = organ_attention([p, p], spacing=(1, 1, 1))
    binary = organ_attention([p, p], spacing=(1, 1, 1), settings=AttentionSettings(entropy="binary"))
    assert term.voxels == 0
    assert binary.voxels == 12**3 - 0 and binary.full(binary.uncertainty)[4:16, 4:16, 4:16].all()


def test_an_empty_organ_gives_an_empty_map():
    zeros = np.zeros((10, 10, 10), np.uint8)
    result = organ_attention([zeros, zeros], spacing=(1, 1, 1))
    assert result.voxels == 0 and result.hotspots == [] and result.expected_voxels == 0
    assert result.full_heatmap().shape == (10, 10, 10) and not result.full_heatmap().any()
    assert result.summary()["pseudo_label_voxels"] == 0


def test_hotspots_largest_first_with_full_volume_coordinates():
    mask = np.zeros((20, 20, 20), bool)
    mask[1:3, 1:3, 1:3] = True  # 8 voxels
    mask[10:14, 10:15, 10:12] = True  # 40 voxels
    mask[3, 3, 3] = True  # touches the first block diagonally only
    spots = find_hotspots(mask, spacing=(2.0, 1.0, 0.5), offset=(100, 0, 5))
    assert [h.voxels for h in spots] == [40, 9]
    assert spots[0].bbox_start == (110, 10, 15) and spots[0].bbox_stop == (114, 15, 17)
    assert spots[0].centroid == pytest.approx((111.5, 12.0, 15.5))
    assert spots[0].volume_ml == pytest.approx(40 * 1.0 / 1000)
    assert [h.voxels for h in find_hotspots(mask, spacing=(1, 1, 1), connectivity=6)] == [40, 8, 1]
    as_dict = spots[1].to_dict(np.diag([2.0, 1.0, 0.5, 1.0]))
    assert as_dict["voxels"] == 9 and len(as_dict["centroid_mm"]) == 3
    # the one format, the platform's stored rows' (OrganAttention.hotspots) and the workspace's
    assert spots[0].to_dict() == {"voxels": 40, "ml": 0.04, "centroid": [111.5, 12.0, 15.5],
                                  "bbox": [[110, 10, 15], [114, 15, 17]]}
    assert find_hotspots(np.zeros((4, 4, 4), bool), spacing=(1, 1, 1)) == []


# --------------------------------------------------------------------------------------------------------------
# The fast path against the published dense computation


@pytest.fixture(scope="module")
def phantom_ensemble():
    phantom = make_phantom(2, shape=(64, 64, 48), troubles=[])
    ensemble = simulate_ensemble(phantom.labels, spacing=phantom.spacing, seed=2)
    return phantom, ensemble


def test_fast_path_matches_the_published_dense_computation(phantom_ensemble):
    phantom, ensemble = phantom_ensemble
    case = case_attention(ensemble.probs, spacing=phantom.spacing)
    pseudo = {organ: published_pseudo_label(maps) for organ, maps in ensemble.probs.items()}
    reference = published_attention(ORGANS, lambda o: ensemble.probs[o], lambda o: pseudo[o])
    total = 0
    for organ, heatmap, attention in reference:
        result = case.organs[organ]
        assert np.array_equal(result.full(result.pseudo), pseudo[organ] > 0), organ
        assert np.array_equal(result.full(result.attention), attention), organ
        heat = result.full_heatmap().astype(int)
        assert np.abs(heat - heatmap.astype(int))[attention].max(initial=0) <= 1, organ
        total += int(attention.sum())
    assert total > 500  # the injected errors are there to be found


@pytest.mark.parametrize("n", [0, 1, 3])
def test_fast_path_matches_the_published_computation_for_other_openings(phantom_ensemble, n):
    phantom, ensemble = phantom_ensemble
    organs = ("spleen", "liver", "stomach", "kidney_left")
    probs = {o: ensemble.probs[o] for o in organs}
    case = case_attention(probs, spacing=phantom.spacing, settings=AttentionSettings(opening_voxels=n))
    pseudo = {organ: published_pseudo_label(maps) for organ, maps in probs.items()}
    for organ, _, attention in published_attention(organs, lambda o: probs[o], lambda o: pseudo[o], iterations=n):
        assert np.array_equal(case.organs[organ].full(case.organs[organ].attention), attention), (organ, n)


def test_iter_case_attention_reads_everything_first_and_reports_progress():
    a = np.zeros((8, 8, 8), np.uint8)
    a[2:6, 2:6, 2:6] = 255
    calls: list[str] = []
    steps: list[tuple[int, int]] = []

    def load(organ):
        calls.append(organ)
        if organ == "bad":
            return [a, a[:, :, :7]]
        return [a, a]

    results = iter_case_attention(["liver", "spleen"], load, spacing=(1, 1, 1),
                                  progress=lambda done, total: steps.append((done, total)))
    first = next(results)
    assert calls == ["liver", "spleen"] and first.organ == "liver"
    assert list(r.organ for r in results) == ["spleen"]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="bad: probability map 1 has shape"):
        next(iter_case_attention(["liver", "bad"], load, spacing=(1, 1, 1)))
    with pytest.raises(ValueError, match="repeat"):
        next(iter_case_attention(["liver", "liver"], load, spacing=(1, 1, 1)))
    other = np.zeros((9, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="spleen: probability maps have shape"):
        next(iter_case_attention(["liver", "spleen"], lambda o: [a] if o == "liver" else [other], spacing=(1, 1, 1)))


# --------------------------------------------------------------------------------------------------------------
# Priority


def test_cases_by_total_size_and_organs_by_their_own():
    ranking = rank_cases({
        "b": {"liver": 5.0, "spleen": 1.0, "pancreas": 0.0},
        "a": {"liver": 2.0, "stomach": 4.0},
        "c": {"liver": 0.0},
        "d": {"spleen": 3.0, "stomach": 3.0},
    })
    assert [p.case for p in ranking] == ["a", "b", "d", "c"]  # three totals of 6: by name
    assert ranking[0].total == 6.0 and ranking[0].organs == (("stomach", 4.0), ("liver", 2.0))
    assert ranking[1].organs == (("liver", 5.0), ("spleen", 1.0))  # organs without attention are left out
    assert ranking[2].organs == (("spleen", 3.0), ("stomach", 3.0))  # equal sizes keep the given order
    assert ranking[3].total == 0.0 and ranking[3].organs == ()
    assert rank_organs({"x": 1.0, "y": 2.0}) == [("y", 2.0), ("x", 1.0)]
    with pytest.raises(ValueError, match="a/liver"):
        rank_cases({"a": {"liver": -1.0}})
    with pytest.raises(ValueError):
        rank_cases({"a": {"liver": math.inf}})


def test_priority_in_ml_is_spacing_aware_and_in_voxels_is_the_published_order():
    a = np.zeros((12, 12, 12), np.uint8)
    a[2:10, 2:10, 2:10] = 255
    b = a.copy()
    b[2:8, 2:8, 2:8] = 0
    fine = case_attention({"liver": [a, b]}, spacing=(1, 1, 1))  # 216 voxels of 1 mm^3
    coarse_a, coarse_b = a[:8, :8, :8].copy(), b[:8, :8, :8].copy()
    coarse_b[:] = coarse_a
    coarse_b[2:7, 2:7, 2:7] = 0
    coarse = case_attention({"liver": [coarse_a, coarse_b]}, spacing=(3, 3, 3))  # 125 voxels of 27 mm^3
    by_ml = rank_cases({"fine": {"liver": fine.total_ml}, "coarse": {"liver": coarse.total_ml}})
    by_voxels = rank_cases({"fine": {"liver": fine.total_voxels}, "coarse": {"liver": coarse.total_voxels}})
    assert [p.case for p in by_ml] == ["coarse", "fine"] and [p.case for p in by_voxels] == ["fine", "coarse"]


# --------------------------------------------------------------------------------------------------------------
# Phantoms with injected errors: the attention evaluation of the paper's Table 1


def test_simulated_errors_are_found_by_the_attention(capsys):
    from ml_engine.metrics import attention_detection, mean_detection

    pooled: dict[str, list[int]] = {organ: [0, 0, 0, 0] for organ in ORGANS}
    hit_injected = {"stomach": 0, "spleen": 0, "liver": 0}
    for seed in range(3):
        phantom = make_phantom(seed, troubles=[])
        ensemble = simulate_ensemble(phantom.labels, spacing=phantom.spacing, seed=seed)
        assert set(ensemble.errors) == {"stomach", "spleen", "liver"}
        case = case_attention(ensemble.probs, spacing=phantom.spacing)
        for organ, result in case.organs.items():
            attention = result.full(result.attention)
            d = attention_detection(attention, result.full(result.pseudo), ensemble.truth[organ])
            for i, v in enumerate((d.detected_errors, d.error_components, d.useful_attention,
                                   d.attention_components)):
                pooled[organ][i] += v
            if organ in hit_injected and (attention & ensemble.errors[organ]).any():
                hit_injected[organ] += 1
    assert hit_injected == {"stomach": 3, "spleen": 3, "liver": 3}
    print("\nattention evaluation on 3 phantoms with injected errors (components pooled over cases)")
    print(f"{'organ':<14} {'sensitivity':>11} {'precision':>9}")
    sens, prec = [], []
    for organ, (det, err, use, att) in pooled.items():
        s = det / err if err else math.nan
        p = use / att if att else math.nan
        sens += [s] if err else []
        prec += [p] if att else []
        print(f"{organ:<14} {s:>11.2f} {p:>9.2f}")
    print(f"{'mean':<14} {np.mean(sens):>11.2f} {np.mean(prec):>9.2f}")
    for organ in hit_injected:  # where errors were injected, the attention finds most and is mostly right
        detected, errors, useful, components = pooled[organ]
        assert detected >= 3 and detected / errors >= 0.5 and useful / components >= 0.5, (organ, pooled[organ])
    assert "liver" in capsys.readouterr().out
    assert mean_detection({}) == {"sensitivity": None, "precision": None}


def test_simulation_is_deterministic_and_validates():
    truth = np.zeros((20, 20, 20), bool)
    truth[5:15, 5:15, 5:15] = True
    one, inj = simulate_organ(truth, spacing=(1, 1, 1), seed=3, models=2)
    two, _ = simulate_organ(truth, spacing=(1, 1, 1), seed=3, models=2)
    assert len(one) == 2 and all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))
    assert one[0].dtype == np.uint8 and one[0][10, 10, 10] == 255 and one[0][0, 0, 0] == 0 and not inj.any()
    with pytest.raises(ValueError, match="unknown simulated errors"):
        simulate_organ(truth, spacing=(1, 1, 1), errors=["typo"])
    assert SIMULATED_ERRORS == ("stomach_cavity_missed", "boundary_shift", "liver_bite")


# --------------------------------------------------------------------------------------------------------------
# The real CT: two TotalSegmentator models as two ensemble members

REAL_VALUES = {"spleen": 1, "kidney_right": 2, "kidney_left": 3, "gallbladder": 4, "liver": 5, "stomach": 6,
               "pancreas": 7, "aorta": 52, "postcava": 63}


@pytest.fixture(scope="module")
def real_pair():
    from ml_engine.io import load_nifti
    from tests.conftest import CT_EXAMPLE, require_ct_example

    require_ct_example("seg_model_a.nii.gz", "seg_model_b.nii.gz")

    a = load_nifti(CT_EXAMPLE / "seg_model_a.nii.gz")
    b = load_nifti(CT_EXAMPLE / "seg_model_b.nii.gz")
    return np.asarray(a.data), np.asarray(b.data), a.spacing


def real_probs(a, b):
    return {organ: [u8(a == v), u8(b == v)] for organ, v in REAL_VALUES.items()}


def test_real_inconsistency_before_opening_is_exactly_the_disagreement(real_pair):
    a, b, spacing = real_pair
    assert spacing == pytest.approx((3.0, 3.0, 3.0))
    case = case_attention(real_probs(a, b), spacing=spacing, settings=AttentionSettings(opening_voxels=0))
    fractions = {}
    for organ, value in REAL_VALUES.items():
        result = case.organs[organ]
        disagree = (a == value) ^ (b == value)
        assert np.array_equal(result.full(result.inconsistency), disagree), organ
        assert not result.uncertainty.any() and not result.overlap.any()  # hard labels: no entropy, no overlap
        fractions[organ] = result.inconsistency_raw_voxels / result.expected_voxels
    assert max(fractions, key=fractions.get) == "pancreas"
    assert fractions["pancreas"] == pytest.approx(0.38, abs=0.01)
    assert fractions["liver"] == pytest.approx(0.04, abs=0.005)


def test_real_thin_disagreements_vanish_with_the_published_opening(real_pair):
    a, b, spacing = real_pair
    probs = real_probs(a, b)
    for settings in (AttentionSettings(), AttentionSettings(opening_mm=6.0), AttentionSettings(opening_voxels=1)):
        case = case_attention(probs, spacing=spacing, settings=settings)
        assert case.total_voxels == 0, settings
        assert all(r.inconsistency_raw_voxels > 0 for r in case.organs.values())


def test_opening_in_mm_keeps_the_same_anatomy_at_1_5_and_3_mm():
    """A 9 mm thick slab of disagreement: 6 voxels at 1.5 mm, 3 voxels at 3 mm."""

    def slab_models(spacing_mm: float, thickness_mm: float) -> list[np.ndarray]:
        n = int(round(60 / spacing_mm))
        organ = np.zeros((n, n, n), np.uint8)
        organ[n // 6: -n // 6, n // 6: -n // 6, n // 6: -n // 6] = 255
        other = organ.copy()
        start = n // 3
        other[start:start + int(round(thickness_mm / spacing_mm))] = 0
        return [organ, other]

    for thickness, survives in ((9.0, False), (18.0, True)):
        for spacing in (1.5, 3.0):
            maps = slab_models(spacing, thickness)
            kept = organ_attention(maps, spacing=(spacing,) * 3, settings=AttentionSettings(opening_mm=6.0)).voxels
            assert (kept > 0) == survives, (thickness, spacing)
    # in voxels, the same setting means different anatomy: 2 voxels keep the 9 mm slab at 1.5 mm only
    fine = organ_attention(slab_models(1.5, 9.0), spacing=(1.5,) * 3).voxels
    coarse = organ_attention(slab_models(3.0, 9.0), spacing=(3.0,) * 3).voxels
    assert fine > 0 and coarse == 0
