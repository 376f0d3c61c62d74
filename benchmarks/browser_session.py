"""What the browser benchmarks and scripts share: a throw-away ATLAS_VAR_DIR and its freshly migrated database, a
phantom imported into it, Atlas served from it by `manage.py runserver`, a Chromium page signed in to it (Debian's
/usr/bin/chromium, or ATLAS_CHROMIUM, headless with SwiftShader's WebGL2), and a screenshot of that page."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--disable-background-networking",
        "--disable-dev-shm-usage"]


@contextmanager
def throwaway_var(prefix: str, **extra: str) -> Iterator[tuple[Path, dict]]:
    """A temporary ATLAS_VAR_DIR, this process's environment set for it (atlas.settings, DEBUG off, and extra):
    yields (the folder, the environment for atlas_server); the folder is removed at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        env = {**os.environ, "ATLAS_VAR_DIR": tmp, "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0", **extra}
        os.environ.update(env)
        yield Path(tmp), env


def migrate() -> None:
    """Set Django up (settings from the environment) and migrate its database."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def import_bench_phantom(var: Path, shape: tuple[int, int, int], spacing: tuple[float, float, float] | None = None):
    """Phantom 7 of this shape (and spacing, default the phantoms') imported as case "bench" into a freshly migrated
    database (settings from the environment), with round 0 annotating: (phantom, case, round)."""
    import nibabel as nib

    migrate()
    from annotation.models import Case, LabelSet, Round
    from annotation.services.imports import import_cases
    from ml_engine.phantoms import make_phantom

    phantom = make_phantom(7, shape=shape, name="bench", **({"spacing": spacing} if spacing else {}))
    src = var / "in"
    src.mkdir(parents=True)
    nib.save(nib.Nifti1Image(phantom.ct, phantom.affine), str(src / "bench.nii.gz"))
    assert import_cases(src, dataset="bench").ok
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    return phantom, Case.objects.get(name="bench"), round0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def atlas_server(env: dict) -> Iterator[str]:
    """`manage.py runserver` on a free port with env (its ATLAS_VAR_DIR, settings); yields the base URL once it
    answers, stops it at the end."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def signed_in_page(base: str, username: str, password: str, *, viewport: tuple[int, int] = (1500, 950),
                   debug: bool = False) -> Iterator:
    """A Playwright page of a fresh headless Chromium, signed in at base as username (on the queue page or, for
    leads, their first page). debug: localStorage atlas.debug = 1 (the workspace mirrors its textures as numbers)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium"),
                                    headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(base + "/")
            if debug:
                page.evaluate("localStorage.setItem('atlas.debug', '1')")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            yield page
        finally:
            browser.close()


def save_screenshot(page, out: Path, *, full_page: bool = False) -> None:
    """Let the page settle (half a second after its last wait), then save it as the PNG out."""
    page.wait_for_timeout(500)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=full_page)
    print(f"saved {out}")


def screenshot_path(doc: str) -> Path:
    """A screenshot script's one argument, the PNG to write (its --help from the script's docstring)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    return parser.parse_args().out
