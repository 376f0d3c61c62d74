"""Save a picture of the lead dashboard (docs/dashboard.png) on the browser tests' database of two finished rounds.

    .venv/bin/python scripts/dashboard_screenshot.py docs/dashboard.png

Builds that database (tests/api/rounds_world.py) in a throw-away ATLAS_VAR_DIR, starts `manage.py runserver`, signs
in as the lead in headless Chromium (/usr/bin/chromium, or ATLAS_CHROMIUM) and saves a full-page screenshot. A tool
for docs/ and the README, not a check.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="the PNG to write")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from benchmarks.browser_session import atlas_server, signed_in_page

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
        with atlas_server(env) as base, signed_in_page(base, "lead", PASSWORD, viewport=(1440, 900)) as page:
            page.click("[data-action=dashboard]")
            page.wait_for_selector("[data-page=dashboard][data-state=ready]")
            page.wait_for_selector("[data-jobs-state=ready]")
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out), full_page=True)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
