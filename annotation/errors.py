"""The domain's refusals, and the one place that turns them into HTTP answers.

Services raise these (never a bare ``ValueError`` for a client's mistake); the DRF exception handler below maps each
kind to its status, so that a bug (any other exception) stays a 500 and a refusal is always a 4xx with a message.
Management commands catch ``DomainError`` and print it.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.core.management.base import CommandError
from rest_framework import status
from rest_framework.response import Response


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


def exception_handler(exc, context):
    """DRF's handler, plus the domain's refusals as their status with ``{"detail", "field"?, ...}``."""
    # imported here: rest_framework.views reads the API settings, whose parser (annotation.api.parsing) imports this
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DomainError):
        return Response(exc.body(), status=exc.status_code)
    return drf_exception_handler(exc, context)
