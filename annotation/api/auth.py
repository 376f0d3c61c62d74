"""Signing in and out: API tokens (hashed, expiring, revocable: django-rest-knox) and the browser's session.

Both sign-in endpoints go through one gate before any password is hashed:

- failed sign-ins are counted per client IP and per username, in a window that the first failure opens; past the
  limit the request is refused with 429 and Retry-After, the right password included (``ATLAS_SIGNIN_FAILURES_PER_IP``,
  ``ATLAS_SIGNIN_FAILURES_PER_USER``, ``ATLAS_SIGNIN_WINDOW_SECONDS``);
- at most ``ATLAS_SIGNIN_CONCURRENCY`` passwords are hashed at once (per cache: every process sharing a Redis cache,
  else per process); one more is refused at once with 429 and ``Retry-After: 1``, so that anonymous clients
  cannot spend every core on password hashing while signed-in users wait.

The counters live in Django's cache (``ATLAS_CACHE_URL``: Redis to share them between processes).
"""

from __future__ import annotations

import hashlib
import time
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import authenticate, logout
from django.core.cache import cache
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.serializers import TokenRequestSerializer
from annotation.errors import Invalid

_INFLIGHT = "atlas:signin:inflight"


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or the first X-Forwarded-For hop behind a trusted proxy."""
    if settings.ATLAS_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64]


def _span() -> int:
    return max(1, int(settings.ATLAS_SIGNIN_WINDOW_SECONDS))


def _digest(username: str) -> str:
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def _failure_keys(ip: str, username: str) -> list[tuple[str, int]]:
    """The counters a failed sign-in adds to, with their limits: one per client IP, one per username."""
    return [(f"atlas:signin:fail:ip:{ip}", settings.ATLAS_SIGNIN_FAILURES_PER_IP),
            (f"atlas:signin:fail:user:{_digest(username)}", settings.ATLAS_SIGNIN_FAILURES_PER_USER)]


def _retry_after(key: str) -> int:
    """Seconds until the window of key (opened by its first failure) closes."""
    opened = cache.get(f"{key}:opened") or time.time()
    return max(1, int(_span() - (time.time() - opened)) + 1)


def _count_failure(key: str) -> None:
    """One more failure in key's window; the first failure opens a window of ATLAS_SIGNIN_WINDOW_SECONDS."""
    span = _span()
    if cache.add(f"{key}:opened", time.time(), timeout=span):
        cache.set(key, 0, timeout=span)
    try:
        cache.incr(key)
    except ValueError:  # the window closed in between
        cache.add(key, 1, timeout=span)


def _refuse(message: str, wait: int):
    exc = Throttled(wait=wait, detail=f"{message}; try again in {wait} s")
    raise exc


@contextmanager
def _hashing_slot():
    """Hold one of the ATLAS_SIGNIN_CONCURRENCY slots for hashing a password, or refuse with 429 at once."""
    cache.add(_INFLIGHT, 0, timeout=60)  # expires, so that a crashed process cannot hold a slot for ever
    try:
        held = cache.incr(_INFLIGHT)
    except ValueError:  # expired between add and incr
        cache.add(_INFLIGHT, 1, timeout=60)
        held = 1
    try:
        if held > settings.ATLAS_SIGNIN_CONCURRENCY:
            _refuse("too many sign-ins at once", 1)
        yield
    finally:
        try:
            cache.decr(_INFLIGHT)
        except ValueError:
            pass


def sign_in(request):
    """The user named by the body {username, password}, through the gate; Invalid (400) when they do not match."""
    body = TokenRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    username, password = body.validated_data["username"], body.validated_data["password"]
    keys = _failure_keys(client_ip(request), username)
    for key, limit in keys:
        if (cache.get(key) or 0) >= limit:
            _refuse("too many failed sign-ins", _retry_after(key))
    with _hashing_slot():
        user = authenticate(request, username=username, password=password)
    if user is None:
        for key, _limit in keys:
            _count_failure(key)
        raise Invalid("username or password is wrong")
    return user


class TokenLogin(APIView):
    """Exchange a username and password for an API token (it expires after ATLAS_TOKEN_TTL_HOURS)."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=TokenRequestSerializer, responses=inline_serializer(
        "Token", {"token": serializers.CharField(), "expiry": serializers.DateTimeField(allow_null=True)}))
    def post(self, request):
        user = sign_in(request)
        instance, token = AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])
        return Response({"token": token, "expiry": instance.expiry})


class SignOut(APIView):
    """Sign out: the token this request carries is deleted, the session (if any) ended."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        if isinstance(request.auth, AuthToken):
            request.auth.delete()
        logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SignOutEverywhere(APIView):
    """Delete every API token of the signed-in user and end this session."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        revoke_tokens(request.user)
        logout(request)
        return Response(status=status.HTTP_204_NO_CONTENT)


def revoke_tokens(user) -> int:
    """Delete every API token of user; returns how many."""
    deleted, _ = AuthToken.objects.filter(user=user).delete()
    return deleted
