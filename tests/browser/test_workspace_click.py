"""Click to correct (issue 25) in a real browser: the Click tool sends the active organ's points, its label crop and
the crop's box to POST /api/cases/{id}/click/, and the shipped click model's mask lands in the label as one undoable
edit, and in the uploaded revision voxel for voxel.

The case is phantom seed 3 (96 x 96 x 64 voxels of 1.5 x 1.5 x 2.5 mm, RAS+, so the viewer's voxel order is the
file's) whose pseudo-label misses the spleen's upper half (z >= 48; the spleen spans z 40..57). Each answer is
checked against what the page must make of it: inside the answer's box, the spleen where the mask says so over
background and the spleen itself ("protect other organs" is on), removed where it does not.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import Case, LabelSet, Round, Task
from annotation.services.imports import import_cases
from annotation.services.interactive import unpack_mask
from annotation.services.predictions import record_prediction
from annotation.services.queue import rebuild_tasks
from annotation.services.users import create_user
from ml_engine.phantoms import make_phantom
from tests.browser.conftest import (
    ScreenMap,
    open_next_case,
    seed_reference_data,
    sign_in,
    submit,
    wait_undo,
    workspace,
)
from tests.conftest import save_nifti

pytestmark = pytest.mark.django_db(transaction=True)

SPLEEN = 1
SEED = 3
CUT = 48  # the pseudo-label misses the spleen from this slice up
SLICE = 52
PASSWORD = "correct-horse-battery-1"


@pytest.fixture
def click_case(tmp_path, settings, live_server):
    seed_reference_data()
    settings.ATLAS_LEASE_MINUTES = 30
    phantom = make_phantom(SEED)
    truth = phantom.labels
    pseudo = truth.copy()
    pseudo[:, :, CUT:][truth[:, :, CUT:] == SPLEEN] = 0
    save_nifti(tmp_path / "in" / "click.nii.gz", phantom.ct, phantom.affine)
    assert import_cases(tmp_path / "in", dataset="work").ok
    case = Case.objects.get(name="click")
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    heat = np.where(truth == SPLEEN, 100, 0).astype(np.uint8)
    spot = np.argwhere(heat > 0)
    hotspot = {"voxels": len(spot), "ml": len(spot) * 1.5 * 1.5 * 2.5 / 1000,
               "centroid": [int(v) for v in spot.mean(axis=0)],
               "bbox": [[int(v) for v in spot.min(axis=0)], [int(v) for v in spot.max(axis=0)]]}
    record_prediction(case=case, round=round0,
                      pseudo_label=save_nifti(tmp_path / "p.nii.gz", pseudo, phantom.affine),
                      heatmap=save_nifti(tmp_path / "h.nii.gz", heat, phantom.affine),
                      attention={"spleen": save_nifti(tmp_path / "hs.nii.gz", heat, phantom.affine)},
                      organs=[OrganAttentionInput("spleen", hotspot["ml"], hotspot["voxels"], [hotspot])])
    rebuild_tasks(round=round0)
    create_user(username="a1", role="annotator", password=PASSWORD)
    return {"truth": truth, "pseudo": pseudo, "shape": truth.shape, "ct": phantom.ct}


def _open(page, base_url: str) -> Task:
    """Sign in, open the case with the Click tool on the spleen, at slice SLICE of the axial view."""
    sign_in(page, base_url)
    page.evaluate("localStorage.setItem('atlas.debug', '1')")  # the page exposes its viewer to tests
    open_next_case(page)
    page.click("[data-organ=spleen]")
    page.click("[data-tool-button=click]")
    assert workspace(page, "tool") == "click" and workspace(page, "active") == str(SPLEEN)
    page.wait_for_selector("[data-click-engine^='atlas-click:']")
    z = int(workspace(page, "crosshair").split(",")[2])
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(abs(SLICE - z)):
        page.keyboard.press("ArrowUp" if SLICE > z else "ArrowDown")
    page.wait_for_function("z => document.querySelector('[data-page=workspace]').dataset.crosshair.endsWith(z)",
                           arg=f",{SLICE}")
    return Task.objects.get(pk=int(workspace(page, "task")))


def _label(page, shape) -> np.ndarray:
    """The page's label (x, y, z)."""
    data = page.evaluate("() => { const l = window.atlasViewer.label(); let s = '';"
                         " for (let i = 0; i < l.length; i += 4096)"
                         " s += String.fromCharCode(...l.subarray(i, i + 4096));"
                         " return btoa(s) }")
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(shape[::-1]).transpose(2, 1, 0)


def _applied(label: np.ndarray, answer: dict, protect: bool = True, allow: np.ndarray | None = None) -> np.ndarray:
    """What the page makes of an answer: inside its box, the spleen where the mask says so (over background and the
    spleen only, under protection), removed where it does not; where `allow` (an HU range) is false, nothing."""
    (x0, y0, z0), (x1, y1, z1) = answer["box"]
    box = (slice(x0, x1 + 1), slice(y0, y1 + 1), slice(z0, z1 + 1))
    mask = unpack_mask(answer["mask"], answer["shape"])
    out = label.copy()
    crop = out[box]
    add = mask & ((crop == 0) | (crop == SPLEEN)) if protect else mask.copy()
    remove = ~mask & (crop == SPLEEN)
    if allow is not None:
        add &= allow[box]
        remove &= allow[box]
    crop[remove] = 0
    crop[add] = SPLEEN
    return out


def _prompt(page, act) -> tuple[dict, dict]:
    """Do `act` (a click on the canvas); the request's body and the answer, once the page applied it."""
    with page.expect_response(lambda r: r.url.endswith("/click/") and r.request.method == "POST",
                              timeout=60_000) as info:
        act()
    response = info.value
    assert response.status == 200, response.text()
    page.wait_for_selector("[data-click-queued='0'][data-click=done]")
    return response.request.post_data_json, response.json()


def _point(screen: ScreenMap, x: int, y: int):
    return lambda: screen.path([(x, y), (x, y)], steps=1)


def _target(truth: np.ndarray) -> tuple[int, int]:
    """The spleen's voxel on SLICE nearest its centroid there."""
    inside = np.argwhere(truth[:, :, SLICE] == SPLEEN)
    x, y = inside[np.argmin(((inside - inside.mean(axis=0)) ** 2).sum(axis=1))]
    return int(x), int(y)


def test_click_undo_click_again_and_submit(click_case, page, live_server):
    c = click_case
    truth, pseudo, shape = c["truth"], c["pseudo"], c["shape"]
    task = _open(page, live_server.url)
    screen = ScreenMap(page)
    assert screen.z == SLICE
    x, y = _target(truth)
    assert pseudo[x, y, SLICE] == 0 and truth[x, y, SLICE] == SPLEEN
    # a click on the missed spleen: one edit, the model's voxels, more spleen than before
    sent, answer = _prompt(page, _point(screen, x, y))
    assert sent["organ"] == "spleen" and sent["positive"] == [[x, y, SLICE]] and sent["negative"] == []
    (lo, hi) = sent["box"]
    assert lo[2] <= SLICE <= hi[2] and answer["box"] == sent["box"]
    assert unpack_mask(sent["label"], answer["shape"]).sum() == (pseudo[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1,
                                                                        lo[2]:hi[2] + 1] == SPLEEN).sum()
    assert answer["engine"]["name"] == "atlas-click"
    wait_undo(page, 1)
    first = _applied(pseudo, answer)
    assert np.array_equal(_label(page, shape), first)
    assert (first == SPLEEN).sum() > (pseudo == SPLEEN).sum()
    assert page.get_attribute("[data-click]", "data-click-points") == "1/0"
    assert page.get_attribute(".viewer svg.outlines", "data-markers") == "1"
    assert answer["engine"]["licence"] in page.inner_text("[data-click-licence]")
    # Ctrl+Z takes exactly that click back, and its point with it
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("Control+z")
    wait_undo(page, 0)
    assert np.array_equal(_label(page, shape), pseudo)
    page.wait_for_selector("[data-click-points='0/0']")
    # click again: only this point is sent
    sent, answer = _prompt(page, _point(screen, x, y))
    assert sent["positive"] == [[x, y, SLICE]] and sent["negative"] == []
    wait_undo(page, 1)
    expected = _applied(pseudo, answer)
    assert (expected == SPLEEN).sum() > (pseudo == SPLEEN).sum()
    # a shift-click outside the spleen is a negative point, sent with the positive one
    nx, ny = x, y
    while truth[nx, ny, SLICE] == SPLEEN:
        nx += 1
    nx += 2
    page.keyboard.down("Shift")
    sent, answer = _prompt(page, _point(screen, nx, ny))
    page.keyboard.up("Shift")
    assert sent["positive"] == [[x, y, SLICE]] and sent["negative"] == [[nx, ny, SLICE]]
    expected = _applied(expected, answer)
    assert np.array_equal(_label(page, shape), expected)
    assert page.get_attribute("[data-click]", "data-click-points") == "1/1"
    assert page.get_attribute(".viewer svg.outlines", "data-markers") == "2"
    data = submit(page, task)
    assert np.array_equal(data, expected)  # the model's voxels, voxel for voxel
    assert (data == SPLEEN).sum() > (pseudo == SPLEEN).sum()
    assert np.array_equal(data != SPLEEN, expected != SPLEEN)
    assert not page.errors


def test_right_click_is_negative_and_a_busy_engine_shows_the_wait(click_case, page, live_server):
    from annotation.ml_adapter.interactive import slots

    c = click_case
    _open(page, live_server.url)
    screen = ScreenMap(page)
    x, y = _target(c["truth"])
    wait = slots.wait
    slots.wait = 1.0
    try:
        with slots.take():  # another request holds the engine's only slot
            _point(screen, x, y)()
            page.wait_for_selector("[data-click-wait]")  # the page says it waits for the engine
            page.wait_for_selector("[data-click-busy]:has-text('retrying')", timeout=10_000)
            page.wait_for_selector("[data-click-busy]:has-text('click again')", timeout=15_000)
            assert "busy" in page.inner_text("[data-click-busy]")
            assert workspace(page, "undo") == "0"
            assert page.get_attribute("[data-click]", "data-click-points") == "0/0"  # the failed click is dropped
        sent, answer = _prompt(page, _point(screen, x, y))  # free again: the user clicks again
        assert sent["positive"] == [[x, y, SLICE]]
    finally:
        slots.wait = wait
    wait_undo(page, 1)
    expected = _applied(c["pseudo"], answer)
    # a right click (no drag: a right drag is window / level) is a negative point
    sx, sy = screen.screen(x - 6, y)
    sent, answer = _prompt(page, lambda: page.mouse.click(sx, sy, button="right"))
    assert sent["positive"] == [[x, y, SLICE]] and sent["negative"] == [[x - 6, y, SLICE]]
    expected = _applied(expected, answer)
    assert np.array_equal(_label(page, c["shape"]), expected)
    assert page.get_attribute("[data-click]", "data-click-points") == "1/1"
    # a new session forgets the points; the label stays
    page.click("[data-action=click-clear]")
    page.wait_for_selector("[data-click-points='0/0']")
    assert page.get_attribute(".viewer svg.outlines", "data-markers") == "0"
    assert np.array_equal(_label(page, c["shape"]), expected)
    assert not page.errors


def test_box_and_scribble(click_case, page, live_server):
    c = click_case
    truth, pseudo, shape = c["truth"], c["pseudo"], c["shape"]
    task = _open(page, live_server.url)
    screen = ScreenMap(page)
    x, y = _target(truth)
    inside = np.argwhere(truth[:, :, SLICE] == SPLEEN)
    (x0, y0), (x1, y1) = inside.min(axis=0) - 1, inside.max(axis=0) + 1
    # box mode: a drag draws a box on the slice, sent as box2d (the engine keeps the organ inside it there)
    page.click("[data-click-mode=box]")
    sent, answer = _prompt(page, lambda: screen.path([(int(x0), int(y0)), (int(x1), int(y1))], steps=8))
    assert sent["box2d"] == [[int(x0), int(y0), SLICE], [int(x1), int(y1), SLICE]]
    assert sent["positive"] == sent["negative"] == sent["scribbles"] == []
    expected = _applied(pseudo, answer)
    assert np.array_equal(_label(page, shape), expected)
    assert not (expected[:, :, SLICE] == SPLEEN)[np.arange(shape[0]) > x1].any()  # nothing beyond the box there
    # scribble mode: a drag through the spleen is a positive scribble; the box is not sent again. Without protection
    # and inside an HU range of 0..200 only: other organs' voxels may be taken, nothing changes outside the range
    page.click("[data-click-mode=scribble]")
    page.uncheck("[data-control=protect]")
    page.check("[data-control=hu-on]")
    page.fill("[data-control=hu-lo]", "0")
    page.fill("[data-control=hu-hi]", "200")
    page.wait_for_selector("[data-page=workspace][data-protect=off]")
    sent, answer = _prompt(page, lambda: screen.path([(x, y - 2), (x, y + 2)], steps=8))
    assert "box2d" not in sent and sent["positive"] == [] and len(sent["scribbles"]) == 1
    scribble = sent["scribbles"][0]
    assert scribble["positive"] is True and scribble["points"][0] == [x, y - 2, SLICE]
    assert scribble["points"][-1] == [x, y + 2, SLICE] and all(p[0] == x for p in scribble["points"])
    expected = _applied(expected, answer, protect=False, allow=(c["ct"] >= 0) & (c["ct"] <= 200))
    assert np.array_equal(_label(page, shape), expected)
    assert page.get_attribute("[data-click]", "data-click-scribbles") == "1"
    data = submit(page, task)
    assert np.array_equal(data, expected)
    assert (data == SPLEEN).sum() > (pseudo == SPLEEN).sum()
    assert not page.errors
