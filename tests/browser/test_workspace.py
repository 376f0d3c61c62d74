"""The annotator workspace in a real browser: sign in, open the next case, paint, submit, confirm, skip, 409.

Assertions are on data: the server's revision files and rows, and the page's data-* attributes.
"""

from __future__ import annotations

import numpy as np
import pytest

from annotation.models import Revision, Task
from tests.browser.conftest import ScreenMap, open_next_case, revision_data, sign_in, workspace

pytestmark = pytest.mark.django_db(transaction=True)

LIVER, SPLEEN = 5, 1


def _select(page, organ: str, tool: str, brush: int = 1) -> None:
    page.click(f"[data-organ={organ}]")
    page.click(f"[data-tool-button={tool}]")
    page.fill("[data-control=brush]", str(brush))
    assert workspace(page, "tool") == tool and workspace(page, "brush") == str(brush)


def _paint(page, screen: ScreenMap, start, end, expect_undo: int) -> None:
    screen.stroke(start, end)
    page.wait_for_selector(f"[data-page=workspace][data-undo='{expect_undo}']")


def _back_in_queue(page) -> None:
    """Wait for the queue page after Submit / Confirm / Skip; on failure, say what the workspace showed."""
    try:
        page.wait_for_selector("[data-page=queue] [data-flash]", timeout=20_000)
    except Exception as exc:
        shown = page.locator("[role=alert]").all_inner_texts()
        raise AssertionError(f"the page did not return to the queue; it shows {shown}") from exc


def _expected(pseudo: np.ndarray, z: int, row: int, x_from: int, x_to: int, value: int) -> set[tuple[int, int, int]]:
    """Voxels a one-voxel stroke along `row` changes under "protect other organs": background ones only."""
    return {(x, row, z) for x in range(x_from, x_to + 1) if pseudo[x, row, z] == 0 and value != 0}


def _changed(data: np.ndarray, reference: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in idx) for idx in np.argwhere(data != reference)}


def test_root_shows_the_login_page(world, page, live_server):
    """The page loads with no request failing: no response of 400 or above, no failed request, and no console error
    (the browser's own /favicon.ico request shows only there: Playwright does not report it as a response)."""
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: failed.append(f"{r.failure} {r.url}"))
    page.on("console", lambda m: failed.append(f"console: {m.text}") if m.type == "error" else None)
    response = page.goto(live_server.url + "/")
    assert response.status == 200
    page.wait_for_selector("[data-page=login]")
    page.wait_for_load_state("networkidle")
    assert failed == []
    icon = page.request.get(live_server.url + "/favicon.ico")
    assert (icon.status, icon.headers["content-type"]) == (200, "image/vnd.microsoft.icon")
    assert page.get_attribute("input[name=password]", "type") == "password"
    page.fill("input[name=username]", "a1")
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "wrong" in page.locator("[role=alert]").inner_text()


def test_canvas_renders_with_webgl2(world, page, live_server):
    sign_in(page, live_server.url)
    open_next_case(page)
    assert workspace(page, "webgl") == "webgl2"
    kind = page.evaluate("""() => {
        const canvas = document.querySelector('.viewer canvas');
        // a canvas that already has a context returns it; a WebGL1 or 2D canvas returns null here
        const gl = canvas.getContext('webgl2');
        return gl instanceof WebGL2RenderingContext && !gl.isContextLost() ? 'webgl2' : 'none';
    }""")
    assert kind == "webgl2", "the viewer's canvas has no WebGL2 context"
    assert not page.errors


def test_paint_a_stroke_and_submit(world, page, live_server):
    sign_in(page, live_server.url)
    open_next_case(page)
    task = Task.objects.get(pk=int(workspace(page, "task")))
    assert task.case.name == "big" and task.lease_holder.username == "a1"
    # the organ list is in attention order: liver (37.5 mL) before spleen (12.5 mL)
    organs = page.locator("[data-organ]").evaluate_all("els => els.map(e => e.dataset.organ)")
    assert organs[:2] == ["liver", "spleen"]
    _select(page, "liver", "brush")
    screen = ScreenMap(page)
    z = screen.z
    # row 10 crosses background, the spleen block (protected) and the liver block; row 17 is all background
    _paint(page, screen, (1, 10), (22, 10), expect_undo=1)
    _paint(page, screen, (5, 17), (15, 17), expect_undo=2)
    assert workspace(page, "dirty") == "yes"
    page.click("[data-action=submit]")
    page.wait_for_selector("[data-dialog=submit] [data-tags-for=liver]")
    page.locator("[data-tags-for=liver] input[type=checkbox]").first.check()
    page.click("[data-action=upload]")
    _back_in_queue(page)

    revision = Revision.objects.get(task=task)
    assert revision.kind == "revision" and revision.author.username == "a1" and revision.parent is None
    data = revision_data(revision)
    expected = _expected(world.pseudo, z, 10, 1, 22, LIVER) | _expected(world.pseudo, z, 17, 5, 15, LIVER)
    assert len(expected) == 4 + 11
    assert _changed(data, world.pseudo) == expected
    assert all(data[v] == LIVER for v in expected)
    assert revision.changed_voxels["liver"] == len(expected) and revision.changed_voxels["spleen"] == 0
    assert revision.seconds_spent > 0
    assert list(revision.tags.values_list("organ__name", flat=True)) == ["liver"]
    task.refresh_from_db()
    assert task.status == Task.Status.REVISED


def test_undo_redo_eraser_and_shortcuts(world, page, live_server):
    sign_in(page, live_server.url)
    page.evaluate("localStorage.setItem('atlas.debug', '1')")  # the page exposes its viewer to tests
    open_next_case(page)
    niivue_letters = "window.atlasViewer.nv.opts.isOrientationTextVisible"
    assert page.evaluate(niivue_letters) is False  # one set of letters: the page's markers, not NiiVue's too
    _select(page, "liver", "brush")
    screen = ScreenMap(page)
    _paint(page, screen, (5, 17), (15, 17), expect_undo=1)
    page.keyboard.press("Control+z")
    page.wait_for_selector("[data-page=workspace][data-undo='0'][data-redo='1'][data-dirty=no]")
    page.keyboard.press("Control+y")
    page.wait_for_selector("[data-page=workspace][data-undo='1'][data-redo='0'][data-dirty=yes]")
    # the eraser with liver active leaves the spleen alone and removes liver only
    page.keyboard.press("e")
    assert workspace(page, "tool") == "eraser"
    screen.stroke((4, 12), (16, 12))  # spleen 4..11, liver 12..16
    page.wait_for_selector("[data-page=workspace][data-undo='2']")
    assert workspace(page, "stroke-voxels") == "5"
    # hotspots: a click centres the views on the centroid; n / p step through them
    page.click("[data-hotspot-index='0']")
    assert workspace(page, "crosshair") == "6,6,5"
    page.keyboard.press("n")
    assert workspace(page, "hotspot") == "0"  # a single hotspot wraps around
    # views, presets, heatmap, help
    page.keyboard.press("4")
    assert workspace(page, "view") == "multiplanar"
    assert page.evaluate(niivue_letters) is True and not page.locator("[data-orient-left]").count()  # per tile
    page.click("[data-window-preset=bone]")
    assert workspace(page, "window") == "1800/400"
    page.keyboard.press("h")
    assert workspace(page, "heatmap") == "off"
    page.keyboard.press("?")
    help_text = page.locator("[data-dialog=help]").inner_text()
    assert "undo" in help_text and "next hotspot" in help_text
    # leaving with unsaved edits asks first
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
    page.keyboard.press("Escape")
    page.click("[data-action=back]")
    assert messages and "unsaved" in messages[0]
    assert workspace(page, "state") == "ready"
    assert not page.errors


def test_confirm_then_skip(world, page, live_server):
    sign_in(page, live_server.url)
    open_next_case(page)
    first = Task.objects.get(pk=int(workspace(page, "task")))
    page.click("[data-action=confirm]")
    _back_in_queue(page)
    revision = Revision.objects.get(task=first)
    assert revision.kind == "confirm"
    assert np.array_equal(revision_data(revision), world.pseudo)
    first.refresh_from_db()
    assert first.status == Task.Status.CONFIRMED

    open_next_case(page)
    second = Task.objects.get(pk=int(workspace(page, "task")))
    assert second.pk != first.pk and second.case.name == "mid"
    page.click("[data-action=skip]")
    page.fill("[data-control=skip-reason]", "the CT is cut off at the liver dome")
    page.click("[data-action=skip-confirm]")
    _back_in_queue(page)
    second.refresh_from_db()
    assert second.status == Task.Status.SKIPPED
    assert not Revision.objects.filter(task=second).exists()


def test_conflict_keeps_local_edits(world, page, live_server, tmp_path):
    from annotation.storage import store_file
    from tests.conftest import affine_for, save_nifti

    sign_in(page, live_server.url)
    open_next_case(page)
    task = Task.objects.get(pk=int(workspace(page, "task")))
    _select(page, "liver", "brush")
    screen = ScreenMap(page)
    z = screen.z
    _paint(page, screen, (5, 17), (15, 17), expect_undo=1)

    # meanwhile a lead's revision of the same case lands: one spleen voxel in a corner
    theirs = world.pseudo.copy()
    theirs[0, 0, 0] = SPLEEN
    name = f"{task.case.ct_file.name.rsplit('/', 1)[0]}/revisions/1.nii.gz"
    store_file(name, save_nifti(tmp_path / "theirs.nii.gz", theirs, affine_for()))
    other = Revision.objects.create(task=task, case=task.case, number=1, author=world.users["lead"],
                                    label_file=name, checksum="0" * 64)

    page.click("[data-action=submit]")
    page.click("[data-action=upload]")
    page.wait_for_selector("[data-conflict-banner]")
    assert workspace(page, "conflict") == str(other.pk)
    assert workspace(page, "dirty") == "yes" and workspace(page, "undo") == "1"
    assert Revision.objects.filter(case=task.case).count() == 1

    page.click("[data-action=reload-keep]")
    page.wait_for_selector("[data-notice]")
    assert workspace(page, "base-revision") == str(other.pk)
    assert workspace(page, "dirty") == "yes"
    page.click("[data-action=submit]")
    page.click("[data-action=upload]")
    _back_in_queue(page)

    mine = Revision.objects.get(case=task.case, number=2)
    assert mine.parent_id == other.pk
    data = revision_data(mine)
    stroke = _expected(world.pseudo, z, 17, 5, 15, LIVER)
    assert _changed(data, theirs) == stroke
    assert data[0, 0, 0] == SPLEEN


def test_heartbeat_keeps_the_lease(world, page, live_server):
    sign_in(page, live_server.url)
    page.evaluate("localStorage.setItem('atlas.heartbeatSeconds', '1')")
    open_next_case(page)
    task = Task.objects.get(pk=int(workspace(page, "task")))
    before = task.lease_expires
    with page.expect_response(lambda r: r.url.endswith(f"/api/tasks/{task.pk}/heartbeat/")) as response:
        pass
    assert response.value.status == 200
    task.refresh_from_db()
    assert task.lease_expires > before
