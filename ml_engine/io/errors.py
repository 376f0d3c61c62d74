"""The errors of ml_engine.io: a file that cannot be used, named with its problem in one line."""

from __future__ import annotations

import os


class FileProblem(ValueError):
    """A file that cannot be used. str() names the file and the problem in one line."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ImageError(FileProblem):
    """A file that cannot be used as a volume. str() names the file and the problem in one line."""


class CheckpointError(FileProblem):
    """A checkpoint file that cannot be used. str() names the file and the problem in one line."""


def short_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__
