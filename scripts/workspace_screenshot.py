"""Save a picture of the annotator's workspace (docs/screenshots/workspace.png) on the seeded demo after round 0.

    .venv/bin/python scripts/workspace_screenshot.py docs/screenshots/workspace.png

In a throw-away ATLAS_VAR_DIR, the demo as `make demo` builds it: `seed_demo` (the demo users and 16 phantoms of
96 x 96 x 64, 3 fully labelled, 4 partially), then round 0 of the loop with run_demo.sh's 20 training steps, its jobs
run in this process: the shipped tiny checkpoints fine-tuned on those labels, the ensemble's inference and attention
on every case, the queue ranked. `manage.py runserver` serves it; annotator1 takes the top case with Next case in
headless Chromium (/usr/bin/chromium, or ATLAS_CHROMIUM) and selects its largest hotspot. A tool for docs/ and the
README, not a check.
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

STEPS = 20  # scripts/run_demo.sh's DEMO_STEPS


def run_here(job) -> None:
    """ATLAS_JOB_ENQUEUE here: run the job (and the jobs it queues) at once, in this process."""
    from annotation.services import jobs

    jobs.run_job(job.pk)


def seed_and_run_round0() -> str:
    """The seeded demo with round 0 finished (annotating); returns annotator1's password."""
    from annotation.models import Round
    from annotation.services.demo import seed_demo
    from annotation.services.rounds import start_round

    report = seed_demo()
    assert report.imported is not None and report.imported.ok, report.imported
    round0 = start_round(steps=STEPS)
    round0.refresh_from_db()
    if round0.status != Round.Status.ANNOTATING:
        raise SystemExit(f"round 0 ended {round0.status}: {list(round0.jobs.values_list('key', 'status', 'error'))}")
    return report.created_users["annotator1"]


def main() -> None:
    out = screenshot_path(__doc__)
    with throwaway_var("atlas-workspace-shot-", ATLAS_JOB_ENQUEUE="scripts.workspace_screenshot.run_here") as (_, env):
        migrate()
        password = seed_and_run_round0()
        with atlas_server(env) as base, signed_in_page(base, "annotator1", password) as page:
            page.wait_for_selector("[data-page=queue]")
            page.click("[data-action=next-case]")
            page.wait_for_selector("[data-page=workspace][data-state=ready]", timeout=300_000)
            page.click("[data-hotspot-index='0']")
            save_screenshot(page, out)


if __name__ == "__main__":
    main()
