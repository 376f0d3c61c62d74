"""The annotator effort benchmark: a scripted annotator corrects injected errors in the real workspace (headless
Chromium driven by Playwright, as the browser tests do), once with the brush, eraser and filled outline only (policy
a), once with the correction tools (policy b), and counts the actions each needs to reach Dice >= 0.95.

Cases: demo-sized phantoms (96 x 96 x 64; 1.5 x 1.5 x 2.5 mm) whose starting label is the phantom's truth with one
injected error on the liver, of a known kind:
- missed: the liver's part at the patient's right (its top 35% of x) removed over 9 slices;
- spill: the liver grown 4 voxels in the slice into its largest neighbour organ, over 7 slices;
- island: a false ball of liver (radius 8 mm) in the body far from the liver;
- hole: a ball (radius 8 mm) cut out of the liver's thickest part.
(Not done here: "a boundary where the members disagree", and the second set that starts from the ensemble's real
pseudo-labels.)

What the policy knows: what a careful annotator sees on the screen, that is where the label is wrong on each slice
(the CT shows the organ's edge); never the truth elsewhere. It reads the page's label back after each action.
Dice is measured (not used by the policy) inside the error's box grown by 3 voxels, against the truth, on the organ
the error is about (the liver; for a spill, the neighbour), since a small error hardly moves the whole organ's Dice.

Policy (a), slice by slice in the axial view, in order, on each slice where the label is wrong in the error's box:
where part of the organ is missing (missed part, hole; for a spill the neighbour organ, "protect other organs" off)
one filled outline traced around it (a vertex every third row); where the organ is only extra (island) eraser strokes
across it (brush as tall as it, 30 at most); a slice is then done; a second pass takes what is still wrong.
Policy (b): missed part -> outlines on the first, middle and last wrong slices, then `i`
(interpolate); hole -> "Fill holes"; island -> the island size in mL, then "Remove islands"; spill -> outlines of
the neighbour on the first, middle and last slices, then `i`. Then, if Dice is still below 0.95, policy (a) on the
slices still wrong. Actions: strokes, clicks, typed values and tool key presses; slice scrolling (arrow keys) is
counted apart.

    .venv/bin/python benchmarks/simulate_annotator.py [--seeds 2] [--kinds missed spill island hole]

Needs Chromium (/usr/bin/chromium) and the Python playwright package. Never asserts.
"""

from __future__ import annotations

import argparse
import base64
import json
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
KINDS = ("missed", "spill", "island", "hole")
NAMES = {1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach", 7: "aorta",
         8: "postcava", 9: "pancreas"}


def inject(truth: np.ndarray, kind: str, spacing: np.ndarray) -> tuple[np.ndarray, int]:
    """The starting label (truth with one error) and the organ value the error is about."""
    from scipy import ndimage

    label = truth.copy()
    liver = truth == LIVER
    zs = np.argwhere(liver)[:, 2]
    zc = int(np.median(zs))
    if kind == "missed":
        part = liver.copy()
        part[:, :, : zc - 4] = False
        part[:, :, zc + 5:] = False
        xs = np.argwhere(part)[:, 0]
        part[: int(np.percentile(xs, 65))] = False
        label[part] = 0
        return label, LIVER
    if kind == "spill":
        grown = np.zeros_like(liver)
        for z in range(zc - 3, zc + 4):
            grown[:, :, z] = ndimage.binary_dilation(liver[:, :, z], iterations=4)
        touched = truth[grown & ~liver]
        values, counts = np.unique(touched[touched > 0], return_counts=True)
        neighbour = int(values[np.argmax(counts)])
        label[grown & (truth == neighbour)] = LIVER
        return label, neighbour
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
    return label, LIVER


def build(var: Path, seeds: int, kinds: list[str]) -> dict:
    """Phantoms with one injected error each, as one annotating round; returns case name -> (truth, label, organ)."""
    import django
    import nibabel as nib

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
    src = var / "in"
    src.mkdir(parents=True)
    cases = {}
    for seed in range(seeds):
        phantom = make_phantom(seed, shape=SHAPE)
        assert np.all(np.diag(phantom.affine)[:3] > 0), "the viewer's voxel order is the file's only on a RAS+ grid"
        spacing = np.abs(np.diag(phantom.affine)[:3])
        for kind in kinds:
            name = f"s{seed}_{kind}"
            ct = phantom.ct.copy()
            ct[0, 0, 0] += 1 + kinds.index(kind)  # one voxel in a corner: the import skips identical CTs
            nib.save(nib.Nifti1Image(ct, phantom.affine), str(src / f"{name}.nii.gz"))
            label, organ = inject(phantom.labels, kind, spacing)
            cases[name] = (phantom.labels, label, organ, phantom.affine)
    assert import_cases(src, dataset="sim").ok
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    for i, (name, (_, label, organ, affine)) in enumerate(cases.items()):
        path = var / f"{name}_label.nii.gz"
        nib.save(nib.Nifti1Image(label, affine), str(path))
        record_prediction(case=Case.objects.get(name=name), round=round0, pseudo_label=path,
                          organs=[OrganAttentionInput(NAMES[organ], 100.0 - i, 1000)])
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)
    return cases


def error_box(truth: np.ndarray, label: np.ndarray) -> tuple[slice, slice, slice]:
    wrong = np.argwhere(truth != label)
    lo = np.maximum(wrong.min(axis=0) - 3, 0)
    hi = np.minimum(wrong.max(axis=0) + 4, np.array(truth.shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


class Annotator:
    """Drives the open workspace: reads the label back, scrolls, outlines, erases, clicks; counts what it does."""

    def __init__(self, page, truth: np.ndarray, organ: int, box):
        from tests.browser.conftest import ViewMap

        self.page, self.truth, self.organ, self.box = page, truth, organ, box
        self.actions = 0
        self.scrolls = 0
        self.view = ViewMap(page)
        assert (self.view.h, self.view.v) == (0, 1), "the axial view"

    def label(self) -> np.ndarray:
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

    def dice(self) -> float:
        a = self.label() == self.organ
        t = self.truth[self.box] == self.organ
        return 1.0 if a.sum() + t.sum() == 0 else 2 * float((a & t).sum()) / float(a.sum() + t.sum())

    def done(self) -> bool:
        return self.dice() >= 0.95

    def wrong_slices(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per slice z (volume index), the in-slice voxels (x, y) where the organ is missing and where it is extra:
        what the annotator sees is wrong."""
        now = self.label()[...] == self.organ
        truth = self.truth[self.box] == self.organ
        out = {}
        offset = [self.box[0].start, self.box[1].start]
        for k in range(now.shape[2]):
            missing = np.argwhere(truth[:, :, k] & ~now[:, :, k]) + offset
            extra = np.argwhere(now[:, :, k] & ~truth[:, :, k]) + offset
            if len(missing) or len(extra):
                out[k + self.box[2].start] = (missing, extra)
        return out

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
        before = self.page.evaluate(COUNT)
        fn()
        self.actions += 1
        self.page.wait_for_function(f"n => ({COUNT})() > n", arg=before, timeout=120_000)

    def tool(self, organ: int, tool: str, protect: bool = True) -> None:
        self.page.click(f"[data-organ={NAMES[organ]}]")
        self.page.click(f"[data-tool-button={tool}]")
        (self.page.check if protect else self.page.uncheck)("[data-control=protect]")
        self.page.evaluate("document.activeElement && document.activeElement.blur()")

    def outline(self, z: int, points: np.ndarray) -> None:
        """One filled outline around the points (x, y) on slice z: down the left ends of its rows, up the right ends
        (what an annotator traces around a region that is one run per row)."""
        self.go_to(z)
        every = sorted({int(y) for y in points[:, 1]})
        rows = every[::3] + ([every[-1]] if (len(every) - 1) % 3 else [])  # a vertex every third row
        left = [(int(points[points[:, 1] == y, 0].min()), y) for y in rows]
        right = [(int(points[points[:, 1] == y, 0].max()), y) for y in rows]
        corners = left + right[::-1] + [left[0]]
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

    def by_hand(self, spill: bool, limit: int = 60) -> None:
        """Policy (a), slice by slice in order until Dice >= 0.95: on a slice where part of the organ is missing, one
        outline of it; on a slice where the organ is only extra, eraser strokes. A slice is done after that (its
        outline's few voxels of overshoot are left); a second pass takes what is still wrong."""
        for _ in range(2):
            for z, (missing, extra) in sorted(self.wrong_slices().items()):
                if self.done() or self.actions >= limit:
                    return
                if len(missing) >= 3:
                    self.tool(self.organ, "fill", protect=not spill)
                    self.outline(z, missing)
                elif len(extra) >= 3 and not len(missing):
                    self.tool(self.organ, "eraser")
                    self.erase(z, extra)


COUNT = ("() => performance.getEntriesByType('measure')"
         ".filter(e => e.name === 'atlas:tool' || e.name === 'atlas:stroke').length")


def with_tools(a: Annotator, kind: str, organ: int) -> None:
    """Policy (b), then (a) on what is left."""
    if kind == "hole":
        a.tool(LIVER, "navigate")
        a.act(lambda: a.page.click("[data-action=fill-holes]"))
    elif kind == "island":
        a.tool(LIVER, "navigate")
        a.page.fill("[data-control=island-ml]", "3")
        a.actions += 1
        a.act(lambda: a.page.click("[data-action=remove-islands]"))
    else:
        a.tool(organ, "fill", protect=kind != "spill")
        slices = {z: m for z, (m, _) in a.wrong_slices().items() if len(m)}
        keys = sorted(slices)
        for z in sorted({keys[0], keys[len(keys) // 2], keys[-1]}):
            a.outline(z, slices[z])
        a.page.evaluate("document.activeElement && document.activeElement.blur()")
        a.act(lambda: a.page.keyboard.press("i"))
    a.by_hand(kind == "spill")


def run(policy: str, seeds: int, kinds: list[str]) -> list[dict]:

    rows = []
    with tempfile.TemporaryDirectory(prefix="atlas-simulate-") as tmp:
        var = Path(tmp)
        env = {**os.environ, "ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        cases = build(var, seeds, kinds)
        with (atlas_server(env) as base,
              signed_in_page(base, "annotator", PASSWORD, viewport=(1400, 900), debug=True) as page):
            for _ in cases:
                page.wait_for_selector("[data-page=queue]")
                page.click("[data-action=next-case]")
                page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=120_000)
                name = page.get_attribute("[data-page=workspace]", "data-case")
                truth, label, organ, _ = cases[name]
                kind = name.split("_", 1)[1]
                a = Annotator(page, truth, organ, error_box(truth, label))
                start = a.dice()
                t0 = time.perf_counter()
                if policy == "a":
                    a.by_hand(kind == "spill")
                else:
                    with_tools(a, kind, organ)
                seconds = time.perf_counter() - t0
                rows.append({"case": name, "kind": kind, "policy": policy, "actions": a.actions,
                             "scrolls": a.scrolls, "seconds": seconds, "start": start, "dice": a.dice()})
                print(f"  {policy} {name}: {a.actions} actions, {a.scrolls} scrolls, {seconds:.0f} s, Dice "
                      f"{start:.3f} -> {rows[-1]['dice']:.3f}", flush=True)
                page.click("[data-action=submit]")
                page.click("[data-action=upload]")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--policy", choices=("a", "b"), help="run one policy only (a process each: one database)")
    args = parser.parse_args()
    if args.policy:
        print("ROWS " + json.dumps(run(args.policy, args.seeds, args.kinds)))
        return
    print(f"machine load before: {loadavg()}")
    rows = []
    for policy in ("a", "b"):
        out = subprocess.run([sys.executable, __file__, "--policy", policy, "--seeds", str(args.seeds), "--kinds",
                              *args.kinds], capture_output=True, text=True, check=True).stdout
        print("".join(line + "\n" for line in out.splitlines() if not line.startswith("ROWS ")), end="")
        rows += json.loads(next(line for line in out.splitlines() if line.startswith("ROWS "))[5:])
    print(f"machine load after: {loadavg()}")
    print("| error kind | cases | (a) actions | (b) actions | ratio (a) / (b) | (a) scrolls | (b) scrolls "
          "| (a) s in page | (b) s in page | Dice reached (a) / (b) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    groups = [[k] for k in args.kinds] + [list(args.kinds)]
    for kinds in groups:
        a = [r for r in rows if r["policy"] == "a" and r["kind"] in kinds]
        b = [r for r in rows if r["policy"] == "b" and r["kind"] in kinds]
        sa, sb = sum(r["actions"] for r in a), sum(r["actions"] for r in b)
        label = kinds[0] if len(kinds) == 1 else "overall"
        print(f"| {label} | {len(a)} | {sa} | {sb} | {sa / max(sb, 1):.1f} | {sum(r['scrolls'] for r in a)} | "
              f"{sum(r['scrolls'] for r in b)} | {sum(r['seconds'] for r in a):.0f} | "
              f"{sum(r['seconds'] for r in b):.0f} | {min(r['dice'] for r in a):.3f} / "
              f"{min(r['dice'] for r in b):.3f} |")


if __name__ == "__main__":
    main()
