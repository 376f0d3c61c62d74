"""The progress bars of the management commands: cases worked through, and a round's steps (start_round --wait)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

from annotation.models import Job, Round

CaseProgress = Callable[[int, int, str], None]
RoundProgress = Callable[[str, Iterable[tuple[str, str, float]]], None]

# A round's steps in order, each a third of its bar, and the jobs that make up each.
ROUND_STEPS = ((Round.Status.TRAINING, (Job.Kind.TRAIN,)), (Round.Status.INFERRING, (Job.Kind.INFER, Job.Kind.ATTEND)),
               (Round.Status.RANKING, (Job.Kind.RANK,)))


@contextmanager
def case_progress(desc: str, *, verbosity: int) -> Iterator[CaseProgress]:
    """A tqdm bar of cases (none at verbosity 0); yields the progress(done, total, case name) the services call."""
    with tqdm(unit="case", desc=desc, disable=verbosity == 0) as bar:
        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.set_postfix_str(name, refresh=False)
            bar.update(done - bar.n)

        yield progress


def round_fraction(status: str, jobs: Iterable[tuple[str, str, float]]) -> float | None:
    """How far a round is through its steps (training, inferring, ranking), from its status and its jobs' (kind,
    status, progress): each step is a third; the steps before the round's own count whole, its own step the mean of
    its jobs (a succeeded job whole, another its reported progress), the later ones nothing. 1.0 once annotating or
    closed; None once failed or cancelled (the bar stays where it was). A step's jobs appear when it starts, and an
    infer job adds its case's attend job as it ends, so only the step, never the count of jobs so far, moves the bar
    between steps."""
    if status in (Round.Status.ANNOTATING, Round.Status.CLOSED):
        return 1.0
    order = [step for step, _kinds in ROUND_STEPS]
    if status not in order:
        return None
    index = order.index(status)
    kinds = ROUND_STEPS[index][1]
    mine = [1.0 if s == Job.Status.SUCCEEDED else min(1.0, max(0.0, p)) for k, s, p in jobs if k in kinds]
    within = sum(mine) / len(mine) if mine else 0.0
    return (index + within) / len(ROUND_STEPS)


@contextmanager
def round_progress(desc: str, *, verbosity: int) -> Iterator[RoundProgress]:
    """One bar of 100% over a round's steps (none at verbosity 0), its step as the postfix; yields the
    progress(round status, jobs' (kind, status, progress)) the command calls as it polls. The bar never goes back
    (within the inferring step attend jobs join as infer jobs end)."""
    with tqdm(total=100, unit="%", desc=desc, disable=verbosity == 0) as bar:
        def progress(status: str, jobs: Iterable[tuple[str, str, float]]) -> None:
            fraction = round_fraction(status, jobs)
            bar.set_postfix_str(status, refresh=False)
            if fraction is not None:
                bar.n = max(bar.n, int(100 * fraction))
            bar.refresh()  # once a poll (a second): every step shows

        yield progress
