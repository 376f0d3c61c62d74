"""Save a picture of the lead dashboard (docs/dashboard.png) on the browser tests' database of two finished rounds.

    .venv/bin/python scripts/dashboard_screenshot.py docs/dashboard.png

Builds that database (tests/api/rounds_world.py) in a throw-away ATLAS_VAR_DIR, starts `manage.py runserver`, signs
in as the lead in headless Chromium (/usr/bin/chromium, or ATLAS_CHROMIUM) and saves a full-page screenshot. A tool
for docs/ and the README, not a check.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from benchmarks.bench_viewer import ARGS, free_port

    with tempfile.TemporaryDirectory(prefix="atlas-dashboard-shot-") as tmp:
        env = {**os.environ, "ATLAS_VAR_DIR": tmp, "DJANGO_SETTINGS_MODULE": "atlas.settings", "DEBUG": "0"}
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from annotation.models import Job
        from tests.api.conftest import PASSWORD
        from tests.api.rounds_world import build_two_rounds

        build_two_rounds(Path(tmp))
        Job.objects.filter(key="round1:rank").update(status=Job.Status.RUNNING, progress=0.6, message="ranking")
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
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium"),
                                            headless=True, args=ARGS)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")
                page.fill("input[name=username]", "lead")
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                page.click("[data-action=dashboard]")
                page.wait_for_selector("[data-page=dashboard][data-state=ready]")
                page.wait_for_selector("[data-jobs-state=ready]")
                page.wait_for_timeout(500)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
