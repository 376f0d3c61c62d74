"""The one sign-in gate. Every door that checks a password goes through it, because it sits below the doors: it is the
authentication backend (settings.AUTHENTICATION_BACKENDS), so Django's ``authenticate()`` cannot pass a password to
anything else. The doors: the API's token and session sign-ins and MONAI Label's ``/monailabel/auth/token``
(annotation.api.auth.sign_in) and Django's admin at ``/admin/login/`` (its form calls ``authenticate()`` itself).

Before a password is hashed:

- failed sign-ins are counted per client IP and per username, in a window that the first failure opens; past the
  limit the sign-in is refused, the right password included (``ATLAS_SIGNIN_FAILURES_PER_IP``,
  ``ATLAS_SIGNIN_FAILURES_PER_USER``, ``ATLAS_SIGNIN_WINDOW_SECONDS``);
- at most ``ATLAS_SIGNIN_CONCURRENCY`` passwords are hashed at once; one more is refused at once with a wait of 1 s,
  so that anonymous clients cannot spend every core on password hashing while signed-in users wait.

A refusal is ``SignInRefused`` (deliberately not ``PermissionDenied``, which ``authenticate()`` would swallow into a
plain "wrong password"). The doors turn it into 429 with Retry-After: the DRF views through ``Throttled``
(annotation.api.auth), every other view (the admin) through ``SignInRefusedMiddleware``.

Without a request (``authenticate()`` called by a management command or a test client's ``login()``) or without a
client address, only the username's counter applies: there is no IP to count against.

The counters live in Django's default cache, which every process shares: the database cache (table ``atlas_cache``,
migration 0017) by default, Redis with ``ATLAS_CACHE_URL``. Both count exactly under races (atlas.cache gives the
database cache an atomic incr); a counter's window is not moved by later failures.
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.http import HttpResponse

INFLIGHT = "atlas:signin:inflight"


class SignInRefused(Exception):
    """The gate refuses this sign-in before any password is hashed: answer 429 with ``Retry-After: wait``."""

    def __init__(self, reason: str, wait: int):
        self.reason = reason
        self.wait = wait
        super().__init__(f"{reason}; try again in {wait} s")


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or the first X-Forwarded-For hop behind a trusted proxy; "" if none."""
    if request is None:
        return ""
    if settings.ATLAS_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return (request.META.get("REMOTE_ADDR") or "")[:64]


def _span() -> int:
    return max(1, int(settings.ATLAS_SIGNIN_WINDOW_SECONDS))


def _failure_keys(ip: str, username: str) -> list[tuple[str, int]]:
    """The counters a failed sign-in adds to, with their limits: one per username, one per client IP if known."""
    digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    keys = [(f"atlas:signin:fail:user:{digest}", settings.ATLAS_SIGNIN_FAILURES_PER_USER)]
    if ip:
        keys.append((f"atlas:signin:fail:ip:{ip}", settings.ATLAS_SIGNIN_FAILURES_PER_IP))
    return keys


def _retry_after(key: str) -> int:
    """Seconds until the window of key (opened by its first failure) closes."""
    opened = cache.get(f"{key}:opened") or time.time()
    return max(1, int(_span() - (time.time() - opened)) + 1)


def _check(keys: list[tuple[str, int]]) -> None:
    counts = cache.get_many([key for key, _limit in keys])
    for key, limit in keys:
        if (counts.get(key) or 0) >= limit:
            raise SignInRefused("too many failed sign-ins", _retry_after(key))


def _count_failure(key: str) -> None:
    """One more failure in key's window; the first failure opens a window of ATLAS_SIGNIN_WINDOW_SECONDS. add() is
    atomic in every cache, so exactly one of racing first failures opens the window and the others add to it."""
    span = _span()
    for _ in range(2):  # a second round only when the window closed between add() and incr()
        if cache.add(key, 1, timeout=span):
            cache.set(f"{key}:opened", time.time(), timeout=span)
            return
        try:
            cache.incr(key)
            return
        except ValueError:
            continue


@contextmanager
def _hashing_slot():
    """Hold one of the ATLAS_SIGNIN_CONCURRENCY slots for hashing a password, or refuse at once."""
    cache.add(INFLIGHT, 0, timeout=60)  # expires, so that a crashed process cannot hold a slot for ever
    try:
        held = cache.incr(INFLIGHT)
    except ValueError:  # expired between add and incr
        cache.add(INFLIGHT, 1, timeout=60)
        held = 1
    try:
        if held > settings.ATLAS_SIGNIN_CONCURRENCY:
            raise SignInRefused("too many sign-ins at once", 1)
        yield
    finally:
        try:
            cache.decr(INFLIGHT)
        except ValueError:
            pass


class GatedModelBackend(ModelBackend):
    """Django's username + password backend behind the gate: the counters are checked before the password is hashed,
    the hashing holds a slot, and a failure is counted. Raises SignInRefused (which ``authenticate()`` lets through)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None  # not a password sign-in: nothing to hash, nothing to count
        keys = _failure_keys(client_ip(request), str(username))
        _check(keys)
        with _hashing_slot():
            user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            for key, _limit in keys:
                _count_failure(key)
        return user


class SignInRefusedMiddleware:
    """A refusal of the gate raised in a view that is not DRF's (Django's admin login) answers 429 with Retry-After
    and a plain-text reason, instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, SignInRefused):
            return None
        response = HttpResponse(f"{exception}\n", status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(exception.wait)
        return response
