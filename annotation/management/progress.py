"""The progress bar of the management commands that work through cases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm

CaseProgress = Callable[[int, int, str], None]


@contextmanager
def case_progress(desc: str, *, verbosity: int) -> Iterator[CaseProgress]:
    """A tqdm bar of cases (none at verbosity 0); yields the progress(done, total, case name) the services call."""
    with tqdm(unit="case", desc=desc, disable=verbosity == 0) as bar:
        def progress(done: int, total: int, name: str) -> None:
            bar.total = total
            bar.set_postfix_str(name, refresh=False)
            bar.update(done - bar.n)

        yield progress
