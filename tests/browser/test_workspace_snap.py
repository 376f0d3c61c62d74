"""Snap edge to CT in a real browser, checked voxel by voxel in the uploaded revision against a Python mirror of the
tool (`snap_reference`, the algorithm of frontend_static/src/viewer/ops/snap.ts on the same box).

The case (40 x 36 x 16 voxels, 1.5 x 1.5 x 2.5 mm, RAS+ so that the viewer's voxel order is the file's): fat at
-60 HU, the liver (60 HU) at x 8..27, y 6..29, z 2..13 and the postcava (120 HU) beside it at x 28..33, y 12..23,
z 2..13, with a little noise. The pseudo-label has one-voxel shell errors on the liver: a false shell in the fat at
y = 5, a missed layer at x = 8, liver voxels at x = 27 labelled postcava, and a missed layer at y = 29 outside the
hotspot. The liver's hotspot (attention at x 6..29, y 4..25, z 4..11) covers the first three.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import Case, LabelSet, Round, Task
from annotation.selectors.members import member_crops
from annotation.services.imports import import_cases
from annotation.services.predictions import record_prediction
from annotation.services.queue import rebuild_tasks
from annotation.services.users import create_user
from tests.browser.conftest import (
    changed_voxels,
    open_next_case,
    seed_reference_data,
    sign_in,
    submit,
    wait_undo,
    workspace,
)
from tests.conftest import affine_for, save_nifti

pytestmark = pytest.mark.django_db(transaction=True)

LIVER, POSTCAVA = 5, 8
SHAPE = (40, 36, 16)
PASSWORD = "correct-horse-battery-1"

# the tool's constants (viewer/ops/snap.ts)
IN_HALF, OUT_HALF, MARGIN = (7, 7, 3), (2, 2, 2), np.array([8, 8, 6])
S6 = ndimage.generate_binary_structure(3, 1)


def _box_sum(a: np.ndarray, axis: int, half: int) -> np.ndarray:
    """Sums over a window of +-half along one axis, clipped to the array."""
    c = np.cumsum(a, axis=axis)
    c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
    n = a.shape[axis]
    idx = np.arange(n)
    return np.take(c, np.minimum(idx + half + 1, n), axis=axis) - np.take(c, np.maximum(idx - half, 0), axis=axis)


def _window_mean(mask: np.ndarray, ct: np.ndarray, half: tuple[int, int, int]) -> np.ndarray:
    values, counts = np.where(mask, ct, 0.0), mask.astype(np.float64)
    for axis, h in enumerate(half):
        values, counts = _box_sum(values, axis, h), _box_sum(counts, axis, h)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, values / np.maximum(counts, 1), np.nan)


def snap_reference(organ: np.ndarray, ct: np.ndarray, region: np.ndarray, locked: np.ndarray,
                   reach: int) -> np.ndarray:
    """The organ after "Snap edge to CT" over one box (bool arrays and HU, the same shape): the band is every voxel
    within `reach` of the edge (either side) in the region and not locked; each becomes the organ iff its HU is
    closer to the local mean of the organ deeper than reach (window IN_HALF; the lower median where none) than to
    the local mean of non-organ voxels reach+1..reach+3 outside (window OUT_HALF, else IN_HALF; else unchanged);
    then the band's organ keeps only what is 6-connected to the core, and a 6-neighbour closing fills pinholes."""
    din = ndimage.distance_transform_edt(organ)
    dout = ndimage.distance_transform_edt(~organ)
    band = region & ~locked & ((organ & (din <= reach)) | (~organ & (dout <= reach)))
    inside = organ & (din > reach)
    outside = ~organ & (dout > reach) & (dout <= reach + 3)
    if not inside.any() or not band.any():
        return organ.copy()
    deep = np.sort(ct[inside])
    mu_in = _window_mean(inside, ct, IN_HALF)
    mu_in = np.where(np.isnan(mu_in), deep[(len(deep) - 1) // 2], mu_in)
    mu_out = _window_mean(outside, ct, OUT_HALF)
    mu_out = np.where(np.isnan(mu_out), _window_mean(outside, ct, IN_HALF), mu_out)
    vote = np.where(np.isnan(mu_out), organ, np.abs(ct - mu_in) < np.abs(ct - mu_out))
    core = organ & ~band
    candidate = band & np.where(band, vote, organ)
    pieces, count = ndimage.label(candidate, structure=S6)
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(pieces[ndimage.binary_dilation(core, structure=S6) & candidate])] = True
    keep[0] = False
    new = core | keep[pieces]
    return np.where(band, ndimage.binary_closing(new, structure=S6), organ)


def expected_revision(case: Case, pseudo: np.ndarray, ct: np.ndarray, hotspot: dict, reach: int, protect: bool,
                      hu: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the workspace uploads after snapping the liver at the hotspot: the server's crop and region, the tool's
    box (the crop grown by MARGIN, clipped), the mirror inside it."""
    lo = [v - 3 for v in hotspot["bbox"][0]]  # useMembers' PAD
    hi = [v + 3 for v in hotspot["bbox"][1]]
    crops = member_crops(case, organ="liver", box=",".join(map(str, lo + hi)), seed=hotspot["centroid"])
    (c0, c1) = np.array(crops.box[0]), np.array(crops.box[1])
    w0, w1 = np.maximum(c0 - MARGIN, 0), np.minimum(c1 + MARGIN, np.array(SHAPE) - 1)
    box = tuple(slice(a, b + 1) for a, b in zip(w0, w1, strict=True))
    region = np.zeros(SHAPE, dtype=bool)
    region[tuple(slice(a, b + 1) for a, b in zip(c0, c1, strict=True))] = crops.region
    label = pseudo[box]
    locked = np.zeros(label.shape, dtype=bool)
    if protect:
        locked |= (label != 0) & (label != LIVER)
    if hu is not None:
        locked |= (ct[box] < hu[0]) | (ct[box] > hu[1])
    organ = snap_reference(label == LIVER, ct[box].astype(np.float64), region[box], locked, reach)
    out = pseudo.copy()
    out[box] = np.where(organ, LIVER, np.where(label == LIVER, 0, label))
    return out, region


@pytest.fixture
def snap_case(tmp_path, settings, live_server):
    seed_reference_data()
    settings.ATLAS_LEASE_MINUTES = 30
    affine = affine_for()
    truth = np.zeros(SHAPE, dtype=np.uint8)
    truth[8:28, 6:30, 2:14] = LIVER
    truth[28:34, 12:24, 2:14] = POSTCAVA
    rng = np.random.default_rng(7)
    ct = np.where(truth == LIVER, 60, np.where(truth == POSTCAVA, 120, -60)).astype(np.int16)
    ct += rng.integers(-6, 7, size=SHAPE).astype(np.int16)
    pseudo = truth.copy()
    pseudo[10:26, 5, 5:11] = LIVER  # a false shell in the fat
    pseudo[8, 12:24, 5:11] = 0  # a missed layer
    pseudo[27, 14:22, 5:11] = POSTCAVA  # the liver's voxels taken by the postcava
    pseudo[12:24, 29, 5:11] = 0  # a missed layer outside the hotspot
    save_nifti(tmp_path / "in" / "snap.nii.gz", ct, affine)
    assert import_cases(tmp_path / "in", dataset="work").ok
    case = Case.objects.get(name="snap")
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    heat = np.zeros(SHAPE, dtype=np.uint8)
    heat[6:30, 4:26, 4:12] = 100
    spot = np.argwhere(heat > 0)
    hotspot = {"voxels": len(spot), "ml": len(spot) * 1.5 * 1.5 * 2.5 / 1000,
               "centroid": [int(v) for v in spot.mean(axis=0)],
               "bbox": [[int(v) for v in spot.min(axis=0)], [int(v) for v in spot.max(axis=0)]]}
    members = {name: save_nifti(tmp_path / f"{name}.nii.gz", np.where(truth == LIVER, p, 0).astype(np.uint8), affine)
               for name, p in (("nnunet", 230), ("swin_unetr", 200), ("unet", 160))}
    record_prediction(case=case, round=round0, pseudo_label=save_nifti(tmp_path / "p.nii.gz", pseudo, affine),
                      heatmap=save_nifti(tmp_path / "h.nii.gz", heat, affine),
                      attention={"liver": save_nifti(tmp_path / "hl.nii.gz", heat, affine)},
                      soft_pred={n: {"liver": p} for n, p in members.items()},
                      organs=[OrganAttentionInput("liver", hotspot["ml"], hotspot["voxels"], [hotspot])])
    rebuild_tasks(round=round0)
    create_user(username="a1", role="annotator", password=PASSWORD)
    return {"case": case, "truth": truth, "pseudo": pseudo, "ct": ct, "hotspot": hotspot}


def _open_hotspot(page, base_url: str) -> Task:
    sign_in(page, base_url)
    page.evaluate("localStorage.setItem('atlas.debug', '1')")
    open_next_case(page)
    page.click("[data-hotspot-index='0']")
    page.wait_for_selector("[data-members]")
    assert workspace(page, "active") == str(LIVER)
    return Task.objects.get(pk=int(workspace(page, "task")))


def test_snap_edge_under_protection(snap_case, page, live_server):
    c = snap_case
    task = _open_hotspot(page, live_server.url)
    expected, region = expected_revision(c["case"], c["pseudo"], c["ct"], c["hotspot"], reach=1, protect=True)
    page.click("[data-action=snap-edge]")  # the preview: one edit on top of the history
    wait_undo(page, 1)
    assert workspace(page, "stroke-voxels") == str(int((expected != c["pseudo"]).sum()))
    page.click("[data-action=snap-apply]")
    data = submit(page, task)
    assert np.array_equal(data, expected)
    changed = changed_voxels(data, c["pseudo"])
    assert changed and all(region[v] for v in changed)  # nothing outside the hotspot's region
    assert np.array_equal(data == POSTCAVA, c["pseudo"] == POSTCAVA)  # the postcava neither loses nor gains
    # the shell in the fat and the missed layer inside the region are fixed; the one outside it is not
    assert (data[10:26, 5, 5:11] == 0).all() and (data[8, 12:24, 5:11] == LIVER).all()
    assert (data[12:24, 29, 5:11] == 0).all()
    # in the region the liver is now the truth but where the postcava's label holds it (protected), and a few voxels
    # beside those (the wrong postcava label there spoils the local mean outside)
    wrong = ((data == LIVER) != (c["truth"] == LIVER)) & region
    held = (c["pseudo"] == POSTCAVA) & (c["truth"] == LIVER)
    assert held[wrong].sum() == held.sum() == 48 and (wrong & ~held).sum() <= 10
    assert not page.errors


def test_snap_edge_reach_hu_range_undo_and_keys(snap_case, page, live_server):
    c = snap_case
    task = _open_hotspot(page, live_server.url)
    # k previews, Cancel takes it back; an applied snap is undone to the loaded label, then redone
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("k")
    wait_undo(page, 1)
    page.click("[data-action=snap-cancel]")
    wait_undo(page, 0)
    page.click("[data-action=snap-edge]")
    wait_undo(page, 1)
    page.click("[data-action=snap-apply]")
    page.click("[data-action=undo]")
    wait_undo(page, 0)
    assert page.evaluate("window.atlasViewer.changes().voxels") == 0
    # without protection and with an HU range of 0..300: the postcava's liver voxels are taken, the fat (-60 HU)
    # outside the range keeps its false shell; reach 2 from the control (it previews again), a keeps it
    page.uncheck("[data-control=protect]")
    page.check("[data-control=hu-on]")
    page.fill("[data-control=hu-lo]", "0")
    page.fill("[data-control=hu-hi]", "300")
    page.click("[data-action=snap-edge]")
    page.wait_for_selector("[data-page=workspace][data-redo='0'][data-undo='1']")
    page.select_option("[data-control=snap-reach]", "2")
    page.wait_for_selector("[data-action=snap-edge].on")
    expected, region = expected_revision(c["case"], c["pseudo"], c["ct"], c["hotspot"], reach=2, protect=False,
                                         hu=(0, 300))
    page.wait_for_function("n => document.querySelector('[data-page=workspace]').dataset.strokeVoxels === n",
                           arg=str(int((expected != c["pseudo"]).sum())))
    assert workspace(page, "undo") == "1"
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.keyboard.press("a")
    page.wait_for_selector("[data-action=snap-apply]:disabled")
    data = submit(page, task)
    assert np.array_equal(data, expected)
    assert all(region[v] for v in changed_voxels(data, c["pseudo"]))
    assert (data[27, 14:22, 5:11] == LIVER).all()  # taken back from the postcava (protection off)
    assert (data[10:26, 5, 5:11] == LIVER).all()  # the fat is outside the HU range: untouched
    assert not page.errors


def _label(page) -> np.ndarray:
    """The page's label (x, y, z): the viewer's voxel order is the file's here (RAS+)."""
    import base64

    data = page.evaluate("() => { const l = window.atlasViewer.label(); let s = '';"
                         " for (let i = 0; i < l.length; i += 4096)"
                         " s += String.fromCharCode(...l.subarray(i, i + 4096));"
                         " return btoa(s) }")
    return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(SHAPE[::-1]).transpose(2, 1, 0)


def _edges(page) -> dict[str, int]:
    text = page.get_attribute("svg.outlines", "data-outline-edges") or ""
    return {k: int(v) for k, v in (p.split(":") for p in text.split(",") if p)}


def test_snap_outline_at_hotspot_apply_and_undo(snap_case, page, live_server):
    c = snap_case
    task = _open_hotspot(page, live_server.url)
    expected, region = expected_revision(c["case"], c["pseudo"], c["ct"], c["hotspot"], reach=1, protect=True)
    n = int((expected != c["pseudo"]).sum())
    # on selecting the hotspot the snap's proposal is drawn as one more outline, with no edit made
    page.wait_for_selector(f"[data-snap-state='0:0:1:1:{LIVER}'][data-snap-changes='{n}']")
    assert workspace(page, "undo") == "0" and page.locator("[data-outline-colour=snap]").count() == 1
    assert _edges(page)["snap"] > 0 and page.locator("svg.outlines path[data-outline=snap]").count() == 1
    z = int(workspace(page, "crosshair").split(",")[2])
    drawn = np.array(page.evaluate(
        "([nx, ny, z]) => { const o = window.atlasSnap.outline, out = [];"
        " for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) out.push(x >= o.box.x0 && x <= o.box.x1 &&"
        " y >= o.box.y0 && y <= o.box.y1 && o.inside(x, y, z) ? 1 : 0); return out }", [SHAPE[0], SHAPE[1], z]),
        dtype=bool).reshape(SHAPE[1], SHAPE[0]).T
    inside = region[:, :, z]
    assert inside.any() and np.array_equal(drawn[inside], expected[:, :, z][inside] == LIVER)
    # toggled with the members' outlines
    page.uncheck("[data-control=member-outlines]")
    assert "snap" not in _edges(page)
    page.check("[data-control=member-outlines]")
    page.wait_for_function("() => (document.querySelector('svg.outlines').dataset.outlineEdges || '')"
                           ".includes('snap:')")
    # Apply snap: one undoable edit, the tool's voxels; the proposal is then recomputed on the new label
    page.click("[data-action=snap-use]")
    wait_undo(page, 1)
    applied = _label(page)
    assert np.array_equal(applied, expected)
    page.wait_for_selector(f"[data-snap-state='1:0:1:1:{LIVER}']")
    assert int(page.get_attribute(".snap", "data-snap-changes")) < n
    # undo restores the loaded label (and the proposal)
    page.click("[data-action=undo]")
    wait_undo(page, 0)
    assert page.evaluate("window.atlasViewer.changes().voxels") == 0
    assert np.array_equal(_label(page), c["pseudo"])
    page.wait_for_selector(f"[data-snap-state='0:1:1:1:{LIVER}'][data-snap-changes='{n}']")
    # the preview path (Snap edge to CT, then Apply) gives the same voxels; the outline hides while it previews
    page.click("[data-action=snap-edge]")
    page.wait_for_selector("[data-page=workspace][data-undo='1'][data-redo='0']")
    page.wait_for_function("() => !(document.querySelector('svg.outlines').dataset.outlineEdges || '')"
                           ".includes('snap:')")
    page.click("[data-action=snap-apply]")
    assert np.array_equal(_label(page), applied)
    assert np.array_equal(submit(page, task), expected)
    assert not page.errors


def test_snap_says_why_it_has_no_proposal(snap_case, page, live_server):
    """The snap's element answers for the current settings, always: its proposal's state, or that state with
    `:none:<why>`. With the active organ not the selected hotspot's (the members, threshold and snap work on the
    hotspot's organ), the page says so rather than dropping the tools without a word (the effort benchmark waited a
    minute for a proposal the page would never draw); a preview on the label hides the proposal and says so."""
    _open_hotspot(page, live_server.url)
    page.wait_for_selector(f"[data-snap-state='0:0:1:1:{LIVER}']")
    page.click(f"[data-organ][data-value='{POSTCAVA}']")
    page.uncheck("[data-control=protect]")
    page.wait_for_selector(f".snap[data-snap-state='0:0:1:0:{POSTCAVA}:none:other-organ']", state="attached")
    assert "Liver's" in page.inner_text("[data-members-unavailable=other-organ]")
    assert page.evaluate("window.atlasSnap") is None and "snap" not in _edges(page)
    # back on the hotspot's organ: the proposal for the new settings
    page.click(f"[data-organ][data-value='{LIVER}']")
    page.wait_for_selector(f".snap[data-snap-state='0:0:1:0:{LIVER}']")
    assert page.locator("[data-members-unavailable]").count() == 0
    page.click("[data-action=snap-edge]")
    page.wait_for_selector(f".snap[data-snap-state='1:0:1:0:{LIVER}:none:preview']")
    page.click("[data-action=snap-cancel]")
    page.wait_for_selector(f".snap[data-snap-state='0:1:1:0:{LIVER}']")
    assert not page.errors
