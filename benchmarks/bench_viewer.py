"""Viewer: load time and stroke latency of the annotator workspace on a large case, in headless Chromium.

Builds a phantom (default 512 x 512 x 300) in a throw-away ATLAS_VAR_DIR with a pseudo-label and an attention
heatmap, starts `manage.py runserver`, signs in as an annotator with Playwright and opens the case. Prints, each
with a baseline measured in the same page and run:

- load: the viewer's load (fetch + decode + GPU, until the first frame is painted) and its phases, against
  fetching the three files (ct, label, attention) to ArrayBuffers;
- strokes: brush strokes on the axial slice, per mouse move while painting (wall, Playwright's input round trip:
  the next move is delivered once the page has handled the previous one and drawn a frame), against the same drag
  in navigate mode (the crosshair moves and the scene redraws, nothing is painted); then mouse-up to committed
  (wall) and the page's own work per stroke (EditHistory.accept), the voxels it compared, and the drawing texture
  uploads (whole volume / box);
- the machine's load average before and after (software WebGL shares the CPUs with everything else).

    .venv/bin/python benchmarks/bench_viewer.py [--shape 512 512 300] [--strokes 10] [--dist DIR]
    .venv/bin/python benchmarks/bench_viewer.py --shape 96 96 64 --predict --strokes 0 --screenshot PATH

--predict records the shipped tiny ensemble's real prediction (pseudo-label, attention heatmap, hotspots) instead
of the phantom's own labels as a stand-in (slow on large shapes: it runs the three networks on the CPU). --dist
serves another build of frontend_static (e.g. an older one, to compare). Needs Chromium (/usr/bin/chromium) and the
Python playwright package (requirements-dev.txt). Never asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_session import REPO, atlas_server, import_bench_phantom, signed_in_page, throwaway_var  # noqa: E402

PASSWORD = "bench-password-123"
MOVES = 20  # mouse moves per drag


def build_case(var: Path, shape: tuple[int, int, int], predict: bool = False,
               spacing: tuple[float, float, float] | None = None):
    """A phantom imported into a fresh database, with a pseudo-label and heatmap recorded for round 0; the phantom."""
    import nibabel as nib
    import numpy as np

    phantom, case, round0 = import_bench_phantom(var, shape, spacing)
    from annotation.ml_adapter import OrganAttentionInput
    from annotation.services.predictions import record_prediction
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    if predict:
        files = predict_case(case, var / "prediction")
        record_prediction(case=case, round=round0, pseudo_label=files.pseudo_label, heatmap=files.heatmap,
                          attention=files.attention, organs=files.organs)
    else:
        labels = phantom.labels
        edge = np.zeros(labels.shape, dtype=bool)  # organ borders: a stand-in attention heatmap
        for axis in range(3):
            edge |= labels != np.roll(labels, 1, axis=axis)
        heat = np.where(edge & (labels > 0), 220, 0).astype(np.uint8)
        pseudo_path, heat_path = var / "pseudo.nii.gz", var / "heat.nii.gz"
        nib.save(nib.Nifti1Image(labels, phantom.affine), str(pseudo_path))
        nib.save(nib.Nifti1Image(heat, phantom.affine), str(heat_path))
        spacing = float(np.prod(np.abs(np.diag(phantom.affine)[:3])))
        organs = []
        for value, name in ((5, "liver"), (1, "spleen"), (9, "pancreas")):
            mask = labels == value
            border = mask & edge
            if not mask.any():
                continue
            centroid = [int(c) for c in np.argwhere(border[::4, ::4, ::4]).mean(axis=0) * 4]
            organs.append(OrganAttentionInput(name, float(border.sum() * spacing / 1000), int(border.sum()),
                                              [{"voxels": int(border.sum()),
                                                "ml": float(border.sum() * spacing / 1000),
                                                "centroid": centroid, "bbox": [centroid, centroid]}]))
        organs.sort(key=lambda o: -o.size_ml)
        record_prediction(case=case, round=round0, pseudo_label=pseudo_path, heatmap=heat_path, organs=organs)
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)
    return phantom


def predict_case(case, workdir: Path):
    """The shipped tiny checkpoints (swin_unetr, nnunet, unet) as model versions, and their ensemble on the case."""
    from annotation.ml_adapter import infer_case, shipped_checkpoint
    from annotation.models import ModelVersion
    from annotation.storage import store_file

    versions = []
    for arch in ("swin_unetr", "nnunet", "unet"):
        path = shipped_checkpoint(arch, "tiny")
        if path is None:
            raise SystemExit(f"error: no shipped checkpoint for {arch} (ml_engine/checkpoints/{arch}_tiny.pt)")
        name = store_file(f"models/shipped/{path.name}", path)
        versions.append(ModelVersion.objects.create(name=f"{arch}_tiny", arch=arch, size="tiny", checkpoint=name))
    workdir.mkdir(parents=True, exist_ok=True)
    return infer_case(case=case, versions=versions, workdir=workdir)



def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def attr(page, name: str) -> str | None:
    return page.get_attribute("[data-page=workspace]", f"data-{name}")


def drag_ms_per_move(page, x0: float, x1: float, y: float, button: str = "left") -> float:
    """Press at (x0, y), drag to (x1, y) in MOVES moves, release: milliseconds per move (wall)."""
    page.mouse.move(x0, y)
    page.mouse.down(button=button)
    t0 = time.perf_counter()
    page.mouse.move(x1, y, steps=MOVES)
    ms = (time.perf_counter() - t0) * 1000 / MOVES
    page.mouse.up(button=button)
    return ms


def next_frame(page) -> None:
    """Wait for two animation frames: the page has drawn a frame since (the GPU caught up with the work queued)."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def settings_module(var: Path, dist: Path) -> str:
    """A settings module serving another frontend build (--dist)."""
    (var / "bench_settings.py").write_text(
        "from atlas.settings import *  # noqa: F403\n"
        f"WHITENOISE_ROOT = {str(dist.resolve())!r}\n")
    return "bench_settings"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--strokes", type=int, default=10)
    parser.add_argument("--predict", action="store_true",
                        help="record the shipped tiny ensemble's prediction, not the phantom's labels")
    parser.add_argument("--dist", type=Path, help="serve this frontend build instead of frontend_static/dist")
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the workspace here")
    args = parser.parse_args()

    print(f"machine load before: {loadavg()}")
    with throwaway_var("atlas-bench-viewer-") as (var, env):
        sys.path.insert(0, str(REPO))
        t0 = time.perf_counter()
        build_case(var, tuple(args.shape), predict=args.predict)
        source = "the tiny ensemble's prediction" if args.predict else "the phantom's labels as pseudo-label"
        print(f"case {args.shape[0]} x {args.shape[1]} x {args.shape[2]} ({source}) built in "
              f"{time.perf_counter() - t0:.1f} s")
        if args.dist:
            env["DJANGO_SETTINGS_MODULE"] = settings_module(var, args.dist)
            env["PYTHONPATH"] = os.pathsep.join([str(var), str(REPO), env.get("PYTHONPATH", "")])
            print(f"frontend: {args.dist}")
        with atlas_server(env) as base, signed_in_page(base, "annotator", PASSWORD, debug=True) as page:
            page.wait_for_selector("[data-page=queue]")
            measure(page, args)
    print(f"machine load after: {loadavg()}")


def measure(page, args) -> None:
    t0 = time.perf_counter()
    page.click("[data-action=next-case]")
    page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=1_200_000)
    wall_ready = time.perf_counter() - t0
    next_frame(page)
    wall_frame = time.perf_counter() - t0
    viewer_load = float(attr(page, "load-ms")) / 1000
    phases = dict(page.evaluate("""() => performance.getEntriesByType('measure')
        .filter(e => e.name.startsWith('atlas:load:')).map(e => [e.name.slice(11), e.duration / 1000])"""))
    fetch_only = page.evaluate("""async () => {
        const ct = performance.getEntriesByType('resource').map(e => e.name).find(n => n.endsWith('/ct.nii.gz'));
        const base = ct.slice(0, -'ct.nii.gz'.length);
        const t0 = performance.now();
        await Promise.all(['ct.nii.gz', 'label.nii.gz', 'attention.nii.gz'].map(
            async u => (await fetch(base + u, {cache: 'no-store'})).arrayBuffer()));
        return (performance.now() - t0) / 1000;
    }""")
    debug = page.evaluate("() => Boolean(window.atlasViewer)")
    print(f"WebGL: {attr(page, 'webgl')}")
    print(f"load, Next case -> ready (wall): {wall_ready:.1f} s; -> first frame drawn after it: {wall_frame:.1f} s")
    detail = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()) if phases else "no phases (older build)"
    print(f"load, viewer's own (NiiVue fetch + decode + GPU): {viewer_load:.1f} s ({detail})")
    print(f"baseline, fetch the three files only: {fetch_only:.2f} s; viewer load / baseline: "
          f"{viewer_load / fetch_only:.0f}, first frame / baseline: {wall_frame / fetch_only:.0f}")
    if debug:
        redraws = page.evaluate("() => [0, 1, 2, 3, 4].map(() => window.atlasViewer.timeRedraw())")
        print(f"redraw of the scene, GPU included (median of 5): {statistics.median(redraws):.0f} ms")
    if args.strokes > 0:
        strokes(page, args.strokes)
    if args.screenshot:
        if args.strokes > 0:
            page.keyboard.press("Control+z")
        page.click("[data-hotspot-index='0']")
        page.click("[data-tool-button=navigate]")
        next_frame(page)
        page.wait_for_timeout(300)
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.screenshot))
        print(f"screenshot: {args.screenshot}")


def strokes(page, n: int) -> None:
    box = page.locator(".viewer canvas").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    rows = [cy - 150 + i * 30 for i in range(n)]
    # baseline: the same drags in navigate mode (the crosshair follows, the scene redraws, nothing is painted)
    crosshair = [drag_ms_per_move(page, cx - 200, cx + 200, y) for y in rows[:3]]
    uploads0 = attr(page, "drawing-uploads")
    page.click("[data-organ=liver]")
    page.click("[data-tool-button=brush]")
    page.fill("[data-control=brush]", "3")
    paint, commits, works, voxels, scanned = [], [], [], [], []
    for i, y in enumerate(rows):
        page.mouse.move(cx - 200, y)
        page.mouse.down()
        t0 = time.perf_counter()
        page.mouse.move(cx + 200, y, steps=MOVES)
        paint.append((time.perf_counter() - t0) * 1000 / MOVES)
        t0 = time.perf_counter()
        page.mouse.up()
        page.wait_for_selector(f"[data-page=workspace][data-undo='{i + 1}']", timeout=300_000)
        commits.append((time.perf_counter() - t0) * 1000)
        works.append(float(attr(page, "last-stroke-ms")))
        voxels.append(int(attr(page, "stroke-voxels")))
        if attr(page, "stroke-scanned") is not None:
            scanned.append(int(attr(page, "stroke-scanned")))
    t0 = time.perf_counter()
    page.keyboard.press("Control+z")
    page.wait_for_selector(f"[data-page=workspace][data-undo='{n - 1}']", timeout=300_000)
    undo_ms = (time.perf_counter() - t0) * 1000
    base, move = statistics.median(crosshair), statistics.median(paint)
    print(f"baseline, crosshair drag in navigate mode: {base:.0f} ms per mouse move (median of {len(crosshair)} "
          f"drags of {MOVES} moves)")
    print(f"stroke, brush 3, painting: {move:.0f} ms per mouse move (median of {n} strokes, max {max(paint):.0f}); "
          f"painting / crosshair: {move / base:.2f}")
    print(f"stroke, mouse-up -> committed (wall, median / max): {statistics.median(commits):.0f} / "
          f"{max(commits):.0f} ms")
    print(f"stroke, the page's own work (EditHistory.accept, median / max): {statistics.median(works):.1f} / "
          f"{max(works):.1f} ms; voxels changed per stroke (median): {statistics.median(voxels):.0f}; compared: "
          + (f"{statistics.median(scanned):.0f}" if scanned else "the whole volume (older build)"))
    uploads1 = attr(page, "drawing-uploads")
    if uploads0 and uploads1:
        (f0, b0), (f1, b1) = (tuple(int(v) for v in u.split("/")) for u in (uploads0, uploads1))
        print(f"drawing texture uploads during the strokes and undo: {f1 - f0} whole-volume, {b1 - b0} boxes")
    print(f"undo (wall): {undo_ms:.0f} ms")


if __name__ == "__main__":
    main()
