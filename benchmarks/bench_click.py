"""The click tool's speed on a large case: a click's round trip through the real server (HTTP, JSON, the packed
label both ways, the case's CT from the pool of open cases, the click model) with the engine's own time given apart,
and the memory an open case holds.

Builds phantom 7 at 512 x 512 x 300 (0.8 x 0.8 x 1 mm by default, as a thin-slice abdominal CT) in a throw-away
ATLAS_VAR_DIR, starts `manage.py runserver`, signs in as a lead with a token, and clicks N times (default 30) at
points inside the organs (positive from an empty label, negative from the organ's label with a blob added), each
request with the crop the workspace sends (GET /api/interactive/'s crop_mm around the click). The first click (the CT
read into the pool) is given apart. Prints the median and 95th percentile of the client's round trip, the server's
time and the engine's. Never asserts.

    .venv/bin/python benchmarks/bench_click.py [--shape 512 512 300] [--spacing 0.8 0.8 1] [--clicks 30] [--threads 2]
    .venv/bin/python benchmarks/bench_click.py --page [--clicks 20]

--page: the issue's own measure, in the real page (headless Chromium): the annotator opens the case, takes the Click
tool on the liver, and clicks on liver voxels of the displayed slice; each click's round trip is the page's
`data-click-ms` (from the mouse-up to the mask applied on the page: performance measure 'atlas:click'), with the
server's and the engine's time from the answer beside it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_viewer import PASSWORD, REPO, loadavg  # noqa: E402
from browser_session import atlas_server, import_bench_phantom, throwaway_var  # noqa: E402


def pack(mask: np.ndarray) -> str:
    return base64.b64encode(np.packbits(mask.ravel(order="F"), bitorder="little").tobytes()).decode()


def call(base: str, token: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={
        "Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.load(answer)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.8, 0.8, 1.0))
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="the click model's torch threads in the server")
    parser.add_argument("--page", action="store_true", help="click in the real page (see above)")
    args = parser.parse_args()
    if args.page:
        page_clicks(args)
        return
    shape = tuple(args.shape)
    sys.path.insert(0, str(REPO))
    with throwaway_var("atlas-bench-click-", ATLAS_INTERACTIVE_THREADS=str(args.threads)) as (var, env):
        started = time.perf_counter()
        phantom, case, _ = import_bench_phantom(var, shape, tuple(args.spacing))
        from annotation.services.users import create_user

        create_user(username="lead", role="lead", password=PASSWORD)
        print(f"phantom {' x '.join(map(str, shape))} built and imported in {time.perf_counter() - started:.0f} s; "
              f"load {loadavg()}", flush=True)
        spacing = np.abs(np.diag(phantom.affine)[:3])
        rng = np.random.default_rng(0)
        with atlas_server(env) as base:
            token = json.load(urllib.request.urlopen(urllib.request.Request(
                base + "/api/auth/token/", data=json.dumps({"username": "lead", "password": PASSWORD}).encode(),
                headers={"Content-Type": "application/json"})))["token"]
            engines = call(base, token, "/api/interactive/")
            half = np.ceil(engines["crop_mm"] / 2 / spacing).astype(int)
            rows = []
            organs = ["liver", "spleen", "kidney_right", "kidney_left", "stomach", "pancreas"]
            for n in range(args.clicks + 1):
                organ = organs[n % len(organs)]
                mask = phantom.organ_mask(organ)
                points = np.argwhere(mask)
                point = points[int(rng.integers(len(points)))]
                lo = np.maximum(point - half, 0)
                hi = np.minimum(point + half, np.array(shape) - 1)
                box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
                positive = n % 2 == 0
                label = np.zeros(mask[box].shape, bool) if positive else mask[box].copy()
                body = {"organ": organ, "box": [lo.tolist(), hi.tolist()], "label": pack(label),
                        "positive" if positive else "negative": [point.tolist()]}
                if not positive:  # a negative click on an extra blob at the point
                    body["positive"] = []
                t0 = time.perf_counter()
                answer = call(base, token, f"/api/cases/{case.pk}/click/", body)
                base64.b64decode(answer["mask"])
                rows.append({"client": time.perf_counter() - t0, "server": answer["seconds"]["total"],
                             "engine": answer["seconds"]["engine"], "voxels": int(label.size)})
        first, rest = rows[0], rows[1:]
        print(f"first click (the CT read into the pool of open cases): {1000 * first['client']:.0f} ms round trip, "
              f"server {1000 * first['server']:.0f} ms, engine {1000 * first['engine']:.0f} ms")
        print(f"next {len(rest)} clicks, crops of {min(r['voxels'] for r in rest)} to {max(r['voxels'] for r in rest)}"
              f" voxels ({engines['crop_mm']:.0f} mm around the click):")
        for key in ("client", "server", "engine"):
            values = [1000 * r[key] for r in rest]
            print(f"  {key:<7} median {statistics.median(values):6.0f} ms, p95 {pct(values, 0.95):6.0f} ms")
        print(f"an open case holds its CT: {np.prod(shape) * 2 / 2**20:.0f} MiB (int16); load now {loadavg()}")


def page_clicks(args) -> None:
    """Clicks in the real page (--page)."""
    from bench_viewer import build_case
    from browser_session import signed_in_page

    shape = tuple(args.shape)
    with throwaway_var("atlas-bench-click-page-", ATLAS_INTERACTIVE_THREADS=str(args.threads)) as (var, env):
        sys.path.insert(0, str(REPO))
        started = time.perf_counter()
        phantom = build_case(var, shape, spacing=tuple(args.spacing))
        print(f"phantom {' x '.join(map(str, shape))} built in {time.perf_counter() - started:.0f} s; load "
              f"{loadavg()}", flush=True)
        from tests.browser.conftest import ViewMap

        rows = []
        with atlas_server(env) as base, signed_in_page(base, "annotator", PASSWORD) as page:
            page.wait_for_selector("[data-page=queue]")
            page.click("[data-action=next-case]")
            page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=1_200_000)
            page.click("[data-organ=liver]")
            page.click("[data-tool-button=click]")
            page.wait_for_selector("[data-click-engine^='atlas-click:']", timeout=60_000)
            view = ViewMap(page)
            liver = np.argwhere(phantom.labels[:, :, view.slice] == 5)
            rng = np.random.default_rng(0)
            for n in range(args.clicks + 1):
                x, y = liver[int(rng.integers(len(liver)))]
                with page.expect_response(lambda r: r.url.endswith("/click/"), timeout=120_000) as info:
                    view.page.mouse.click(*view.screen(int(x), int(y)))
                page.wait_for_selector("[data-click-queued='0'][data-click=done]", timeout=120_000)
                answer = info.value.json()
                rows.append({"page": float(page.get_attribute(".click-tool", "data-click-ms")) / 1000,
                             "server": answer["seconds"]["total"], "engine": answer["seconds"]["engine"]})
                if n % 5 == 0:
                    page.click("[data-action=click-clear]")  # a new session now and then: few points per click
        first, rest = rows[0], rows[1:]
        print(f"first click: {1000 * first['page']:.0f} ms in the page (server {1000 * first['server']:.0f} ms, "
              f"the CT read into the pool)")
        for key in ("page", "server", "engine"):
            values = [1000 * r[key] for r in rest]
            print(f"  {key:<7} median {statistics.median(values):6.0f} ms, p95 {pct(values, 0.95):6.0f} ms "
                  f"({len(values)} clicks)")
        print(f"load after: {loadavg()}")


if __name__ == "__main__":
    if "DJANGO_SETTINGS_MODULE" not in os.environ:
        os.environ["DJANGO_SETTINGS_MODULE"] = "atlas.settings"
    main()
