"""Members at a hotspot and the local threshold in a real browser, checked voxel by voxel in the uploaded revision.

The world's case 'big' gets three members' liver probabilities around its liver hotspot (attention at x 5..8,
y 5..8, z 4..6, so the hotspot's region is x 4..9, y 4..9, z 3..7, mostly inside the spleen at x 3..11, y 5..14,
z 3..8): nnunet 0.9 in cube A (x 5..7, y 5..7, z 4..6), swin_unetr 0.6 in A and in cube B (x 8..9, y 4..6, z 4..6),
unet 0.3 in B. Their mean is 0.50 in A and 0.30 in B.
"""

from __future__ import annotations

import numpy as np
import pytest

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import Task
from annotation.services.predictions import record_prediction
from tests.api.conftest import SHAPE
from tests.browser.conftest import changed_voxels, open_next_case, sign_in, submit, workspace
from tests.conftest import affine_for, save_nifti

pytestmark = pytest.mark.django_db(transaction=True)

LIVER = 5
A = (slice(5, 8), slice(5, 8), slice(4, 7))
B = (slice(8, 10), slice(4, 7), slice(4, 7))


def _cube(index) -> set[tuple[int, int, int]]:
    return {(x, y, z) for x in range(index[0].start, index[0].stop) for y in range(index[1].start, index[1].stop)
            for z in range(index[2].start, index[2].stop)}


@pytest.fixture
def members_world(world, tmp_path):
    affine = affine_for()
    probs = {name: np.zeros(SHAPE, dtype=np.uint8) for name in ("nnunet", "swin_unetr", "unet")}
    probs["nnunet"][A] = 230
    probs["swin_unetr"][A] = probs["swin_unetr"][B] = 153
    probs["unet"][B] = 77
    files = {n: {"liver": save_nifti(tmp_path / f"m_{n}.nii.gz", p, affine)} for n, p in probs.items()}
    heat = np.zeros(SHAPE, dtype=np.uint8)
    heat[5:9, 5:9, 4:7] = 100
    record_prediction(case=world.cases["big"], round=world.round,
                      pseudo_label=save_nifti(tmp_path / "p.nii.gz", world.pseudo, affine),
                      heatmap=save_nifti(tmp_path / "h.nii.gz", heat, affine),
                      attention={"liver": save_nifti(tmp_path / "hl.nii.gz", heat, affine)}, soft_pred=files,
                      organs=[OrganAttentionInput("liver", 37.5, 3750, [{"voxels": 48, "ml": 0.3, "centroid": [6, 6, 5],
                                                                           "bbox": [[5, 5, 4], [8, 8, 6]]}]),
                              OrganAttentionInput("spleen", 12.5, 1500)])
    return world


def _open_hotspot(page, live_server) -> Task:
    sign_in(page, live_server.url)
    open_next_case(page)
    page.click("[data-hotspot-index='0']")
    assert workspace(page, "active") == str(LIVER)
    page.wait_for_selector("[data-members='nnunet,swin_unetr,unet']")
    assert page.locator("[data-members-agree]").count() == 0  # unet says no liver where nnunet says liver
    return Task.objects.get(pk=int(workspace(page, "task")))


def test_accept_a_members_version_at_the_hotspot(members_world, page, live_server):
    world = members_world
    task = _open_hotspot(page, live_server)
    # under protection, swin_unetr's version (A and B) lands on background only: B's row y = 4
    page.click("[data-member-accept=swin_unetr]")
    page.wait_for_selector("[data-page=workspace][data-undo='1']")
    assert workspace(page, "stroke-voxels") == str(2 * 3)
    page.click("[data-action=undo]")
    page.wait_for_selector("[data-page=workspace][data-undo='0']")
    page.uncheck("[data-control=protect]")
    # keys: m shows the next member's version (nnunet first), a keeps it
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("m")
    page.wait_for_selector("[data-member-show=nnunet].on")
    assert workspace(page, "stroke-voxels") == str(27)
    page.keyboard.press("m")  # swin_unetr replaces the preview: A and B
    page.wait_for_selector("[data-member-show=swin_unetr].on")
    assert workspace(page, "stroke-voxels") == str(27 + 18) and workspace(page, "undo") == "1"
    page.keyboard.press("m")  # unet: B only (0.3 is not the organ): nothing
    page.keyboard.press("m")  # the mean: A (0.50)
    page.wait_for_selector("[data-member-show=mean].on")
    page.keyboard.press("a")
    page.wait_for_selector("[data-member-show=''].on")
    assert workspace(page, "undo") == "1"
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == _cube(A)
    assert all(data[v] == LIVER for v in _cube(A))
    assert not page.errors


# the members' outlines' edge counts on the slice (the snap's proposal, one more outline, is test_workspace_snap's)
MEMBER_EDGES = "document.querySelector('.viewer svg.outlines').dataset.outlineEdges.replace(/,?snap:\\d+/, '')"


def _edges(mask: np.ndarray) -> int:
    """Voxel edges between inside and outside of a 2D mask (outside the array counts as outside)."""
    padded = np.pad(mask, 1)
    return int((padded[1:] != padded[:-1]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())


def test_members_drawn_as_outlines_on_the_slice(members_world, page, live_server):
    _open_hotspot(page, live_server)
    svg = page.locator(".viewer svg.outlines")
    # the hotspot's centroid slice z = 5: nnunet's A, swin_unetr's A and B, unet nothing (0.3), the mean A (0.50)
    a, b = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    a[A[0], A[1]] = True
    b[B[0], B[1]] = True
    expected = f"nnunet:{_edges(a)},swin_unetr:{_edges(a | b)},unet:0,mean:{_edges(a)}"
    page.wait_for_function("e => " + MEMBER_EDGES + " === e",
                           arg=expected)
    assert expected == "nnunet:12,swin_unetr:18,unet:0,mean:12"
    assert svg.locator("path[data-outline=nnunet]").count() == 1
    # a slice above A and B (z = 7, still inside the crop's box): nothing to outline
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    page.wait_for_function("() => " + MEMBER_EDGES + " === "
                           "'nnunet:0,swin_unetr:0,unet:0,mean:0'")
    assert svg.locator("path:not([data-outline=snap])").count() == 0
    page.keyboard.press("ArrowDown")  # z = 6: A and B again
    page.wait_for_function("e => " + MEMBER_EDGES + " === e",
                           arg=expected)
    page.uncheck("[data-control=member-outlines]")
    page.wait_for_function("() => " + MEMBER_EDGES + " === ''")
    assert not page.errors


def test_local_threshold_previews_while_dragging_and_keeps_on_release(members_world, page, live_server):
    world = members_world
    task = _open_hotspot(page, live_server)
    page.uncheck("[data-control=protect]")
    slider = page.locator("[data-control=local-threshold]")
    # a drag: input events while it moves (the preview is replaced, one edit on top), the change event at its end;
    # a later drag replaces the kept one while nothing was edited after it
    for t in ("0.35", "0.25"):
        slider.evaluate("(el, v) => { Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set"
                        ".call(el, v); el.dispatchEvent(new Event('input', { bubbles: true })) }", t)
    page.wait_for_function("document.querySelector('[data-page=workspace]').dataset.strokeVoxels === '45'")
    assert workspace(page, "undo") == "1"  # mean >= 0.25: A and B, still one edit
    slider.dispatch_event("change")  # let go: kept
    page.fill("[data-control=local-threshold]", "0.45")  # a second drag (input + change) replaces the kept one: A
    page.wait_for_function("document.querySelector('[data-page=workspace]').dataset.strokeVoxels === '27'")
    assert workspace(page, "undo") == "1"
    page.evaluate("document.activeElement && document.activeElement.blur()")  # the page's keys, not the slider's
    page.keyboard.press("Control+z")  # takes the threshold back
    page.wait_for_selector("[data-page=workspace][data-undo='0']")
    page.keyboard.press("Control+y")
    page.wait_for_selector("[data-page=workspace][data-undo='1']")
    data = submit(page, task)
    assert changed_voxels(data, world.pseudo) == _cube(A)
    assert not page.errors
