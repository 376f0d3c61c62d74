"""The correction tools in a real browser, checked voxel by voxel in the uploaded revision: the 3D sphere brush,
the HU range, click-to-grow, 3D clean-up and slice interpolation. Each is one undoable edit, honours "protect other
organs", and changes nothing outside its reach.

The case is the API tests' world: 24 x 20 x 12 voxels of 1.5 x 1.5 x 2.5 mm, spleen (1) at x 3..11 and liver (5) at
x 12..20, both at y 5..14, z 3..8; the CT is 40 +- 20 HU inside x 3..20, y 3..16, z 2..9 and -1000 +- 20 outside.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from django.core.files.storage import default_storage
from scipy import ndimage

from annotation.models import Prediction, Task
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
from tests.conftest import affine_for, save_nifti

pytestmark = pytest.mark.django_db(transaction=True)

LIVER, SPLEEN = 5, 1
SPACING = np.array([1.5, 1.5, 2.5])


def _open(page, live_server) -> Task:
    sign_in(page, live_server.url)
    open_next_case(page)
    return Task.objects.get(pk=int(workspace(page, "task")))


def _tool(page, organ: str, tool: str) -> None:
    page.click(f"[data-organ={organ}]")
    page.click(f"[data-tool-button={tool}]")
    assert workspace(page, "tool") == tool


def _key(page, key: str) -> None:
    """A shortcut, with the focus out of any input (where keys type instead)."""
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press(key)


def _click(page, screen: ScreenMap, x: int, y: int) -> None:
    screen.path([(x, y), (x, y)], steps=1)


def _ct(task: Task) -> np.ndarray:
    return np.asarray(nib.load(default_storage.path(task.case.ct_file.name)).dataobj).astype(float)


def _ball(centre, radius_mm: float, shape) -> set[tuple[int, int, int]]:
    grid = np.indices(shape).reshape(3, -1).T
    d2 = (((grid - np.array(centre)) * SPACING) ** 2).sum(axis=1)
    return {tuple(int(v) for v in g) for g in grid[d2 <= radius_mm ** 2 + 1e-6]}


def test_sphere_brush_paints_a_ball_across_slices(world, page, live_server):
    task = _open(page, live_server)
    _tool(page, "liver", "sphere")
    page.fill("[data-control=sphere-mm]", "4")
    screen = ScreenMap(page)
    z = screen.z
    # at the spleen / liver corner: the ball spans z - 1..z + 1 (4 mm over 2.5 mm slices), x and y +- 2
    _click(page, screen, 11, 14)
    wait_undo(page, 1)
    ball = _ball((11, 14, z), 4.0, world.pseudo.shape)
    assert {v[2] for v in ball} == {z - 1, z, z + 1}
    expected = {v for v in ball if world.pseudo[v] == 0}  # protected: the spleen stays
    assert expected and any(world.pseudo[v] == SPLEEN for v in ball)
    assert workspace(page, "stroke-voxels") == str(len(expected))
    # a drag is one edit too
    screen.stroke((2, 18), (6, 18), steps=6)
    wait_undo(page, 2)
    stroke = set().union(*(_ball((x, 18, z), 4.0, world.pseudo.shape) for x in range(2, 7)))
    assert workspace(page, "stroke-voxels") == str(len(stroke))
    _key(page, "Control+z")
    page.wait_for_selector("[data-page=workspace][data-undo='1'][data-redo='1']")
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == expected
    assert all(data[v] == LIVER for v in expected)
    assert not page.errors


def test_hu_range_limits_the_brush(world, page, live_server):
    task = _open(page, live_server)
    ct = _ct(task)
    _tool(page, "liver", "brush")
    page.fill("[data-control=brush]", "1")
    page.check("[data-control=hu-on]")
    page.fill("[data-control=hu-lo]", "-100")
    page.fill("[data-control=hu-hi]", "300")
    screen = ScreenMap(page)
    z = screen.z
    screen.stroke((1, 15), (22, 15))  # background all along; the CT's box is x 3..20
    wait_undo(page, 1)
    expected = {(x, 15, z) for x in range(1, 23) if -100 <= ct[x, 15, z] <= 300}
    assert {x for x, _, _ in expected} == set(range(3, 21))
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == expected
    assert not page.errors


def _grow(ct, label, seed, radius_mm, lo, hi, plane: bool) -> set[tuple[int, int, int]]:
    """Face-connected growing from the seed through voxels in [lo, hi], within the radius, over background or liver."""
    seen, out, todo = {seed}, set(), deque([seed])
    while todo:
        v = todo.popleft()
        if (((np.array(v) - seed) * SPACING) ** 2).sum() > radius_mm ** 2 + 1e-6:
            continue
        if not (lo <= ct[v] <= hi) or label[v] not in (0, LIVER):
            continue
        out.add(v)
        for axis in range(2 if plane else 3):
            for step in (-1, 1):
                n = list(v)
                n[axis] += step
                n = tuple(n)
                if n not in seen and all(0 <= n[k] < label.shape[k] for k in range(3)):
                    seen.add(n)
                    todo.append(n)
    return out


def test_click_to_grow_in_the_slice_and_in_3d(world, page, live_server):
    task = _open(page, live_server)
    ct = _ct(task)
    _tool(page, "liver", "grow")
    page.fill("[data-control=hu-lo]", "-100")
    page.fill("[data-control=hu-hi]", "300")
    page.fill("[data-control=grow-mm]", "6")
    page.uncheck("[data-control=grow-3d]")
    screen = ScreenMap(page)
    z = screen.z
    # in the slice: from the background between the organs' bottom edge and the CT's box edge, the spleen blocks
    _click(page, screen, 9, 15)
    wait_undo(page, 1)
    grown = _grow(ct, world.pseudo, (9, 15, z), 6.0, -100, 300, plane=True)
    first = {v for v in grown if world.pseudo[v] == 0}
    assert {v[2] for v in first} == {z} and all(v[1] <= 16 for v in first)  # y 17.. is air (-1000 HU)
    assert workspace(page, "stroke-voxels") == str(len(first))
    # in 3D, elsewhere
    page.check("[data-control=grow-3d]")
    page.fill("[data-control=grow-mm]", "4")
    _click(page, screen, 18, 16)
    wait_undo(page, 2)
    after_first = world.pseudo.copy()
    for v in first:
        after_first[v] = LIVER
    grown = _grow(ct, after_first, (18, 16, z), 4.0, -100, 300, plane=False)
    second = {v for v in grown if after_first[v] == 0}
    assert len({v[2] for v in second}) == 3
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == first | second
    assert not page.errors


def test_cleanup_islands_holes_and_largest(world, page, live_server):
    task = _open(page, live_server)
    _tool(page, "liver", "brush")
    page.fill("[data-control=brush]", "1")
    screen = ScreenMap(page)
    z = screen.z
    assert 4 <= z <= 7  # a hole here is enclosed in 3D
    screen.stroke((1, 18), (2, 18))  # an island of 2 voxels
    wait_undo(page, 1)
    _click(page, screen, 22, 18)  # an island of 1 voxel
    wait_undo(page, 2)
    _tool(page, "liver", "eraser")
    _click(page, screen, 16, 10)  # a hole in the liver
    wait_undo(page, 3)
    # 0.01 mL is 1.8 voxels of 5.625 mm3: islands of 1 voxel go, of 2 stay
    page.fill("[data-control=island-ml]", "0.01")
    page.click("[data-action=remove-islands]")
    wait_undo(page, 4)
    assert workspace(page, "stroke-voxels") == "1"
    page.click("[data-action=fill-holes]")
    wait_undo(page, 5)
    assert workspace(page, "stroke-voxels") == "1"
    page.click("[data-action=keep-largest]")
    wait_undo(page, 6)
    assert workspace(page, "stroke-voxels") == "2"
    assert int(workspace(page, "stroke-scanned")) < world.pseudo.size  # the organ's box, not the volume
    page.click("[data-action=undo]")
    page.wait_for_selector("[data-page=workspace][data-undo='5'][data-redo='1']")
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == {(1, 18, z), (2, 18, z)}
    assert data[1, 18, z] == data[2, 18, z] == LIVER
    assert not page.errors


def _random_label(reference: np.ndarray, seed: int) -> np.ndarray:
    """The world's label with work for every clean-up: liver islands of 1 to 6 voxels in the background, holes of
    background and of spleen inside the liver."""
    rng = np.random.default_rng(seed)
    label = reference.copy()
    for _ in range(int(rng.integers(8, 14))):  # holes
        x, y, z = rng.integers((13, 6, 4), (20, 14, 8))
        label[x, y, z] = SPLEEN if rng.random() < 0.25 else 0
    near = ndimage.binary_dilation(label == LIVER, np.ones((3, 3, 3)), iterations=2)
    for _ in range(int(rng.integers(6, 10))):  # islands, each a random walk of up to 6 voxels
        free = np.argwhere((label == 0) & ~near)
        voxel = free[rng.integers(len(free))]
        for _ in range(int(rng.integers(1, 7))):
            if label[tuple(voxel)] == 0 and not near[tuple(voxel)]:
                label[tuple(voxel)] = LIVER
            voxel = np.clip(voxel + rng.integers(-1, 2, 3), 0, np.array(label.shape) - 1)
        near = ndimage.binary_dilation(label == LIVER, np.ones((3, 3, 3)))  # islands one voxel apart at least
    return label


def _cleaned(label: np.ndarray, op: str, min_voxels: int, protect: bool) -> np.ndarray:
    """The clean-up by scipy: liver components 26-connected, background 6-connected inside the liver's box grown by
    one voxel (and clipped to the volume)."""
    out = label.copy()
    liver = label == LIVER
    if op in ("remove-islands", "keep-largest"):
        parts, n = ndimage.label(liver, np.ones((3, 3, 3)))
        sizes = np.bincount(parts.ravel())[1:]
        if op == "remove-islands":
            drop = [k + 1 for k in range(n) if sizes[k] < min_voxels]
        else:
            assert (sizes == sizes.max()).sum() == 1
            drop = [k + 1 for k in range(n) if k != int(np.argmax(sizes))]
        out[np.isin(parts, drop)] = 0
        return out
    where = np.argwhere(liver)
    lo, hi = np.maximum(where.min(0) - 1, 0), np.minimum(where.max(0) + 2, label.shape)
    crop = label[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    parts, _ = ndimage.label(crop != LIVER)
    faces = np.concatenate([parts[[0, -1]].ravel(), parts[:, [0, -1]].ravel(), parts[:, :, [0, -1]].ravel()])
    enclosed = (parts > 0) & ~np.isin(parts, faces)
    if protect:
        enclosed &= crop == 0
    out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]][enclosed] = LIVER
    return out


@pytest.mark.parametrize(("op", "seed"), [("remove-islands", 1), ("keep-largest", 2), ("fill-holes", 3)])
def test_cleanup_matches_scipy_on_a_random_label(world, page, live_server, op, seed):
    """Each clean-up, after the page's idle-time warm-up (which changes nothing), gives scipy's voxels exactly."""
    label = _random_label(world.pseudo, seed)
    for prediction in Prediction.objects.filter(round=world.round):
        save_nifti(Path(default_storage.path(prediction.pseudo_label.name)), label, affine_for())
    task = _open(page, live_server)
    page.wait_for_function("() => performance.getEntriesByName('atlas:warmup:done').length > 0", polling=100,
                           timeout=60_000)
    assert workspace(page, "undo") == "0"
    page.click("[data-organ=liver]")
    page.fill("[data-control=island-ml]", "0.02")  # 3.6 voxels of 5.625 mm3: islands of 1 to 3 voxels go
    protect = page.is_checked("[data-control=protect]")
    expected = _cleaned(label, op, 4, protect)
    assert (expected != label).sum() > 0
    page.click(f"[data-action={op}]")
    wait_undo(page, 1)
    assert int(workspace(page, "stroke-voxels")) == int((expected != label).sum())
    data = submit(page, task)
    assert changed_voxels(data, expected) == set()
    assert not page.errors


@pytest.mark.parametrize(("view", "keys", "rectangle"), [
    # axial: x 9..16, y 13..17 on slices z 3 and 8, over spleen (kept), liver and background
    ("1", (3, 8), [(9, 13), (16, 13), (16, 17), (9, 17), (9, 13)]),
    # coronal: x 9..16, z 0..4 on slices y 6 and 12 (the organs start at z 3)
    ("2", (6, 12), [(9, 0), (16, 0), (16, 4), (9, 4), (9, 0)]),
])
def test_interpolate_between_painted_slices(world, page, live_server, view, keys, rectangle):
    task = _open(page, live_server)
    _key(page, view)
    _tool(page, "liver", "fill")
    screen = ViewMap(page)
    axis, s = screen.fixed, screen.slice
    for key in keys:
        for _ in range(20):
            if s == key:
                break
            _key(page, "ArrowUp" if key > s else "ArrowDown")
            s = screen.hover(*screen.screen(15, 4))[axis]
        screen = ViewMap(page)
        assert screen.slice == key
        screen.path(rectangle)
    wait_undo(page, 2)
    _key(page, "i")
    wait_undo(page, 3)
    workspace_voxels = int(workspace(page, "stroke-voxels"))
    data = submit(page, task)
    changed = changed_voxels(data, world.pseudo)
    # the key slices hold what the outline filled (NiiVue's fill; at least the rectangle's background part), the
    # same on both; the slices between take that shape; nothing changes outside the key slices' span, and the spleen
    # stays
    plane = [k for k in range(3) if k != axis]

    def on(slice_: int) -> set[tuple[int, int]]:
        return {(v[plane[0]], v[plane[1]]) for v in changed if v[axis] == slice_}

    def voxel(a: int, b: int, slice_: int) -> tuple[int, int, int]:
        v = [0, 0, 0]
        v[plane[0]], v[plane[1]], v[axis] = a, b, slice_
        return tuple(v)

    key = on(keys[0])
    assert key and key == on(keys[1])
    (a0, b0), (a1, b1) = rectangle[0], rectangle[2]
    assert key >= {(a, b) for a in range(a0, a1 + 1) for b in range(b0, b1 + 1)
                   if world.pseudo[voxel(a, b, keys[0])] == 0}
    between = {voxel(a, b, k) for a, b in key for k in range(keys[0] + 1, keys[1])
               if world.pseudo[voxel(a, b, k)] == 0}
    assert workspace_voxels == len(between) > 0
    assert changed == {voxel(a, b, k) for a, b in key for k in keys} | between
    assert all(data[v] == LIVER for v in changed)
    assert np.all(data[world.pseudo == SPLEEN] == SPLEEN)
    assert not page.errors


def test_every_voxel_of_the_slice_takes_the_brush(world, page, live_server):
    """The slice's edge rows and columns lie on the canvas, not under the status line (NiiVue sizes the canvas to
    its parent: a canvas beside the status line drew its last rows beneath it, where no click reached): the brush
    paints each corner voxel of the displayed slice. A wide window: the slice then fills the canvas's height."""
    page.set_viewport_size({"width": 1900, "height": 640})
    task = _open(page, live_server)
    _tool(page, "liver", "brush")
    page.fill("[data-control=brush]", "1")
    screen = ScreenMap(page)
    nx, ny = world.pseudo.shape[:2]
    corners = [(0, 0), (nx - 1, 0), (0, ny - 1), (nx - 1, ny - 1)]
    for k, (x, y) in enumerate(corners, start=1):
        sx, sy = screen.screen(x, y)
        assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).tagName", [sx, sy]) == "CANVAS", (x, y)
        _click(page, screen, x, y)
        wait_undo(page, k)
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == {(x, y, screen.z) for x, y in corners}
