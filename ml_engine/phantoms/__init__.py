"""Deterministic synthetic abdominal CT with organ labels, for the demo and for tests.

A phantom is an axial abdominal CT volume in NIfTI voxel order (x, y, z) with a diagonal RAS+ affine
(+x toward the patient's right, +y anterior, +z superior: the liver at larger x than the spleen, as in
../shared/data/ct_example), its multi-label map in the `abdomenatlas` label set
(values 1..9 in the order of ORGANS) and the names of the "troubles" it carries: deliberate features
that make real models fail the way the AbdomenAtlas paper describes (an air cavity inside the stomach,
a swollen pancreas tail).

The anatomy is defined in normalised body coordinates and rasterised on the voxel grid:

    u = (body centre x - x) / body half-width    (-1 patient right .. +1 patient left: against RAS x)
    v = (y - body centre y) / body half-depth    (-1 posterior .. +1 anterior)
    w = z / (field of view in z / 2)             (-1 inferior .. +1 superior)

so the body always fills the field of view and every organ lies inside it, whatever the shape and the
spacing: a 32 x 32 x 32 volume holds the same anatomy as a 512 x 512 x 300 one, only coarser. Organs are
smoothly deformed ellipsoids (sums of random low-frequency sinusoids), tubes and a curved pancreas, placed
where they are in a supine patient, with unlabelled neighbours that look alike (iliac arteries below the
aortic bifurcation, splenic vein behind the pancreas, bowel, psoas, spine, ribs) so that a model has to
use position and shape as well as intensity. Overlaps are resolved by a fixed priority (_PRIORITY).
The volume is rasterised in LAS voxel order, where u grows with the first index, and then flipped along x
into the RAS+ order of the affine (anatomy._Frame.to_ras); tests/ml_engine/test_sides.py holds the organs'
sides against the real CT's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from ml_engine.io import spacing_from_affine, write_nifti
from ml_engine.labels import ORGANS
from ml_engine.phantoms.anatomy import (
    _LABEL,
    _body,
    _Canvas,
    _clutter,
    _finish,
    _Frame,
    _organs,
    _sample_intensities,
    _sample_organs,
)

LABEL_SET = "abdomenatlas"
TROUBLES: tuple[str, ...] = ("stomach_air_cavity", "enlarged_pancreas_tail")
TROUBLE_PROBABILITY = 0.25  # chance of each trouble when make_phantom chooses them from the seed
MIN_SIDE = 16  # smallest array side (voxels) that still shows every organ
DEFAULT_SHAPE = (96, 96, 64)
DEFAULT_SPACING = (1.5, 1.5, 2.5)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class Phantom:
    """One synthetic CT case.

    ct: (x, y, z) int16 Hounsfield units. labels: (x, y, z) uint8, 0 background, 1..9 = ORGANS.
    affine: (4, 4) float64 voxel-to-RAS+ (mm), diagonal. troubles: the TROUBLES this case carries.
    """

    ct: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    name: str
    troubles: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along x, y, z."""
        return spacing_from_affine(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.ct.shape)  # type: ignore[return-value]

    def organ_mask(self, name: str) -> np.ndarray:
        """(x, y, z) bool mask of one organ of ORGANS."""
        return self.labels == organ_value(name)


def organ_value(name: str) -> int:
    """The label value (1..9) of an organ name; ValueError naming the valid ones otherwise."""
    try:
        return _LABEL[name]
    except KeyError:
        raise ValueError(f"unknown organ {name!r}; valid organs: {', '.join(ORGANS)}") from None


# --------------------------------------------------------------------------------------------------------------
# Public API


def _check_geometry(shape: Sequence[int], spacing: Sequence[float]) -> tuple[tuple[int, int, int], np.ndarray]:
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError(f"shape and spacing need three values each, got {tuple(shape)} and {tuple(spacing)}")
    if any(int(s) != s or int(s) < MIN_SIDE for s in shape):
        raise ValueError(f"every side of the shape must be an integer >= {MIN_SIDE}, got {tuple(shape)}")
    spacing_array = np.asarray(spacing, dtype=np.float64)
    if not np.all(np.isfinite(spacing_array)) or np.any(spacing_array <= 0):
        raise ValueError(f"spacing must be positive and finite, got {tuple(spacing)}")
    return (int(shape[0]), int(shape[1]), int(shape[2])), spacing_array


def _check_troubles(troubles: Sequence[str]) -> list[str]:
    unknown = [t for t in troubles if t not in TROUBLES]
    if unknown:
        raise ValueError(f"unknown trouble {unknown[0]!r}; valid troubles: {', '.join(TROUBLES)}")
    return [t for t in TROUBLES if t in troubles]


def _check_organs(organs: Sequence[str] | None) -> list[str]:
    if organs is None:
        return list(ORGANS)
    if isinstance(organs, str):
        raise TypeError("organs must be a sequence of organ names, not a string")
    for name in organs:
        organ_value(name)
    return [name for name in ORGANS if name in organs]


def make_phantom(seed: int, *, shape: Sequence[int] = DEFAULT_SHAPE, spacing: Sequence[float] = DEFAULT_SPACING,
                 troubles: Sequence[str] | None = None, name: str | None = None) -> Phantom:
    """Build one synthetic abdominal CT: ct (x, y, z) int16 HU and labels (x, y, z) uint8 on a diagonal RAS+ grid.

    The same seed and arguments give bit-identical arrays. The anatomy depends on the seed only (not on the
    troubles), so a case with and without a trouble differs just where the trouble is. With troubles None each
    of TROUBLES is chosen from the seed with probability TROUBLE_PROBABILITY; otherwise exactly those listed.
    shape: voxels, each side >= MIN_SIDE; spacing: mm; the body is scaled to the field of view shape * spacing.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    shape_t, spacing_a = _check_geometry(shape, spacing)
    trouble_rng, anatomy_rng, intensity_rng, noise_rng = np.random.default_rng(int(seed)).spawn(4)
    drawn = [t for t in TROUBLES if trouble_rng.random() < TROUBLE_PROBABILITY]
    chosen = drawn if troubles is None else _check_troubles(troubles)
    name = f"phantom_s{int(seed)}" if name is None else name

    fov = np.asarray(shape_t, dtype=np.float64) * spacing_a
    fill = np.array([anatomy_rng.uniform(0.84, 0.92), anatomy_rng.uniform(0.7, 0.82), 1.0])
    half = fov / 2.0 * fill
    centre = np.array([anatomy_rng.uniform(-0.02, 0.02) * fov[0], anatomy_rng.uniform(-0.03, 0.05) * fov[1], 0.0])
    frame = _Frame(shape_t, spacing_a, half, centre)
    swell = float(anatomy_rng.uniform(2.0, 2.6))
    shapes = _sample_organs(anatomy_rng, swell if "enlarged_pancreas_tail" in chosen else 1.0)
    detail_rng = np.random.default_rng(anatomy_rng.integers(0, 2**63))
    intensities = _sample_intensities(intensity_rng)

    canvas = _Canvas(frame)
    _body(canvas, anatomy_rng, intensities.hu)
    _organs(canvas, shapes, intensities.hu, chosen, trouble_rng, detail_rng)
    _clutter(canvas, shapes, intensities.hu, detail_rng)
    labels = np.ascontiguousarray(frame.to_ras(canvas.labels))
    ct_float = frame.to_ras(canvas.ct)
    canvas.ct = canvas.free = canvas.labels = None  # type: ignore[assignment]
    ct = _finish(ct_float, noise_rng, intensities.noise_sd, intensities.blur_sd)
    return Phantom(ct=ct, labels=labels, affine=frame.affine, name=name, troubles=chosen)


def _nifti_header() -> nib.Nifti1Header:
    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    header["qform_code"] = 1
    header["sform_code"] = 1
    return header


def write_phantom_case(phantom: Phantom, out_dir: Path, *, organs: Sequence[str] | None = None) -> Path:
    """Write out_dir/<name>/ct.nii.gz (int16) and segmentations/<organ>.nii.gz (uint8 0/1) in the AbdomenAtlas layout.

    organs: the organs to write (default all of ORGANS); an empty sequence writes an unlabelled case (no
    segmentations folder). Masks of other organs left by an earlier write of the same case are removed, so the
    folder always describes this phantom. Every file is written atomically. Returns the case folder.
    """
    if not _SAFE_NAME.match(phantom.name) or phantom.name in {".", ".."}:
        raise ValueError(f"phantom name {phantom.name!r} is not a safe folder name")
    chosen = _check_organs(organs)
    case = Path(out_dir) / phantom.name
    if case.exists() and not case.is_dir():
        raise ValueError(f"{case}: exists and is not a folder")
    header = _nifti_header()
    write_nifti(case / "ct.nii.gz", phantom.ct, phantom.affine, header=header, dtype=np.int16)
    segmentations = case / "segmentations"
    for organ in chosen:
        write_nifti(segmentations / f"{organ}.nii.gz", phantom.organ_mask(organ).astype(np.uint8), phantom.affine,
                    header=header)
    for organ in ORGANS:
        if organ not in chosen:
            (segmentations / f"{organ}.nii.gz").unlink(missing_ok=True)
    if not chosen and segmentations.is_dir() and not any(segmentations.iterdir()):
        segmentations.rmdir()
    return case


def case_name(index: int) -> str:
    return f"phantom_{index:04d}"


def case_parameters(seed: int, index: int, *, spacing: Sequence[float] = DEFAULT_SPACING
                    ) -> tuple[int, tuple[float, float, float]]:
    """The phantom seed and jittered spacing (about +-10 %, rounded to 1 um) of case index of a dataset."""
    seed_part, spacing_part = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
    case_seed = int(seed_part.generate_state(1, np.uint64)[0])
    rng = np.random.default_rng(spacing_part)
    in_plane, through = (float(f) for f in rng.uniform(0.9, 1.1, size=2))
    sx, sy, sz = (float(s) for s in spacing)
    return case_seed, (round(sx * in_plane, 3), round(sy * in_plane, 3), round(sz * through, 3))


def generate_dataset(out: Path, *, n: int, seed: int, shape: Sequence[int] = DEFAULT_SHAPE,
                     spacing: Sequence[float] = DEFAULT_SPACING, organs: Sequence[str] | None = None,
                     troubles: Sequence[str] | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Write n phantom cases phantom_0000 ... under out; returns their folders.

    Case i uses a seed derived from (seed, i) and a spacing jittered by about +-10 % (same shape). organs and
    troubles are as in write_phantom_case and make_phantom. progress(done, n) is called after each case.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    _check_geometry(shape, spacing)
    chosen_organs = _check_organs(organs)
    if troubles is not None:
        _check_troubles(troubles)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    cases = []
    for index in range(int(n)):
        case_seed, case_spacing = case_parameters(seed, index, spacing=spacing)
        phantom = make_phantom(case_seed, shape=shape, spacing=case_spacing, troubles=troubles,
                               name=case_name(index))
        cases.append(write_phantom_case(phantom, out, organs=chosen_organs))
        if progress is not None:
            progress(index + 1, int(n))
    return cases
