"""The domain's refusals, and the one place that turns them into HTTP answers.

Services raise these (never a bare ``ValueError`` for a client's mistake); the DRF exception handler below maps each
kind to its status, so that a bug (any other exception) stays a 500 and a refusal is always a 4xx with a message.
A 404 of Django or DRF (``get_object_or_404``) answers in the same shape as a domain NotFound. The engine's refusals
of an input (a file it cannot use, a label map, a member) become domain errors in one place: ``engine_refusals``.
Management commands catch ``DomainError`` and print it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from ml_engine.io.errors import FileProblem
from ml_engine.labels import LabelMapError
from ml_engine.members.common import MemberError


class DomainError(Exception):
    """A request the domain refuses. ``field`` names the input at fault; ``extra`` goes into the JSON answer."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, field: str | None = None, **extra):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_option(self) -> str:
        """The message as a management command says it: the field as its option (label_set -> --label-set)."""
        return f"--{self.field.replace('_', '-')}: {self.message}" if self.field else self.message

    def body(self) -> dict:
        """{"detail": the message, "field": its name, FIELD: [message]} (the last as DRF's field errors), extras."""
        named = {"field": self.field, self.field: [self.message]} if self.field else {}
        return {"detail": str(self), **named, **self.extra}


class Invalid(DomainError):
    """The input is wrong (400)."""


class Forbidden(DomainError):
    """The user may not do this (403)."""

    status_code = status.HTTP_403_FORBIDDEN


class NotFound(DomainError):
    """What the request names does not exist (404)."""

    status_code = status.HTTP_404_NOT_FOUND


class TooLarge(DomainError):
    """The request's body is larger than its door allows (413)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class Busy(DomainError):
    """A shared resource (the interactive engine) stayed taken for the whole wait (503); the answer says how long it
    waited and how many requests were running."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class Conflict(DomainError):
    """The request is valid but the state has moved on (409): a stale base, a round already running."""

    status_code = status.HTTP_409_CONFLICT


@contextmanager
def command_errors():
    """In a management command: a refusal becomes a CommandError (one line on stderr, exit 1)."""
    try:
        yield
    except DomainError as exc:
        raise CommandError(exc.as_option()) from exc


@contextmanager
def engine_refusals(*, field: str | None = None, refusal: type[DomainError] = Invalid,
                    upload: str | os.PathLike | None = None) -> Iterator[None]:
    """Within the block, the engine's refusal of an input becomes ``refusal`` naming ``field``: a file it cannot use
    (ml_engine.io's FileProblem: ImageError, CheckpointError), a label map's (LabelMapError), a member's (MemberError).

    A file problem's message is the problem alone when a field names the input (a client's upload, whose name on
    this server means nothing to them; ``upload``, that name, is said as "the upload" where the problem repeats it),
    else the file and the problem (an admin's own file). Every other exception passes through.
    """
    try:
        yield
    except FileProblem as exc:
        message = str(exc) if field is None else exc.problem
        if upload is not None:
            message = message.replace(str(upload), "the upload")
        raise refusal(message, field=field) from exc
    except (LabelMapError, MemberError) as exc:
        raise refusal(str(exc), field=field) from exc


_DJANGO_404 = re.compile(r"No \w+ matches the given query\.")


def _not_found(exc: Http404 | exceptions.NotFound) -> NotFound:
    """A 404 of Django or DRF as a domain NotFound: its own message if it gave one, else "not found" (Django's
    "No Task matches the given query." names a model, not what the client asked for)."""
    message = str(exc.detail) if isinstance(exc, exceptions.NotFound) else str(exc.args[0]) if exc.args else ""
    if not message or _DJANGO_404.fullmatch(message) or message == str(exceptions.NotFound.default_detail):
        message = "not found"
    return NotFound(message)


def exception_handler(exc, context):
    """DRF's handler, plus the domain's refusals as their status with ``{"detail", "field"?, ...}``; a 404 of Django or
    DRF in that shape too."""
    # imported here: rest_framework.views reads the API settings, whose parser (annotation.api.parsing) imports this
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, (Http404, exceptions.NotFound)):
        exc = _not_found(exc)
    if isinstance(exc, DomainError):
        return Response(exc.body(), status=exc.status_code)
    return drf_exception_handler(exc, context)
