"""Correction tools' speed: each tool's own work (computing and applying its edit) on a large case, in headless
Chromium, with the redraw (box upload + scene draw, software WebGL here) given apart.

Builds a phantom (default 512 x 512 x 300) in a throw-away ATLAS_VAR_DIR with its labels as the pseudo-label (plus 24
small liver islands near the liver and 24 small holes in it, so that every clean-up has work), three stand-in members'
liver probabilities (the liver, dilated, eroded and shifted: uint8 p x 255) and a liver hotspot of
about 40 x 40 x 20 voxels on the liver's border; starts `manage.py runserver`, opens the case as an annotator and
runs each tool once or more on the liver (the largest organ, so the largest box), reading the page's
data-tool-ms (the tool's own work, performance mark 'atlas:tool') and data-redraw-ms after each. Each tool's first
call in the page (its code not yet compiled by the browser's JIT) is given apart from its later calls; so is the
clean-up's idle-time warm-up (performance measures 'atlas:warmup', mark 'atlas:warmup:done'), when the page has one.

    .venv/bin/python benchmarks/bench_tools.py [--shape 512 512 300] [--repeat 3] [--no-warmup]

Needs Chromium (/usr/bin/chromium) and the Python playwright package. Never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_viewer import PASSWORD, REPO, loadavg  # noqa: E402
from browser_session import atlas_server, import_bench_phantom, signed_in_page  # noqa: E402

LIVER = 5


def build_case(var: Path, shape: tuple[int, int, int]) -> None:
    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    phantom, case, round0 = import_bench_phantom(var, shape)
    from annotation.ml_adapter import OrganAttentionInput
    from annotation.services.predictions import record_prediction
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    labels = phantom.labels.copy()
    liver = labels == LIVER
    # work for the clean-up tools: 3 x 3 x 3 islands of liver in the background beside it, and holes inside it
    rng = np.random.default_rng(0)
    near = ndimage.binary_dilation(liver, iterations=6) & ~ndimage.binary_dilation(liver, iterations=3) & (labels == 0)
    deep = ndimage.binary_erosion(liver, iterations=4)
    for where, value in ((near, LIVER), (deep, 0)):
        points = np.argwhere(where)
        for x, y, z in points[rng.choice(len(points), 24, replace=False)]:
            labels[x - 1:x + 2, y - 1:y + 2, z - 1:z + 2] = np.where(
                (labels[x - 1:x + 2, y - 1:y + 2, z - 1:z + 2] == 0) | (value == 0), value,
                labels[x - 1:x + 2, y - 1:y + 2, z - 1:z + 2])
    members = {"nnunet": ndimage.binary_dilation(liver, iterations=2), "swin_unetr": np.roll(liver, 3, axis=0),
               "unet": ndimage.binary_erosion(liver, iterations=2)}
    files = {}
    for name, mask in members.items():
        path = var / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(np.where(mask, 230, 20).astype(np.uint8), phantom.affine), str(path))
        files[name] = {"liver": path}
    # a hotspot on the liver's border where the members disagree: a 40 x 40 x 20 block around one border voxel
    border = liver & ~ndimage.binary_erosion(liver)
    points = np.argwhere(border)
    centre = points[len(points) // 2]
    lo = np.maximum(centre - [20, 20, 10], 0)
    hi = np.minimum(centre + [20, 20, 10], np.array(shape) - 1)
    heat = np.zeros(shape, dtype=np.uint8)
    heat[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1] = 200
    paths = {}
    for name, array in (("pseudo", labels), ("heat", heat)):
        paths[name] = var / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(array, phantom.affine), str(paths[name]))
    ml = float(np.prod(np.abs(np.diag(phantom.affine)[:3]))) / 1000
    voxels = int(np.prod(hi - lo + 1))
    hotspot = {"voxels": voxels, "ml": voxels * ml, "centroid": [int(c) for c in centre],
               "bbox": [[int(v) for v in lo], [int(v) for v in hi]]}
    record_prediction(case=case, round=round0, pseudo_label=paths["pseudo"], heatmap=paths["heat"],
                      attention={"liver": paths["heat"]}, soft_pred=files,
                      organs=[OrganAttentionInput("liver", voxels * ml, voxels, [hotspot])])
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)
    print(f"liver: {int(liver.sum())} voxels; hotspot box {hotspot['bbox']}")


def attr(page, name: str) -> str:
    return page.get_attribute("[data-page=workspace]", f"data-{name}") or ""


def liver_point(page) -> tuple[float, float]:
    """A screen point over the liver, a few voxels inside it (the hover readout names the organ under the mouse)."""
    box = page.locator(".viewer canvas").bounding_box()
    for fy in (0.5, 0.45, 0.55, 0.4, 0.6, 0.35, 0.65):
        for fx in [i / 40 for i in range(4, 37)]:
            x, y = box["x"] + box["width"] * fx, box["y"] + box["height"] * fy
            names = []
            for dx, dy in ((0, 0), (8, 0), (-8, 0), (0, 8), (0, -8)):
                page.mouse.move(x + dx, y + dy)
                names.append(page.inner_text(".viewer .status"))
            if all("Liver" in n for n in names):
                return x, y
    raise SystemExit("no liver under the canvas")


COUNT = ("() => performance.getEntriesByType('measure')"
         ".filter(e => e.name === 'atlas:tool' || e.name === 'atlas:stroke').length")


def timed(page, label: str, act, results: dict | None) -> None:
    """Run one tool action and wait until the page has measured its edit (performance marks), then read its figures."""
    if results is not None:
        print(f"  {label}...", flush=True)
    before = page.evaluate(COUNT)
    act()
    try:
        page.wait_for_function(f"n => ({COUNT})() > n", arg=before, timeout=300_000)
    except Exception:
        shown = page.locator("[data-tool-message]").all_inner_texts()
        raise SystemExit(f"{label}: no edit measured; the page says {shown}") from None
    page.wait_for_timeout(50)  # React mirrors the figures into data-* attributes after the edit
    if results is not None:
        results.setdefault(label, []).append((float(attr(page, "tool-ms")), float(attr(page, "redraw-ms")),
                                              int(attr(page, "stroke-voxels")), int(attr(page, "stroke-scanned"))))


def undo(page) -> None:
    depth = int(attr(page, "undo"))
    if depth:
        page.click("[data-action=undo]")
        page.wait_for_selector(f"[data-page=workspace][data-undo='{depth - 1}']")


WARMUP = """() => {
  const m = performance.getEntriesByType('measure').filter(e => e.name === 'atlas:warmup')
  const done = performance.getEntriesByName('atlas:warmup:done')
  const load = performance.getEntriesByName('atlas:load', 'measure')
  return {chunks: m.length, total: m.reduce((a, e) => a + e.duration, 0),
          longest: Math.max(0, ...m.map(e => e.duration)), done: done.length ? done[0].startTime : null,
          loaded: load.length ? load[0].startTime + load[0].duration : null}
}"""


def warmup_report(page) -> str:
    """The page's idle-time warm-up so far: chunks, their total and longest, when it finished (after the case's
    load), or that the page has none."""
    w = page.evaluate(WARMUP)
    if not w["chunks"]:
        return "no warm-up in this page"
    done = f"done {(w['done'] - w['loaded']) / 1000:.2f} s after the case's load" if w["done"] is not None \
        else "not done yet"
    return f"warm-up: {w['chunks']} steps, {w['total']:.0f} ms in all, longest {w['longest']:.1f} ms; {done}"


def run_tools(page, repeat: int) -> dict:
    results: dict = {}
    # an annotator's first click comes seconds after the case appears; the page's idle warm-up takes a fraction of one
    page.wait_for_timeout(2000)
    page.click("[data-hotspot-index='0']")  # the liver hotspot: centres the views, fetches the members' crop
    page.wait_for_selector("[data-members]", timeout=120_000)
    print("  members fetched", flush=True)
    # the snap's proposal (an outline at the hotspot) is computed once the crop has drawn: its own work, first call
    page.wait_for_function("() => { const s = document.querySelector('.snap'); return s && s.dataset.snapMs }",
                           timeout=120_000)
    print(f"  snap outline at the hotspot's selection (first call in the page): "
          f"{float(page.get_attribute('.snap', 'data-snap-ms')):.1f} ms", flush=True)
    x, y = liver_point(page)
    print(f"  liver at {x:.0f}, {y:.0f}", flush=True)

    def click_at():
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.up()

    page.uncheck("[data-control=protect]")
    print(f"  before the first tool: {warmup_report(page)}", flush=True)
    for r in range(repeat):
        page.click("[data-tool-button=sphere]")
        page.fill("[data-control=sphere-mm]", "10")
        timed(page, "sphere brush, radius 10 mm, one dab", click_at, results)
        page.click("[data-tool-button=grow]")
        page.fill("[data-control=hu-lo]", "-1000")
        page.fill("[data-control=hu-hi]", "3000")
        page.fill("[data-control=grow-mm]", "30")
        page.check("[data-control=grow-3d]")
        timed(page, "click to grow, 3D, radius 30 mm", click_at, results)
        page.click("[data-tool-button=navigate]")
        page.fill("[data-control=island-ml]", "5")
        for action, label in (("remove-islands", "remove islands < 5 mL (liver's box)"),
                              ("keep-largest", "keep largest (liver's box)"),
                              ("fill-holes", "fill holes (liver's box)")):
            timed(page, label, lambda action=action: page.click(f"[data-action={action}]"), results)
            undo(page)  # the islands and holes are back for the next clean-up and the next repeat
        timed(page, "members: accept one member in the hotspot", lambda: page.click("[data-member-accept=nnunet]"),
              results)
        timed(page, "local threshold: one drag, kept on release",
              lambda r=r: page.fill("[data-control=local-threshold]", f"{0.3 + 0.05 * r:.2f}"), results)
        timed(page, "snap edge to CT: one preview, reach 1 (hotspot's box)",
              lambda: page.click("[data-action=snap-edge]"), results)
        page.click("[data-action=snap-apply]")
    # interpolation: outlines on two axial slices 10 apart
    page.click("[data-tool-button=fill]")

    def outline():
        page.mouse.move(x - 40, y - 40)
        page.mouse.down()
        for px, py in ((x + 40, y - 40), (x + 40, y + 40), (x - 40, y + 40), (x - 40, y - 40)):
            page.mouse.move(px, py, steps=6)
        page.mouse.up()

    timed(page, "outline", outline, None)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(10):
        page.keyboard.press("ArrowUp")
    timed(page, "outline", outline, None)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    timed(page, "interpolate 9 slices between two outlines", lambda: page.keyboard.press("i"), results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true",
                        help="turn the page's idle-time warm-up of the clean-ups off (localStorage atlas.warmup)")
    args = parser.parse_args()

    print(f"machine load before: {loadavg()}")
    with tempfile.TemporaryDirectory(prefix="atlas-bench-tools-") as tmp:
        var = Path(tmp)
        env = {**os.environ, "ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        t0 = time.perf_counter()
        build_case(var, tuple(args.shape))
        print(f"case {' x '.join(map(str, args.shape))} built in {time.perf_counter() - t0:.1f} s")
        with atlas_server(env) as base, signed_in_page(base, "annotator", PASSWORD) as page:
            page.wait_for_selector("[data-page=queue]")
            if args.no_warmup:
                page.evaluate("localStorage.setItem('atlas.warmup', 'off')")
            page.click("[data-action=next-case]")
            page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=1_200_000)
            print("case open", flush=True)
            results = run_tools(page, args.repeat)
            print(warmup_report(page))
    print(f"machine load after: {loadavg()}")
    print("| tool | own work (compute + apply), first call in the page | later calls, median / max "
          "| redraw (upload + draw), median | voxels changed | voxels in its box |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, rows in results.items():
        later = [r[0] for r in rows[1:]]
        rest = f"{statistics.median(later):.1f} / {max(later):.1f} ms" if later else "-"
        print(f"| {label} | {rows[0][0]:.1f} ms | {rest} | {statistics.median(r[1] for r in rows):.0f} ms "
              f"| {rows[-1][2]} | {rows[-1][3]} |")


if __name__ == "__main__":
    main()
