"""Save a picture of the lead's review view (docs/screenshots/review.png) on a demo-sized phantom.

    .venv/bin/python scripts/review_screenshot.py docs/screenshots/review.png

Builds benchmarks/bench_viewer.py's case (a 96 x 96 x 64 phantom, its labels as the pseudo-label) in a throw-away
ATLAS_VAR_DIR; the annotator submits a revision that trims the liver and grows the spleen; the quality checks run;
`manage.py runserver` serves it and the lead opens it from "Next to review" in headless Chromium (/usr/bin/chromium,
or ATLAS_CHROMIUM). A tool for docs/ and the README, not a check.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.browser_session import (  # noqa: E402
    atlas_server,
    save_screenshot,
    screenshot_path,
    signed_in_page,
    throwaway_var,
)


def revise(var: Path) -> None:
    """The annotator's revision: the liver's top slab erased, the spleen grown by a few voxels sideways."""
    import numpy as np

    from annotation.models import Job
    from annotation.services import jobs, queue, revisions
    from annotation.services.users import create_user
    from annotation.storage import read_voxels
    from ml_engine.io import write_nifti

    annotator = create_user(username="annotator2", role="annotator", password="unused-password-1")
    task = queue.lease_next(user=annotator)
    label = read_voxels(task.case.predictions.get().pseudo_label.name).copy()
    liver = np.argwhere(label == 5)
    top = liver[:, 2].max()
    label[(label == 5) & (np.arange(label.shape[2])[None, None, :] > top - 6)] = 0
    spleen = label == 1
    label[np.roll(spleen, 3, axis=0) & (label == 0)] = 1
    path = write_nifti(var / "revision.nii.gz", label, np.asarray(task.case.affine), dtype=np.uint8)
    revision = revisions.submit_revision(task_id=task.pk, user=annotator, upload=path, base_revision=None,
                                         tags={"liver": ["ambiguous_boundary"]}, seconds_spent=184.0)
    for job in Job.objects.filter(revision=revision):
        jobs.run_job(job.pk)  # the quality checks, here rather than on a worker


def hold(job) -> None:
    """ATLAS_JOB_ENQUEUE here: jobs wait in the database; revise() runs its quality checks itself."""


def main() -> None:
    out = screenshot_path(__doc__)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from benchmarks.bench_viewer import build_case

    with throwaway_var("atlas-review-shot-", ATLAS_JOB_ENQUEUE="scripts.review_screenshot.hold") as (var, env):
        build_case(var, (96, 96, 64))
        revise(var)
        from annotation.services.users import create_user

        create_user(username="lead", role="lead", password="review-password-1")
        with atlas_server(env) as base, signed_in_page(base, "lead", "review-password-1", viewport=(1440, 860)) as page:
            page.wait_for_selector("[data-page=queue]")
            page.click("[data-action=review]")
            page.wait_for_selector("[data-page=review-queue][data-state=ready]")
            page.click("[data-action=next-review]")
            page.wait_for_selector("[data-page=review][data-state=ready]", timeout=120_000)
            page.locator("[data-table=diff] [data-row=liver]").click()
            page.wait_for_selector("[data-page=review][data-organ=liver][data-state=ready]", timeout=120_000)
            save_screenshot(page, out)


if __name__ == "__main__":
    main()
