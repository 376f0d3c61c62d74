"""Compact heatmaps in a real browser: a heatmap cropped to its attention box, with its affine shifted, shows on the
CT's grid exactly where the same heatmap stored at full size shows.

NiiVue blends the CT and the heatmap overlay into one RGBA texture on the CT's grid (the overlay resampled by its
affine). The test reads that texture back voxel by voxel on every slice through the heatmap's box and around it:
once with the full-size file, once with the cropped one. A viewer that ignored the crop's affine would draw the crop
at the grid's corner: the voxels of the box would then lose their heat, which the first check catches.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from annotation.models import Prediction
from ml_engine.attention import max_heatmap
from ml_engine.io import load_on_grid, write_nifti, write_nifti_box
from tests.api.conftest import SHAPE
from tests.browser.conftest import open_next_case, sign_in
from tests.conftest import affine_for

pytestmark = pytest.mark.django_db(transaction=True)

START = (9, 6, 3)  # the heatmap's box on the CT's grid: x 9..15, y 6..10, z 3..7
CROP = (7, 5, 5)


def _heat() -> np.ndarray:
    """A heatmap with distinct values inside its box (so that a shift by one voxel shows too)."""
    full = np.zeros(SHAPE, dtype=np.uint8)
    box = tuple(slice(s, s + n) for s, n in zip(START, CROP, strict=True))
    full[box] = (40 + 5 * np.arange(np.prod(CROP)) % 215).reshape(CROP).astype(np.uint8)
    return full


def _colours(page, slices: list[int]) -> np.ndarray:
    """The heatmap overlay's [r, g, b, a] at every voxel of the given z slices of the CT's grid, (x, y, z, 4).

    NiiVue resamples every overlay onto the background's grid into one RGBA 3D texture (nv.overlayTexture): each
    z layer is read back from the GPU through a framebuffer, as the viewer's own test readouts do.
    """
    values = page.evaluate("""([nx, ny, slices]) => {
        const nv = window.atlasViewer.nv, gl = nv.gl, out = [];
        const fb = gl.createFramebuffer(), previous = gl.getParameter(gl.FRAMEBUFFER_BINDING);
        gl.bindFramebuffer(gl.FRAMEBUFFER, fb);
        for (const z of slices) {
            gl.framebufferTextureLayer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, nv.overlayTexture, 0, z);
            const rgba = new Uint8Array(nx * ny * 4);
            gl.readPixels(0, 0, nx, ny, gl.RGBA, gl.UNSIGNED_BYTE, rgba);
            out.push(...rgba);
        }
        gl.bindFramebuffer(gl.FRAMEBUFFER, previous);
        gl.deleteFramebuffer(fb);
        return out;
    }""", [SHAPE[0], SHAPE[1], slices])
    return np.asarray(values, dtype=int).reshape(len(slices), SHAPE[1], SHAPE[0], 4).transpose(2, 1, 0, 3)


def _store_everywhere(write) -> None:
    """Write every prediction's case heatmap (the file the workspace overlays) with `write(path)`."""
    for prediction in Prediction.objects.all():
        write(default_storage.path(prediction.heatmap.name))


def _open(page, live_server):
    sign_in(page, live_server.url)
    page.evaluate("localStorage.setItem('atlas.debug', '1')")  # the page exposes its viewer to tests
    open_next_case(page)
    page.wait_for_function("() => window.atlasViewer && window.atlasViewer.nv.volumes.length === 2")


def test_a_cropped_heatmap_shows_on_the_cts_grid_where_the_full_one_does(world, browser, live_server):
    affine = affine_for()
    heat = _heat()
    slices = list(range(START[2] - 1, START[2] + CROP[2] + 1))
    box = tuple(slice(s, s + n) for s, n in zip(START, CROP, strict=True))
    crop, start = max_heatmap([(heat[box], START)])
    assert start == START

    seen = {}
    for form in ("full", "cropped"):
        if form == "full":
            _store_everywhere(lambda path: write_nifti(path, heat, affine))
        else:
            _store_everywhere(lambda path: write_nifti_box(path, crop, affine, START))
            stored = Prediction.objects.first().heatmap.name
            assert load_on_grid(default_storage.path(stored), SHAPE, affine).shape == SHAPE
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        try:
            _open(page, live_server)
            dims = page.evaluate("() => window.atlasViewer.nv.volumes.map(v => [...v.hdr.dims.slice(1, 4)])")
            assert dims[0] == list(SHAPE)
            assert dims[1] == (list(SHAPE) if form == "full" else list(CROP))  # the overlay as stored
            seen[form] = _colours(page, slices)
        finally:
            context.close()
        assert not errors

    full, cropped = seen["full"], seen["cropped"]
    in_box = np.zeros(SHAPE, dtype=bool)
    in_box[box] = True
    rows = in_box[:, :, slices]
    # the full-size heatmap shows inside its box and nowhere else (alpha 0 where the heat is 0, below cal_min)
    assert (full[..., 3][rows] > 0).all() and not full[..., 3][~rows].any()
    # the cropped heatmap gives the same overlay at every voxel, inside its box and around it: the same opacity
    # everywhere and the same colour wherever it is visible (a transparent voxel's colour bytes do not show)
    assert np.abs(cropped[..., 3] - full[..., 3]).max() <= 1
    visible = full[..., 3] > 0
    assert np.abs(cropped[visible] - full[visible]).max() <= 1, np.argwhere(
        visible & (np.abs(cropped - full).max(axis=-1) > 1))[:5]
