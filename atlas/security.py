"""HTTP hardening that wraps every response, the app page and static files included.

- Content-Security-Policy (ATLAS_CSP), X-Frame-Options DENY, nosniff and Referrer-Policy on every response:
  this middleware sits above WhiteNoise, whose responses never reach Django's own header middlewares.
- A locked SQLite database (another process holds the write lock past ATLAS_SQLITE_BUSY_TIMEOUT) answers 503 with
  Retry-After instead of a 500.
- API list pages are capped at MAX_PAGE_SIZE items whatever ?limit= asks.
"""

from __future__ import annotations

from django.conf import settings
from django.db import OperationalError
from django.http import JsonResponse
from rest_framework.pagination import LimitOffsetPagination

MAX_PAGE_SIZE = 1000
LOCKED_RETRY_AFTER_S = 2


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            response = self.get_response(request)
        except OperationalError as exc:  # raised past Django's handler only where DEBUG_PROPAGATE_EXCEPTIONS
            response = self.process_exception(request, exc)
            if response is None:
                raise
        return self._headers(response)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError) and "locked" in str(exception).lower():
            response = JsonResponse({"detail": "the database is busy with another write; try again shortly"},
                                    status=503)
            response["Retry-After"] = str(LOCKED_RETRY_AFTER_S)
            return self._headers(response)
        return None

    @staticmethod
    def _headers(response):
        if settings.ATLAS_CSP:
            response.headers.setdefault("Content-Security-Policy", settings.ATLAS_CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_PAGE_SIZE
