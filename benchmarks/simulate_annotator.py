"""The annotator effort benchmark: a scripted annotator corrects errors in the real workspace (headless Chromium driven
by Playwright, as the browser tests do), once with the brush, eraser and filled outline only (policy a), once with the
correction tools (policy b), and counts the actions each needs to reach Dice >= 0.95 against the truth.

Two sets of cases, on demo-sized phantoms (96 x 96 x 64; 1.5 x 1.5 x 2.5 mm):
- injected: the phantom's truth with one injected error on the liver, of a known kind:
  - missed: the liver's part at the patient's right (its top 35% of x) removed over 9 slices;
  - spill: the liver grown 4 voxels in the slice into its largest neighbour organ, over 7 slices;
  - island: a false ball of liver (radius 8 mm) in the body far from the liver;
  - hole: a ball (radius 8 mm) cut out of the liver's thickest part;
  - boundary: the liver's edge pulled in by 3 voxels on its right side over 7 slices, where the members disagree:
    three stand-in members (the truth, the wrong label, the truth grown by 2 voxels) and their disagreement as the
    liver's attention hotspot.
  Dice is measured inside the error's box grown by 3 voxels, on the organ the error is about (the liver; for a spill,
  the neighbour), since a small error hardly moves a whole organ's Dice.
- pseudo: the demo's phantoms (`seed_demo`'s seeds) with the shipped ensemble's real pseudo-label, members and
  attention (the three tiny networks, run here); the target is the error inside the case's top hotspot (the first in
  the workspace's list): Dice of its organ inside the hotspot's box.

What the simulated annotator knows (a careful annotator's view, never the truth beyond it):
- where to look: the error's box (for the injected set, as a hotspot would point there) or the top hotspot's box;
- on a slice it displays, where the CT shows the organ: the truth on that slice inside the box (it reviews the box
  slice by slice; the review's slice changes are counted as scrolls);
- the label, and the members' outlines (the members' and the mean's p > 0.5) at the hotspot.
It never reads the truth of a slice it has not displayed, nor any 3D measure of it (Dice decides only when to stop:
the benchmark's stopping rule).

Policy (a), hand tools, slice by slice through the box's wrong slices in order, up to three passes; on each: eraser
strokes across each piece of extra organ (the brush as tall as the piece, 30 at most), then one filled outline
around each piece of the organ (8-connected, as the CT shows it) that still lacks voxels, traced along the piece's
boundary (a vertex on every boundary voxel, every second one above 60) ("protect other organs" on;
for a spill, the neighbour's piece with protection off, so that it paints over the spilled liver, and no eraser).
Policy (b), the tools first, then (a) on what is left:
- missed, spill: the same outlines on the first, middle and last wrong slices only, then `i` (interpolation);
- hole: "Fill holes"; island: the island's size in mL (typed, rounded up), then "Remove islands";
- boundary and pseudo: the hotspot (one click) draws the members' outlines; on the displayed slice (the hotspot's
  centre), the annotator compares each outline and the label with the CT and, when one member (or the mean) follows
  the CT better than the label, clicks "use <member>"; then it drags the local threshold (one action) watching the
  preview on that slice and applies it (one action) when a threshold follows the CT better still.
Actions: strokes, clicks, typed values and tool key presses; slice scrolling (arrow keys, and the review's slices) is
counted apart, as are the organ, tool and protection toggles (settings, the same in both policies). In the boundary
and pseudo cases both policies click the hotspot to get there.

    .venv/bin/python benchmarks/simulate_annotator.py [--seeds 2] [--pseudo 4] [--kinds missed spill ...]
    (or each policy apart: --policy a > a.log; --policy b > b.log; then --table a.log b.log)

Needs Chromium (/usr/bin/chromium) and the Python playwright package. Never asserts.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_viewer import PASSWORD, REPO, loadavg  # noqa: E402
from browser_session import atlas_server, signed_in_page  # noqa: E402

LIVER = 5
SHAPE = (96, 96, 64)
KINDS = ("missed", "spill", "island", "hole", "boundary")
DEMO_SEED = 2024  # seed_demo's: phantom i is make_phantom(DEMO_SEED * 1000 + i)
LIMIT = 40  # actions per case before giving up


def inject(truth: np.ndarray, kind: str, spacing: np.ndarray) -> tuple[np.ndarray, int, dict | None]:
    """The starting label (truth with one error), the organ value the error is about, and for the boundary kind the
    members' liver probabilities (uint8 p x 255)."""
    from scipy import ndimage

    label = truth.copy()
    liver = truth == LIVER
    zs = np.argwhere(liver)[:, 2]
    zc = int(np.median(zs))
    if kind in ("missed", "boundary"):
        part = liver.copy()
        half = 4 if kind == "missed" else 3
        part[:, :, : zc - half] = False
        part[:, :, zc + half + 1:] = False
        xs = np.argwhere(part)[:, 0]
        part[: int(np.percentile(xs, 65))] = False
        members = None
        if kind == "boundary":  # only the edge: liver voxels within 3 voxels of the outside, in the slice
            inner = np.stack([ndimage.binary_erosion(liver[:, :, z], iterations=3) for z in range(liver.shape[2])],
                             axis=2)
            part &= ~inner
            grown = np.stack([ndimage.binary_dilation(liver[:, :, z], iterations=2)
                              for z in range(liver.shape[2])], axis=2)
            label[part] = 0
            members = {"nnunet": liver, "swin_unetr": label == LIVER, "unet": grown}
            members = {n: np.where(m, 230, 20).astype(np.uint8) for n, m in members.items()}
        else:
            label[part] = 0
        return label, LIVER, members
    if kind == "spill":
        grown = np.zeros_like(liver)
        for z in range(zc - 3, zc + 4):
            grown[:, :, z] = ndimage.binary_dilation(liver[:, :, z], iterations=4)
        touched = truth[grown & ~liver]
        values, counts = np.unique(touched[touched > 0], return_counts=True)
        neighbour = int(values[np.argmax(counts)])
        label[grown & (truth == neighbour)] = LIVER
        return label, neighbour, None
    grid = np.indices(truth.shape).reshape(3, -1).T
    if kind == "hole":
        depth = ndimage.distance_transform_edt(liver, sampling=spacing)
        centre = np.unravel_index(np.argmax(depth), truth.shape)
    else:  # island: background inside the body, far from every organ
        far = ndimage.distance_transform_edt(truth == 0, sampling=spacing)
        far[:, :, : zc - 6] = 0
        far[:, :, zc + 7:] = 0
        centre = np.unravel_index(np.argmax(np.where(far < 40, far, 0)), truth.shape)
    ball = (((grid - np.array(centre)) * spacing) ** 2).sum(axis=1) <= 8.0 ** 2
    ball = ball.reshape(truth.shape)
    if kind == "hole":
        label[ball & liver] = 0
    else:
        label[ball & (truth == 0)] = LIVER
    return label, LIVER, None


def error_box(truth: np.ndarray, label: np.ndarray) -> tuple[slice, slice, slice]:
    wrong = np.argwhere(truth != label)
    lo = np.maximum(wrong.min(axis=0) - 3, 0)
    hi = np.minimum(wrong.max(axis=0) + 4, np.array(truth.shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def save(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path


def build(var: Path, seeds: int, kinds: list[str], pseudo: int) -> dict:
    """The cases as one annotating round; returns case name -> its facts (truth, organ, box, members, ...)."""
    import django

    django.setup()
    from django.core.management import call_command

    from annotation.ml_adapter import OrganAttentionInput
    from annotation.models import Case, LabelSet, Round
    from annotation.services.imports import import_cases
    from annotation.services.predictions import record_prediction
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    from ml_engine.phantoms import make_phantom

    call_command("migrate", verbosity=0)
    label_set = LabelSet.objects.get(name="abdomenatlas")
    names = {v: k for k, v in label_set.organ_values().items()}
    src = var / "in"
    src.mkdir(parents=True)
    cases: dict[str, dict] = {}
    for seed in range(seeds):
        phantom = make_phantom(seed, shape=SHAPE)
        assert np.all(np.diag(phantom.affine)[:3] > 0), "the viewer's voxel order is the file's only on a RAS+ grid"
        spacing = np.abs(np.diag(phantom.affine)[:3])
        for kind in kinds:
            name = f"s{seed}_{kind}"
            ct = phantom.ct.copy()
            ct[0, 0, 0] += 1 + kinds.index(kind)  # one voxel in a corner: the import skips identical CTs
            save(src / f"{name}.nii.gz", ct, phantom.affine)
            label, organ, members = inject(phantom.labels, kind, spacing)
            cases[name] = {"set": "injected", "kind": kind, "truth": phantom.labels, "label": label, "organ": organ,
                           "box": error_box(phantom.labels, label), "members": members, "affine": phantom.affine}
    demo = [make_phantom(DEMO_SEED * 1000 + i, shape=SHAPE, name=f"demo_{i:03d}") for i in range(pseudo)]
    for phantom in demo:
        save(src / f"{phantom.name}.nii.gz", phantom.ct, phantom.affine)
    assert import_cases(src, dataset="sim").ok
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING, label_set=label_set)
    for i, (name, c) in enumerate(cases.items()):
        extra: dict = {}
        if c["members"] is not None:  # the members disagree where the label is wrong: that is the hotspot
            m = c["members"]
            disagree = (m["nnunet"] > 127) != (m["swin_unetr"] > 127)
            heat = np.where(disagree, 200, 0).astype(np.uint8)
            lo = np.argwhere(disagree).min(axis=0)
            hi = np.argwhere(disagree).max(axis=0) + 1
            c["hotspot"] = {"voxels": int(disagree.sum()), "ml": float(disagree.sum() * np.prod(
                np.diag(c["affine"])[:3]) / 1000), "centroid": [int(v) for v in np.argwhere(disagree).mean(axis=0)],
                "bbox": [[int(v) for v in lo], [int(v) for v in hi]]}
            extra = {"heatmap": save(var / f"{name}_heat.nii.gz", heat, c["affine"]),
                     "attention": {"liver": var / f"{name}_heat.nii.gz"},
                     "soft_pred": {n: {"liver": save(var / f"{name}_{n}.nii.gz", p, c["affine"])}
                                   for n, p in m.items()}}
            organs = [OrganAttentionInput("liver", c["hotspot"]["ml"], c["hotspot"]["voxels"], [c["hotspot"]])]
        else:
            organs = [OrganAttentionInput(names[c["organ"]], 100.0 - i, 1000)]
        record_prediction(case=Case.objects.get(name=name), round=round0,
                          pseudo_label=save(var / f"{name}_label.nii.gz", c["label"], c["affine"]), organs=organs,
                          **extra)
    if demo:
        cases.update(predict_demo(var, demo, round0, label_set))
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)
    return cases


def predict_demo(var: Path, demo: list, round0, label_set) -> dict:
    """The shipped ensemble on the demo phantoms, stored as round 0's predictions; the target is the top hotspot."""
    import nibabel as nib
    from scipy import ndimage

    from annotation.ml_adapter import SHIPPED_CHECKPOINTS, write_ensemble
    from annotation.models import Case
    from annotation.services.predictions import record_prediction
    from ml_engine.predict import Predictor
    from ml_engine.train import load_checkpoint

    predictor = Predictor([load_checkpoint(p) for p in sorted(SHIPPED_CHECKPOINTS.glob("*_tiny.pt"))])
    values = label_set.organ_values()
    cases = {}
    for phantom in demo:
        work = var / phantom.name
        work.mkdir()
        files = write_ensemble(predictor.predict(phantom.ct, phantom.affine).iter_members(), values=values,
                               shape=phantom.ct.shape, affine=phantom.affine, workdir=work)
        record_prediction(case=Case.objects.get(name=phantom.name), round=round0, pseudo_label=files.pseudo_label,
                          heatmap=files.heatmap, attention=files.attention, soft_pred=files.soft_pred,
                          organs=files.organs)
        # the workspace lists hotspots largest first (mL, then voxels); the annotator starts at the first
        spots = [(h["ml"], h["voxels"], o.organ, h) for o in files.organs for h in o.hotspots]
        if not spots:
            continue
        _, _, organ, hotspot = max(spots, key=lambda s: (s[0], s[1]))
        members = {m: np.asarray(nib.load(str(per[organ])).dataobj).astype(np.uint8)
                   for m, per in files.soft_pred.items() if organ in per}
        # the attention region the workspace shows: the heatmap's component at the hotspot, dilated by one voxel
        heat = np.asarray(nib.load(str(files.attention[organ])).dataobj) > 0
        components, _ = ndimage.label(heat, structure=np.ones((3, 3, 3), dtype=bool))
        centre = tuple(int(round(c)) for c in hotspot["centroid"])
        pick = components[centre] or components[tuple(np.argwhere(components > 0)[np.argmin(
            ((np.argwhere(components > 0) - np.array(centre)) ** 2).sum(axis=1))])]
        region = ndimage.binary_dilation(components == pick, structure=np.ones((3, 3, 3), dtype=bool))
        where = np.argwhere(region)
        box = tuple(slice(int(a), int(b) + 1) for a, b in zip(where.min(axis=0), where.max(axis=0), strict=True))
        cases[phantom.name] = {"set": "pseudo", "kind": f"pseudo ({organ})", "truth": phantom.labels,
                               "organ": values[organ], "box": box, "region": region[box],
                               "members": members, "hotspot": hotspot, "affine": phantom.affine}
    return cases


# Moore neighbourhood, clockwise on screen (y down), as (dx, dy): W, NW, N, NE, E, SE, S, SW
AROUND = ((-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1))


def contour(points: np.ndarray) -> list[tuple[int, int]]:
    """The outer boundary of one 8-connected piece (its (x, y) points), in order (Moore neighbour tracing): what an
    annotator's outline follows around it."""
    lo = points.min(axis=0) - 1
    mask = np.zeros(tuple(points.max(axis=0) - lo + 2), dtype=bool)
    mask[tuple((points - lo).T)] = True
    first = min(((int(x), int(y)) for x, y in points - lo), key=lambda p: (p[1], p[0]))  # top row, leftmost
    path, cur, back = [first], first, 0  # `back`: where the search starts (the background we came from: west)
    second = None
    for _ in range(4 * mask.size):
        for k in range(8):
            d = (back + k) % 8
            nxt = (cur[0] + AROUND[d][0], cur[1] + AROUND[d][1])
            if mask[nxt]:
                break
        else:
            break  # a single voxel
        before = (cur[0] + AROUND[(d - 1) % 8][0], cur[1] + AROUND[(d - 1) % 8][1])  # the last background seen
        back = AROUND.index((before[0] - nxt[0], before[1] - nxt[1]))
        if second is None:
            second = nxt
        elif cur == first and nxt == second:
            break
        cur = nxt
        path.append(cur)
    return [(x + int(lo[0]), y + int(lo[1])) for x, y in path[:-1] or path]


def pieces(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected pieces of a 2D mask, each as its (a, b) points."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return [np.argwhere(labels == k) for k in range(1, n + 1)]


def slice_dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2 * float((a & b).sum()) / total


class Annotator:
    """Drives the open workspace: reads the label back, scrolls, outlines, erases, clicks; counts what it does.
    The truth is read only through `seen(z)`, the slice on display."""

    def __init__(self, page, case: dict):
        from tests.browser.conftest import ViewMap

        self.page, self.case = page, case
        self._truth, self.organ, self.box = case["truth"], case["organ"], case["box"]
        region = case.get("region")  # the part of the box to correct (the attention region), else all of it
        self.region = np.ones(tuple(s.stop - s.start for s in self.box), bool) if region is None else region
        self.actions = 0
        self.scrolls = 0
        self.view = ViewMap(page)
        assert (self.view.h, self.view.v) == (0, 1), "the axial view"
        self.tool_state: tuple | None = None

    # --- what the annotator sees ---
    def label(self) -> np.ndarray:
        """The page's label inside the box (x, y, z)."""
        b = self.box
        data = self.page.evaluate("""([x0, x1, y0, y1, z0, z1]) => {
            const v = window.atlasViewer, [nx, ny] = v.dims, label = v.label();
            let out = '';
            for (let z = z0; z < z1; z++) for (let y = y0; y < y1; y++) {
                const row = (z * ny + y) * nx;
                out += String.fromCharCode(...label.subarray(row + x0, row + x1));
            }
            return btoa(out);
        }""", [b[0].start, b[0].stop, b[1].start, b[1].stop, b[2].start, b[2].stop])
        shape = tuple(s.stop - s.start for s in b)
        return np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(shape[::-1]).transpose(2, 1, 0)

    def seen(self, z: int, reviewing: bool = False) -> np.ndarray:
        """Where the CT shows the organ on slice z, inside the box (in-slice x, y): the slice on display, or one the
        review looks through."""
        assert reviewing or self.view.slice == z, "the annotator sees only the slice on display"
        return self._truth[self.box[0], self.box[1], z] == self.organ

    def inside(self, z: int) -> np.ndarray:
        """The part of slice z (in the box) to correct."""
        return self.region[:, :, z - self.box[2].start]

    def dice(self) -> float:
        """The benchmark's measure (the stopping rule), not the annotator's."""
        a = (self.label() == self.organ) & self.region
        t = (self._truth[self.box] == self.organ) & self.region
        return 1.0 if a.sum() + t.sum() == 0 else 2 * float((a & t).sum()) / float(a.sum() + t.sum())

    def done(self) -> bool:
        return self.dice() >= 0.95

    def review(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Look through the box's slices in order: per slice z where the label differs from what the CT shows, the
        in-slice points (x, y) where the organ is missing and where it is extra. Counted as one scroll a slice (the
        slices are read, not scrolled to one by one, to save the page's time)."""
        now = self.label() == self.organ
        out = {}
        offset = np.array([self.box[0].start, self.box[1].start])
        for k in range(now.shape[2]):
            z = k + self.box[2].start
            seen = self.seen(z, reviewing=True)
            inside = self.inside(z)
            missing = np.argwhere(seen & ~now[:, :, k] & inside) + offset
            extra = np.argwhere(now[:, :, k] & ~seen & inside) + offset
            if len(missing) or len(extra):
                out[z] = (missing, extra)
        self.scrolls += now.shape[2]
        return out

    # --- what it does ---
    def go_to(self, z: int) -> None:
        view = self.view
        probe = view.screen(view.h_boundary, view.v_boundary)
        for _ in range(80):
            now = view.hover(*probe)[2]
            if now == z:
                view.slice = z
                return
            self.page.keyboard.press("ArrowUp" if z > now else "ArrowDown")
            self.scrolls += 1
        raise RuntimeError(f"could not reach slice {z}")

    def act(self, fn) -> None:
        """One action, then wait until the page has accepted its edit (an outline of no area makes none)."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        before = self.page.evaluate(COUNT)
        fn()
        self.actions += 1
        try:
            self.page.wait_for_function(f"n => ({COUNT})() > n", arg=before, timeout=20_000)
        except PlaywrightTimeout:
            pass

    def tool(self, organ: int, tool: str, protect: bool = True) -> None:
        """Organ, tool and protection: settings, not counted (the same in both policies)."""
        if self.tool_state != (organ, tool, protect):
            self.page.click(f"[data-organ][data-value='{organ}']")
            self.page.click(f"[data-tool-button={tool}]")
            (self.page.check if protect else self.page.uncheck)("[data-control=protect]")
            if tool == "fill":  # the outline's line is as wide as the pen: a careful annotator outlines with 1
                self.page.fill("[data-control=brush]", "1")
            self.tool_state = (organ, tool, protect)
        self.page.evaluate("document.activeElement && document.activeElement.blur()")

    def outline(self, z: int, points: np.ndarray) -> None:
        """One filled outline around a piece (its (x, y) points) on slice z, traced along its boundary with a vertex
        on every boundary voxel (every second one when there are more than 60)."""
        self.go_to(z)
        path = contour(points)
        step = 1 if len(path) <= 60 else 2
        corners = path[::step] + [path[0]]
        screens = [self.view.screen(*c) for c in corners]

        def draw():
            self.page.mouse.move(*screens[0])
            self.page.mouse.down()
            for s in screens[1:]:
                self.page.mouse.move(*s)
            self.page.mouse.up()

        self.act(draw)

    def erase(self, z: int, points: np.ndarray) -> None:
        """Eraser strokes across the points on slice z, the brush as tall as they are (30 at most)."""
        self.go_to(z)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        size = min(30, int(y1 - y0) + 1) | 1
        self.page.fill("[data-control=brush]", str(size))
        for yc in range(int(y0) + size // 2, int(y1) + size // 2 + 1, size):
            s0, s1 = self.view.screen(int(x0), yc), self.view.screen(int(x1), yc)

            def stroke(s0=s0, s1=s1):
                self.page.mouse.move(*s0)
                self.page.mouse.down()
                self.page.mouse.move(*s1, steps=6)
                self.page.mouse.up()

            self.act(stroke)

    def organ_pieces(self, z: int, missing: np.ndarray) -> list[np.ndarray]:
        """The pieces of the organ that the CT shows on slice z and that lack voxels, as (x, y) points."""
        self.go_to(z)
        seen = self.seen(z)
        offset = np.array([self.box[0].start, self.box[1].start])
        lacking = {tuple(p) for p in (missing - offset)}
        return [p + offset for p in pieces(seen & self.inside(z)) if any(tuple(q) in lacking for q in p)]

    def fix_slice(self, z: int, spill: bool) -> None:
        """One slice: eraser strokes across each extra piece, then one outline around each piece of the organ that
        still lacks voxels (the outline puts back what the eraser took of the organ)."""
        self.go_to(z)
        missing, extra = self.on_slice(z)
        if len(extra) >= 3 and not spill:
            self.tool(self.organ, "eraser")
            for piece in pieces_of(extra):
                if len(piece) >= 3 and self.actions < LIMIT:
                    self.erase(z, piece)
            missing, extra = self.on_slice(z)
        if len(missing) >= 3:
            self.tool(self.organ, "fill", protect=not spill)
            for piece in self.organ_pieces(z, missing):
                if self.actions < LIMIT:
                    self.outline(z, piece)

    def on_slice(self, z: int) -> tuple[np.ndarray, np.ndarray]:
        """The displayed slice's points (x, y) where the organ is missing and where it is extra."""
        now = self.label()[:, :, z - self.box[2].start] == self.organ
        seen = self.seen(z)
        inside = self.inside(z)
        offset = np.array([self.box[0].start, self.box[1].start])
        return np.argwhere(seen & ~now & inside) + offset, np.argwhere(now & ~seen & inside) + offset

    def by_hand(self, spill: bool) -> None:
        """Policy (a), slice by slice in order, up to three passes, until Dice >= 0.95."""
        for _ in range(3):
            wrong = self.review()
            if not wrong:
                return
            for z in sorted(wrong):
                if self.done() or self.actions >= LIMIT:
                    return
                self.fix_slice(z, spill)

    def hotspot(self) -> None:
        """Click the hotspot (the views centre on it, the members' outlines appear)."""
        self.act_click("[data-hotspot-index='0']", wait="[data-members]")
        self.view.slice = int(self.page.get_attribute("[data-page=workspace]", "data-crosshair").split(",")[2])
        self.tool_state = None

    def act_click(self, selector: str, wait: str | None = None) -> None:
        self.page.click(selector)
        self.actions += 1
        if wait:
            self.page.wait_for_selector(wait, timeout=120_000)


COUNT = ("() => performance.getEntriesByType('measure')"
         ".filter(e => e.name === 'atlas:tool' || e.name === 'atlas:stroke').length")


def pieces_of(points: np.ndarray) -> list[np.ndarray]:
    """8-connected pieces of a set of in-slice points."""
    lo = points.min(axis=0)
    mask = np.zeros(tuple(points.max(axis=0) - lo + 1), dtype=bool)
    mask[tuple((points - lo).T)] = True
    return [p + lo for p in pieces(mask)]


def members_at_hotspot(a: Annotator) -> None:
    """Policy (b) at a hotspot: the member (or the mean) whose outline follows the CT best on the displayed slice, if
    better than the label there; then the local threshold, if a threshold follows the CT better still."""
    if not a.box[2].start <= a.view.slice < a.box[2].stop:  # the centroid of a curved region may lie outside it
        a.go_to((a.box[2].start + a.box[2].stop) // 2)
    z = a.view.slice
    inside = a.inside(z)
    seen = a.seen(z) & inside
    window = (slice(a.box[0].start, a.box[0].stop), slice(a.box[1].start, a.box[1].stop), z)
    members = a.case["members"]
    maps = {**{n: p[window] for n, p in members.items()},
            "mean": np.rint(np.mean(np.stack([p[window] for p in members.values()]).astype(np.float32), axis=0))}

    def agreement() -> float:
        return slice_dice((a.label()[:, :, z - a.box[2].start] == a.organ) & inside, seen)

    best, score = max(((n, slice_dice((p > 127) & inside, seen)) for n, p in maps.items()), key=lambda s: s[1])
    if score > agreement() + 0.02:
        a.act(lambda: a.page.click(f"[data-member-accept={best}]"))
    current = agreement()
    # the threshold slider: dragged while watching the preview on this slice (one action), applied (one action)
    trials = {}
    for t in np.arange(0.2, 0.801, 0.05):
        a.page.fill("[data-control=local-threshold]", f"{t:.2f}")
        a.page.wait_for_timeout(50)
        trials[round(float(t), 2)] = agreement()
    t_best = max(trials, key=lambda t: trials[t])
    if trials[t_best] > current + 0.02:
        a.page.fill("[data-control=local-threshold]", f"{t_best:.2f}")
        a.page.wait_for_timeout(50)
        a.actions += 1  # the drag
        a.act_click("[data-action=threshold-apply]")
    else:
        a.page.click("[data-action=threshold-cancel]")


def with_tools(a: Annotator, kind: str) -> None:
    """Policy (b), then (a) on what is left."""
    spill = kind == "spill"
    if kind == "hole":
        a.tool(LIVER, "navigate")
        a.act(lambda: a.page.click("[data-action=fill-holes]"))
    elif kind == "island":
        a.tool(LIVER, "navigate")
        wrong = a.review()
        z, (_, extra) = max(wrong.items(), key=lambda w: len(w[1][1]))  # the island's widest slice
        a.go_to(z)
        # its size, as an annotator estimates it: a ball as wide as its widest slice, rounded up to the next mL
        spacing = np.abs(np.diag(a.case["affine"])[:3])
        radius = math.sqrt(len(extra) * spacing[0] * spacing[1] / math.pi)
        ml = math.ceil(4 / 3 * math.pi * radius ** 3 / 1000 + 0.5)
        a.page.fill("[data-control=island-ml]", str(ml))
        a.actions += 1
        a.act(lambda: a.page.click("[data-action=remove-islands]"))
    elif kind in ("missed", "spill"):
        a.tool(a.organ, "fill", protect=not spill)
        slices = {z: m for z, (m, _) in a.review().items() if len(m) >= 3}
        keys = sorted(slices)
        for z in sorted({keys[0], keys[len(keys) // 2], keys[-1]}):
            for piece in a.organ_pieces(z, slices[z]):
                a.outline(z, piece)
        a.page.evaluate("document.activeElement && document.activeElement.blur()")
        a.act(lambda: a.page.keyboard.press("i"))
    else:  # boundary, pseudo: the members at the hotspot (already clicked)
        members_at_hotspot(a)
    a.by_hand(spill)


def run(policy: str, seeds: int, kinds: list[str], pseudo: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="atlas-simulate-") as tmp:
        var = Path(tmp)
        env = {**os.environ, "ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        cases = build(var, seeds, kinds, pseudo)
        with (atlas_server(env) as base,
              signed_in_page(base, "annotator", PASSWORD, viewport=(1400, 900), debug=True) as page):
            for _ in range(len(cases)):
                page.wait_for_selector("[data-page=queue]")
                page.click("[data-action=next-case]")
                page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=120_000)
                name = page.get_attribute("[data-page=workspace]", "data-case")
                case = cases[name]
                kind = case["kind"]
                a = Annotator(page, case)
                start = a.dice()
                t0 = time.perf_counter()
                if "hotspot" in case:
                    a.hotspot()
                if policy == "a":
                    a.by_hand(kind == "spill")
                else:
                    with_tools(a, kind)
                seconds = time.perf_counter() - t0
                rows.append({"case": name, "set": case["set"], "kind": kind, "policy": policy,
                             "actions": a.actions, "scrolls": a.scrolls, "seconds": seconds, "start": start,
                             "dice": a.dice()})
                print(f"  {policy} {name} ({kind}): {a.actions} actions, {a.scrolls} scrolls, {seconds:.0f} s, "
                      f"Dice {start:.3f} -> {rows[-1]['dice']:.3f}", flush=True)
                page.click("[data-action=submit]")
                page.click("[data-action=upload]")
    return rows


def table(rows: list[dict]) -> None:
    print("| error kind | cases | (a) actions | (b) actions | ratio (a) / (b) | (a) scrolls | (b) scrolls "
          "| (a) s in page | (b) s in page | reached 0.95 (a) / (b) | lowest Dice (a) / (b) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    groups = [([k], k) for k in kinds]
    for set_ in ("injected", "pseudo"):
        in_set = [k for k in kinds if any(r["kind"] == k and r["set"] == set_ for r in rows)]
        if in_set:
            groups.append((in_set, f"{set_} set"))
    groups.append((kinds, "overall"))
    for group, label in groups:
        a = [r for r in rows if r["policy"] == "a" and r["kind"] in group]
        b = [r for r in rows if r["policy"] == "b" and r["kind"] in group]
        sa, sb = sum(r["actions"] for r in a), sum(r["actions"] for r in b)
        print(f"| {label} | {len(a)} | {sa} | {sb} | {sa / max(sb, 1):.1f} | {sum(r['scrolls'] for r in a)} | "
              f"{sum(r['scrolls'] for r in b)} | {sum(r['seconds'] for r in a):.0f} | "
              f"{sum(r['seconds'] for r in b):.0f} | {sum(r['dice'] >= 0.95 for r in a)} / "
              f"{sum(r['dice'] >= 0.95 for r in b)} | {min(r['dice'] for r in a):.3f} / "
              f"{min(r['dice'] for r in b):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="phantom seeds of the injected set")
    parser.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    parser.add_argument("--pseudo", type=int, default=4, help="demo phantoms of the pseudo-label set")
    parser.add_argument("--policy", choices=("a", "b"), help="run one policy only (a process each: one database)")
    parser.add_argument("--table", nargs="+", metavar="LOG", help="only print the table of --policy runs' logs")
    args = parser.parse_args()
    if args.table:
        table([row for log in args.table for line in Path(log).read_text().splitlines() if line.startswith("ROWS ")
               for row in json.loads(line[5:])])
        return
    if args.policy:
        print("ROWS " + json.dumps(run(args.policy, args.seeds, args.kinds, args.pseudo)))
        return
    print(f"machine load before: {loadavg()}")
    rows = []
    for policy in ("a", "b"):
        out = subprocess.run([sys.executable, __file__, "--policy", policy, "--seeds", str(args.seeds), "--pseudo",
                              str(args.pseudo), "--kinds", *args.kinds], capture_output=True, text=True, check=True
                             ).stdout
        print("".join(line + "\n" for line in out.splitlines() if not line.startswith("ROWS ")), end="")
        rows += json.loads(next(line for line in out.splitlines() if line.startswith("ROWS "))[5:])
    print(f"machine load after: {loadavg()}")
    table(rows)


if __name__ == "__main__":
    main()
