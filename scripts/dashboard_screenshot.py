"""Save a picture of the lead dashboard (docs/dashboard.png) on the browser tests' database of two finished rounds.

    .venv/bin/python scripts/dashboard_screenshot.py docs/dashboard.png

Builds that database (tests/api/rounds_world.py) in a throw-away ATLAS_VAR_DIR, starts `manage.py runserver`, signs
in as the lead in headless Chromium (/usr/bin/chromium, or ATLAS_CHROMIUM) and saves a full-page screenshot. A tool
for docs/ and the README, not a check.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.browser_session import (  # noqa: E402
    atlas_server,
    migrate,
    save_screenshot,
    screenshot_path,
    signed_in_page,
    throwaway_var,
)


def main() -> None:
    out = screenshot_path(__doc__)
    with throwaway_var("atlas-dashboard-shot-") as (var, env):
        migrate()
        from annotation.models import Job
        from tests.api.conftest import PASSWORD
        from tests.api.rounds_world import build_two_rounds

        build_two_rounds(var)
        Job.objects.filter(key="round1:rank").update(status=Job.Status.RUNNING, progress=0.6, message="ranking")
        with atlas_server(env) as base, signed_in_page(base, "lead", PASSWORD, viewport=(1440, 900)) as page:
            page.click("[data-action=dashboard]")
            page.wait_for_selector("[data-page=dashboard][data-state=ready]")
            page.wait_for_selector("[data-jobs-state=ready]")
            save_screenshot(page, out, full_page=True)


if __name__ == "__main__":
    main()
