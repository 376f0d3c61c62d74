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

CHROMIUM_ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    candidates = [os.environ.get("ATLAS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    return next((c for c in candidates if c and Path(c).is_file()), None)


def _unavailable(reason: str):
    if os.environ.get("ATLAS_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here (ATLAS_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


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
def page(browser):
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


class ScreenMap:
    """Screen pixels <-> viewer voxels of the displayed axial slice, measured with the page's own hover readout."""

    def __init__(self, page):
        self.page = page
        box = page.locator(".viewer canvas").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        d = min(box["width"], box["height"]) * 0.3
        (x0, y0, z0), (x1, _, _), (_, y2, _) = (self.hover(cx - d, cy), self.hover(cx + d, cy), self.hover(cx, cy + d))
        self.z = z0
        self.sx = (x1 - x0) / (2 * d)  # voxels per pixel along screen x (sign: direction)
        self.sy = (y2 - y0) / d
        # exact voxel boundaries: walk from the centre until the readout changes
        self.px_edge, self.x_boundary = self._edge(cx, cy, axis=0)
        self.py_edge, self.y_boundary = self._edge(cx, cy, axis=1)

    def _edge(self, x: float, y: float, axis: int) -> tuple[float, float]:
        start = self.hover(x, y)[axis]
        for step in range(1, 400):
            px = (x + step, y) if axis == 0 else (x, y + step)
            now = self.hover(*px)[axis]
            if now != start:
                return px[axis] - 0.5, (start + now) / 2
        raise AssertionError("no voxel boundary found")

    def hover(self, x: float, y: float) -> tuple[int, int, int]:
        self.page.mouse.move(x, y)
        value = self.page.get_attribute("[data-hover-voxel]", "data-hover-voxel")
        assert value, f"no voxel under the mouse at {x:.0f},{y:.0f}"
        return tuple(int(v) for v in value.split(","))

    def screen(self, vx: float, vy: float) -> tuple[float, float]:
        return (self.px_edge + (vx - self.x_boundary) / self.sx, self.py_edge + (vy - self.y_boundary) / self.sy)

    def stroke(self, start: tuple[int, int], end: tuple[int, int], steps: int = 12) -> None:
        """Drag from the centre of voxel `start` to voxel `end` (x, y) on the displayed slice."""
        a, b = self.screen(*start), self.screen(*end)
        assert self.hover(*a)[:2] == start, "the screen map missed the start voxel"
        assert self.hover(*b)[:2] == end, "the screen map missed the end voxel"
        self.page.mouse.move(*a)
        self.page.mouse.down()
        self.page.mouse.move(*b, steps=steps)
        self.page.mouse.up()


def revision_data(revision) -> np.ndarray:
    from django.core.files.storage import default_storage

    return np.asarray(nib.load(default_storage.path(revision.label_file.name)).dataobj)
