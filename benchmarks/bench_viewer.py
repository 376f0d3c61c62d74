"""Viewer: load time and stroke latency of the annotator workspace on a large case, in headless Chromium.

Builds a phantom (default 512 x 512 x 300) in a throw-away ATLAS_VAR_DIR, records its labels as a stand-in
pseudo-label with an attention heatmap, starts `manage.py runserver`, signs in as an annotator with Playwright
and opens the case. Prints:

- load: "Next case" click to the workspace ready (wall), NiiVue's own load (fetch + decode + GPU upload), and the
  baseline measured in the same page: fetching the three files (ct, label, attention) to ArrayBuffers;
- strokes: brush strokes on the axial slice, each from mouse-up to the page's data-undo attribute changing (wall,
  includes Playwright's round trip) and the page's own per-stroke work (EditHistory.accept over the volume).

    .venv/bin/python benchmarks/bench_viewer.py [--shape 512 512 300] [--strokes 10] [--screenshot PATH]

Needs Chromium (/usr/bin/chromium) and the Python playwright package (requirements-dev.txt). Never asserts.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-123"
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
        "--disable-dev-shm-usage"]


def build_case(var: Path, shape: tuple[int, int, int]) -> None:
    """A phantom imported into a fresh database, with its labels as the round's pseudo-label."""
    import django
    import nibabel as nib
    import numpy as np

    django.setup()
    from django.core.management import call_command

    from annotation.models import Case, LabelSet, Round
    from annotation.services.imports import import_cases
    from annotation.services.predictions import OrganAttentionInput, record_prediction
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    from ml_engine.phantoms import make_phantom

    call_command("migrate", verbosity=0)
    phantom = make_phantom(7, shape=shape, name="bench")
    src = var / "in"
    src.mkdir(parents=True)
    nib.save(nib.Nifti1Image(phantom.ct, phantom.affine), str(src / "bench.nii.gz"))
    assert import_cases(src, dataset="bench").ok
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
                                          [{"voxels": int(border.sum()), "ml": float(border.sum() * spacing / 1000),
                                            "centroid": centroid, "bbox": [centroid, centroid]}]))
    organs.sort(key=lambda o: -o.size_ml)
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                   label_set=LabelSet.objects.get(name="abdomenatlas"))
    record_prediction(case=Case.objects.get(name="bench"), round=round0, pseudo_label=pseudo_path, heatmap=heat_path,
                      organs=organs)
    rebuild_tasks(round=round0)
    create_user(username="annotator", role="annotator", password=PASSWORD)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--strokes", type=int, default=10)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of the workspace here")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="atlas-bench-viewer-") as tmp:
        var = Path(tmp)
        env = {**os.environ, "ATLAS_VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        sys.path.insert(0, str(REPO))
        t0 = time.perf_counter()
        build_case(var, tuple(args.shape))
        print(f"case {args.shape[0]} x {args.shape[1]} x {args.shape[2]} built in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium"),
                                            headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1500, "height": 950})
                page.goto(base + "/")
                page.fill("input[name=username]", "annotator")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_selector("[data-page=queue]")
                t0 = time.perf_counter()
                page.click("[data-action=next-case]")
                page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=600_000)
                wall_load = time.perf_counter() - t0
                viewer_load = float(page.get_attribute("[data-page=workspace]", "data-load-ms")) / 1000
                webgl = page.get_attribute("[data-page=workspace]", "data-webgl")
                fetch_only = page.evaluate("""async () => {
                    const ct = performance.getEntriesByType('resource').map(e => e.name)
                        .find(n => n.endsWith('/ct.nii.gz'));
                    const base = ct.slice(0, -'ct.nii.gz'.length);
                    const t0 = performance.now();
                    await Promise.all(['ct.nii.gz', 'label.nii.gz', 'attention.nii.gz'].map(
                        async u => (await fetch(base + u, {cache: 'no-store'})).arrayBuffer()));
                    return (performance.now() - t0) / 1000;
                }""")
                print(f"WebGL: {webgl}")
                print(f"load, Next case -> ready (wall): {wall_load:.2f} s")
                print(f"load, viewer (fetch + decode + upload): {viewer_load:.2f} s")
                print(f"baseline, fetch the three files only: {fetch_only:.2f} s, ratio {viewer_load / fetch_only:.2f}")
                page.click("[data-organ=liver]")
                page.click("[data-tool-button=brush]")
                page.fill("[data-control=brush]", "3")
                box = page.locator(".viewer canvas").bounding_box()
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                walls, works, voxels = [], [], []
                for i in range(args.strokes):
                    y = cy - 150 + i * 30
                    page.mouse.move(cx - 200, y)
                    page.mouse.down()
                    page.mouse.move(cx + 200, y, steps=20)
                    t0 = time.perf_counter()
                    page.mouse.up()
                    page.wait_for_selector(f"[data-page=workspace][data-undo='{i + 1}']", timeout=60_000)
                    walls.append((time.perf_counter() - t0) * 1000)
                    works.append(float(page.get_attribute("[data-page=workspace]", "data-last-stroke-ms")))
                    voxels.append(int(page.get_attribute("[data-page=workspace]", "data-stroke-voxels")))
                t0 = time.perf_counter()
                page.keyboard.press("Control+z")
                page.wait_for_selector(f"[data-page=workspace][data-undo='{args.strokes - 1}']")
                undo_ms = (time.perf_counter() - t0) * 1000
                print(f"strokes: {args.strokes}, voxels each (median): {statistics.median(voxels):.0f}")
                print(f"stroke, mouse-up -> committed (wall, median / max): {statistics.median(walls):.0f} / "
                      f"{max(walls):.0f} ms")
                print(f"stroke, page's own work (median / max): {statistics.median(works):.0f} / {max(works):.0f} ms")
                print(f"undo (wall): {undo_ms:.0f} ms")
                if args.screenshot:
                    page.keyboard.press("Control+z")
                    page.click("[data-hotspot-index='0']")
                    page.click("[data-tool-button=navigate]")
                    page.wait_for_timeout(300)
                    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.screenshot))
                    print(f"screenshot: {args.screenshot}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
