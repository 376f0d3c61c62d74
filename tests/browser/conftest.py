"""Browser tests: a real server (pytest-django's live_server) and headless Chromium driven by Playwright.

Chromium is Debian's /usr/bin/chromium (ATLAS_CHROMIUM overrides); `make test` installs it when missing. WebGL2
comes from SwiftShader, so no GPU is needed. Without Playwright or Chromium these tests skip with the reason,
unless ATLAS_REQUIRE_BROWSER=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.conftest import unavailable

CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    candidates = [os.environ.get("ATLAS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _unavailable(reason: str):
    unavailable(reason, switch="ATLAS_REQUIRE_BROWSER")


@pytest.fixture(scope="package")
def browser(django_db_setup):
    """Chromium for this folder's tests. Playwright's sync API keeps an asyncio loop running in this thread while it
    lives; the tests' ORM calls are still plain synchronous code, so Django's async-safety guard is told so, for
    as long as the browser runs (package scope: it stops before other folders' tests)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed (pip install -r requirements-dev.txt)")
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (make test installs Debian's chromium; or set ATLAS_CHROMIUM)")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live_server):
    """A fresh page. It asks for the live server so that it is closed before the server's database is flushed: a
    request still in flight (a heartbeat, a members' fetch) would otherwise hold rows that PostgreSQL's TRUNCATE
    waits on (a deadlock, seen under load)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()


def seed_reference_data() -> None:
    """Label sets, role groups and error tags, as the data migrations create them: a transactional test's flush
    removed them. Each loader is idempotent."""
    import importlib

    from django.apps import apps

    for module, function in (("0002_label_sets", "load"), ("0003_roles", "create_roles"),
                             ("0005_error_tags", "load")):
        loader = getattr(importlib.import_module(f"annotation.migrations.{module}"), function)
        loader(apps, None)


@pytest.fixture
def world(tmp_path, settings, live_server):
    """The API tests' annotating round (cases mid/big/small, users a1 a2 lead boss) behind a live server."""
    from tests.api.conftest import build_world

    seed_reference_data()
    settings.ATLAS_LEASE_MINUTES = 30
    return build_world(tmp_path, {"mid": 30.0, "big": 50.0, "small": 10.0})


def sign_in(page, base_url: str, username: str = "a1") -> None:
    from tests.api.conftest import PASSWORD

    page.goto(base_url + "/")
    page.wait_for_selector("[data-page=login]")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-page=queue]")


def open_next_case(page) -> None:
    page.click("[data-action=next-case]")
    page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=30_000)


def workspace(page, name: str) -> str:
    return page.get_attribute("[data-page=workspace]", f"data-{name}")


class ViewMap:
    """Screen pixels <-> voxels of the displayed slice in any 2D view, measured with the page's hover readout: which
    voxel axis runs along screen x (`h`) and along screen y (`v`), the slice's fixed axis, and voxel boundaries."""

    def __init__(self, page):
        self.page = page
        box = page.locator(".viewer canvas").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        d = min(box["width"], box["height"]) * 0.3
        centre, right, down = self.hover(cx, cy), self.hover(cx + d, cy), self.hover(cx, cy + d)
        moved_h = [k for k in range(3) if right[k] != centre[k]]
        moved_v = [k for k in range(3) if down[k] != centre[k]]
        assert len(moved_h) == 1 and len(moved_v) == 1 and moved_h != moved_v, (centre, right, down)
        self.h, self.v = moved_h[0], moved_v[0]
        self.fixed = 3 - self.h - self.v
        self.slice = centre[self.fixed]
        # scale and offset from two exact voxel boundaries 2d pixels apart, along each screen axis
        (ph0, bh0), (ph1, bh1) = self._edge(cx - d, cy, 0), self._edge(cx + d, cy, 0)
        (pv0, bv0), (pv1, bv1) = self._edge(cx, cy - d, 1), self._edge(cx, cy + d, 1)
        self.sh = (bh1 - bh0) / (ph1 - ph0)  # voxels per pixel along screen x (sign: direction)
        self.sv = (bv1 - bv0) / (pv1 - pv0)
        self.px_edge, self.h_boundary, self.py_edge, self.v_boundary = ph0, bh0, pv0, bv0

    def _edge(self, x: float, y: float, screen_axis: int) -> tuple[float, float]:
        """From (x, y), walk along a screen axis to the next voxel boundary: its pixel position and voxel value."""
        axis = self.h if screen_axis == 0 else self.v
        start = self.hover(x, y)[axis]
        for step in range(1, 400):
            px = (x + step, y) if screen_axis == 0 else (x, y + step)
            now = self.hover(*px)[axis]
            if now != start:
                return px[screen_axis] - 0.5, (start + now) / 2
        raise AssertionError("no voxel boundary found")

    def hover(self, x: float, y: float) -> tuple[int, int, int]:
        self.page.mouse.move(x, y)
        value = self.page.get_attribute("[data-hover-voxel]", "data-hover-voxel")
        assert value, f"no voxel under the mouse at {x:.0f},{y:.0f}"
        return tuple(int(v) for v in value.split(","))

    def voxel(self, a: int, b: int) -> tuple[int, int, int]:
        """The voxel at in-plane coordinates (a along screen x, b along screen y) of the displayed slice."""
        v = [0, 0, 0]
        v[self.h], v[self.v], v[self.fixed] = a, b, self.slice
        return tuple(v)

    def screen(self, a: float, b: float) -> tuple[float, float]:
        return (self.px_edge + (a - self.h_boundary) / self.sh, self.py_edge + (b - self.v_boundary) / self.sv)

    def path(self, points: list[tuple[int, int]], steps: int = 12) -> None:
        """Press at the first in-plane point, drag through the others in order, release."""
        screens = [self.screen(*p) for p in points]
        for p, s in zip(points, screens, strict=True):
            assert self.hover(*s) == self.voxel(*p), f"the screen map missed voxel {self.voxel(*p)}"
        self.page.mouse.move(*screens[0])
        self.page.mouse.down()
        for s in screens[1:]:
            self.page.mouse.move(*s, steps=steps)
        self.page.mouse.up()


class ScreenMap(ViewMap):
    """The axial view's map: voxel x along screen x, y along screen y; z is the displayed slice."""

    @property
    def z(self) -> int:
        assert (self.h, self.v) == (0, 1), "ScreenMap expects the axial view"
        return self.slice

    def stroke(self, start: tuple[int, int], end: tuple[int, int], steps: int = 12) -> None:
        """Drag from the centre of voxel `start` to voxel `end` (x, y) on the displayed slice."""
        self.path([start, end], steps=steps)


def revision_data(revision) -> np.ndarray:
    from django.core.files.storage import default_storage

    return np.asarray(nib.load(default_storage.path(revision.label_file.name)).dataobj)


def wait_undo(page, depth: int) -> None:
    page.wait_for_selector(f"[data-page=workspace][data-undo='{depth}']")


def submit(page, task) -> np.ndarray:
    """Submit the workspace's label (no tags) and return the stored revision's voxels."""
    from annotation.models import Revision

    page.click("[data-action=submit]")
    page.click("[data-action=upload]")
    page.wait_for_selector("[data-page=queue] [data-flash]", timeout=20_000)
    return revision_data(Revision.objects.get(task=task))


def changed_voxels(data: np.ndarray, reference: np.ndarray) -> set[tuple[int, int, int]]:
    """The voxels (x, y, z) where data differs from reference."""
    return {tuple(int(v) for v in idx) for idx in np.argwhere(data != reference)}
