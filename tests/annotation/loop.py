"""Shared by the round tests: jobs run in this process, and a small imported dataset of phantoms."""

from __future__ import annotations

from pathlib import Path

from annotation.services import jobs
from annotation.services.imports import import_cases
from ml_engine.phantoms import ORGANS, Phantom, make_phantom, write_phantom_case


def inline(job) -> None:
    """The tests' ATLAS_JOB_ENQUEUE (tests/conftest.py): run the job (and the jobs it queues) at once, here."""
    jobs.run_job(job.pk)


QUEUED: list = []


def collect(job) -> None:
    """An ATLAS_JOB_ENQUEUE for tests that look at what was queued without running it."""
    QUEUED.append(job)


def import_phantoms(src: Path, *, first_seed: int, prefix: str, dataset: str, n: int = 4,
                    labelled: int = 2) -> dict[str, Phantom]:
    """Import n small phantoms (32^3 at 3 mm), the first `labelled` with every organ; returns name -> phantom."""
    truth = {}
    for i in range(n):
        phantom = make_phantom(first_seed + i, shape=(32, 32, 32), spacing=(3.0, 3.0, 3.0), name=f"{prefix}{i}")
        write_phantom_case(phantom, src, organs=ORGANS if i < labelled else ())
        truth[phantom.name] = phantom
    assert import_cases(src, dataset=dataset).ok
    return truth
