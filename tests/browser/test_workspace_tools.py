"""The workspace's other tools in a real browser: right-drag window / level, the filled outline, the eraser, drawing
in the coronal and sagittal views, and the slice-local drawing updates behind large volumes.

Assertions are on data: the server's revision files, the page's data-* attributes, and (through the viewer that the
page exposes when localStorage atlas.debug = 1) the textures on the GPU read back as numbers, never screenshots.
The test case is the API tests' world: 24 x 20 x 12 voxels, spleen (1) at x 3..11 and liver (5) at x 12..20, both
at y 5..14, z 3..8; an identity orientation, so the viewer's voxel order is the file's.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from django.core.files.storage import default_storage

from annotation.models import Task
from tests.browser.conftest import (
    ScreenMap,
    ViewMap,
    changed_voxels,
    open_next_case,
    sign_in,
    submit,
    wait_undo,
    workspace,
)

pytestmark = pytest.mark.django_db(transaction=True)

LIVER, SPLEEN = 5, 1
AXES = "xyz"


def _open(page, live_server, debug: bool = False) -> Task:
    sign_in(page, live_server.url)
    if debug:
        page.evaluate("localStorage.setItem('atlas.debug', '1')")
    open_next_case(page)
    return Task.objects.get(pk=int(workspace(page, "task")))


def _select(page, organ: str, tool: str, brush: int = 1) -> None:
    page.click(f"[data-organ={organ}]")
    page.click(f"[data-tool-button={tool}]")
    page.fill("[data-control=brush]", str(brush))
    assert workspace(page, "tool") == tool and workspace(page, "brush") == str(brush)


def _painted(pseudo: np.ndarray, voxels) -> set[tuple[int, int, int]]:
    """The voxels a liver pen changes under "protect other organs": background ones only."""
    return {v for v in voxels if pseudo[v] == 0}


def _window(page) -> tuple[int, int]:
    width, level = workspace(page, "window").split("/")
    return int(width), int(level)


def _right_drag(page, dx: float, dy: float) -> None:
    box = page.locator(".viewer canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x + dx, y + dy, steps=8)
    page.mouse.up(button="right")


def test_right_drag_changes_window_and_level(world, page, live_server):
    task = _open(page, live_server, debug=True)
    assert _window(page) == (400, 40)
    ct = np.asarray(nib.load(default_storage.path(task.case.ct_file.name)).dataobj)
    # down: the level falls (both ends move down; the top end is clamped to the CT's maximum, 59 HU or so)
    _right_drag(page, 0, 40)
    width1, level1 = _window(page)
    assert level1 < 40
    assert page.get_attribute("[data-window-preset=abdomen]", "class") != "on"
    # right: the window widens (the bottom end moves down freely); left: it narrows again
    _right_drag(page, 40, 0)
    width2, level2 = _window(page)
    assert width2 > width1
    _right_drag(page, -20, 0)
    width3, _ = _window(page)
    assert width3 < width2
    # the CT on the GPU is blended with the new window: a voxel's grey is (HU - low) / width, within rounding
    low, high = page.evaluate("""() => {
        const v = window.atlasViewer.nv.volumes[0];
        return [v.cal_min, v.cal_max];
    }""")
    width, level = _window(page)
    assert abs(width - (high - low)) <= 1 and abs(level - (high + low) / 2) <= 1
    voxel = (12, 10, 6)
    hu = float(ct[voxel])
    expected = round(255 * min(1.0, max(0.0, (hu - low) / (high - low))))
    page.wait_for_function("""([voxel, expected]) => {
        const [r, g, b] = window.atlasViewer.backgroundColour(voxel);
        return Math.abs(r - expected) <= 3 && r === g && g === b;
    }""", arg=[list(voxel), expected], timeout=20_000)
    # a preset puts the window back, on the GPU too
    page.click("[data-window-preset=abdomen]")
    assert _window(page) == (400, 40)
    expected = round(255 * min(1.0, max(0.0, (hu + 160) / 400)))
    grey = page.evaluate("voxel => window.atlasViewer.backgroundColour(voxel)[0]", list(voxel))
    assert abs(grey - expected) <= 3
    assert not page.errors


def test_filled_outline_fills_inside_and_protects_other_organs(world, page, live_server):
    task = _open(page, live_server)
    _select(page, "liver", "fill")
    view = ViewMap(page)
    assert (AXES[view.h], AXES[view.v]) == ("x", "y")
    z = view.slice
    assert 3 <= z <= 8  # the slice crosses both organs
    # a rectangle x 1..8, y 12..17: its top-right corner holds spleen (x 3..8, y 12..14), which stays spleen
    corners = [(1, 12), (8, 12), (8, 17), (1, 17), (1, 12)]
    view.path(corners)
    wait_undo(page, 1)
    inside = {(x, y, z) for x in range(1, 9) for y in range(12, 18)}
    expected = _painted(world.pseudo, inside)
    assert len(expected) == 8 * 6 - 6 * 3
    assert workspace(page, "stroke-voxels") == str(len(expected))
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == expected
    assert all(data[v] == LIVER for v in expected)
    assert all(data[x, y, z] == SPLEEN for x in range(3, 9) for y in range(12, 15))


def test_eraser_removes_the_active_organ_only(world, page, live_server):
    task = _open(page, live_server)
    _select(page, "liver", "eraser")
    screen = ScreenMap(page)
    z = screen.z
    screen.stroke((1, 10), (22, 10))  # background, spleen 3..11, liver 12..20, background
    wait_undo(page, 1)
    expected = {(x, 10, z) for x in range(12, 21)}
    assert workspace(page, "stroke-voxels") == str(len(expected))
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == expected
    assert all(data[v] == 0 for v in expected)
    assert all(data[x, 10, z] == SPLEEN for x in range(3, 12))


def test_draw_in_the_coronal_and_sagittal_views(world, page, live_server):
    task = _open(page, live_server, debug=True)
    expected: set[tuple[int, int, int]] = set()

    page.keyboard.press("2")
    assert workspace(page, "view") == "coronal"
    _select(page, "liver", "brush")
    view = ViewMap(page)
    assert (AXES[view.h], AXES[view.v], AXES[view.fixed]) == ("x", "z", "y")
    y = view.slice
    assert 5 <= y <= 14  # the slice crosses both organs
    # z 5: background, spleen (protected), liver, background
    view.path([(1, 5), (22, 5)])
    wait_undo(page, 1)
    stroke = _painted(world.pseudo, {view.voxel(x, 5) for x in range(1, 23)})
    assert len(stroke) == 4 and workspace(page, "stroke-voxels") == "4"
    expected |= stroke
    # a brush of 3 spreads in the slice's plane (x and z), never across slices (y)
    page.fill("[data-control=brush]", "3")
    view.path([(4, 10), (18, 10)])
    wait_undo(page, 2)
    stroke = {(x, y, z) for x in range(3, 20) for z in range(9, 12)}
    assert workspace(page, "stroke-voxels") == str(len(stroke))
    # undo and redo of that stroke
    page.keyboard.press("Control+z")
    page.wait_for_selector("[data-page=workspace][data-undo='1'][data-redo='1']")
    page.keyboard.press("Control+y")
    page.wait_for_selector("[data-page=workspace][data-undo='2'][data-redo='0']")
    expected |= stroke

    page.keyboard.press("3")
    assert workspace(page, "view") == "sagittal"
    page.fill("[data-control=brush]", "1")
    view = ViewMap(page)
    assert (AXES[view.h], AXES[view.v], AXES[view.fixed]) == ("y", "z", "x")
    x = view.slice
    assert 12 <= x <= 20  # the liver's column
    view.path([(2, 1), (17, 1)])  # below the organs: all background
    wait_undo(page, 3)
    stroke = {view.voxel(y, 1) for y in range(2, 18)}
    assert workspace(page, "stroke-voxels") == str(len(stroke))
    expected |= stroke
    view.path([(1, 6), (18, 6)])  # across the liver: only the background at both ends
    wait_undo(page, 4)
    stroke = _painted(world.pseudo, {view.voxel(y, 6) for y in range(1, 19)})
    assert len(stroke) == 8 and workspace(page, "stroke-voxels") == "8"
    expected |= stroke

    # what the GPU shows is what the label holds
    assert page.evaluate("window.atlasViewer.drawingTextureMismatches()") == 0
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == expected
    assert all(data[v] == LIVER for v in expected)


def test_strokes_update_only_their_box(world, page, live_server):
    """A stroke scans and uploads only the box it touched, not the volume: the slice-local path behind large cases.
    Counts, not times: after loading, one whole-volume upload of the drawing; strokes, undo and redo add box uploads
    only, and the GPU's drawing texture stays equal to the label."""
    _open(page, live_server, debug=True)
    assert workspace(page, "drawing-uploads") == "1/0"
    _select(page, "liver", "brush")
    screen = ScreenMap(page)
    screen.stroke((1, 17), (22, 17))
    wait_undo(page, 1)
    assert workspace(page, "stroke-voxels") == "22"
    assert workspace(page, "stroke-scanned") == "22"  # the stroke's row, not the 5,760 voxels of the volume
    full, boxes = (int(n) for n in workspace(page, "drawing-uploads").split("/"))
    assert full == 1 and boxes >= 1
    # protected voxels are put back, in the label and on the GPU
    screen.stroke((1, 10), (22, 10))
    wait_undo(page, 2)
    assert workspace(page, "stroke-voxels") == "4" and workspace(page, "stroke-scanned") == "22"
    page.keyboard.press("Control+z")
    page.wait_for_selector("[data-page=workspace][data-undo='1'][data-redo='1']")
    page.keyboard.press("Control+y")
    page.wait_for_selector("[data-page=workspace][data-undo='2'][data-redo='0']")
    full, more = (int(n) for n in workspace(page, "drawing-uploads").split("/"))
    assert full == 1 and more > boxes
    assert page.evaluate("window.atlasViewer.drawingTextureMismatches()") == 0
    assert not page.errors
