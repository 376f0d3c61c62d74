"""Signing in and out: API tokens (hashed, expiring, revocable: django-rest-knox) and the browser's session.

The sign-in endpoints here and MONAI Label's go through ``sign_in``: the password is checked by ``authenticate()``,
so by the one sign-in gate (annotation.signin: failure limits, a cap on concurrent hashing), whose refusal becomes
429 with Retry-After.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate, logout
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.exceptions import Throttled
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.serializers import TokenRequestSerializer
from annotation.errors import Invalid
from annotation.signin import SignInRefused


class SignInThrottled(Throttled):
    """The gate's refusal as DRF's 429: ``{"detail": "<reason>; try again in N s"}`` and Retry-After."""

    def __init__(self, refused: SignInRefused):
        super().__init__(wait=refused.wait, detail=str(refused))


def sign_in(request):
    """The user named by the body {username, password}, through the gate; Invalid (400) when they do not match."""
    body = TokenRequestSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    try:
        user = authenticate(request, username=body.validated_data["username"],
                            password=body.validated_data["password"])
    except SignInRefused as refused:
        raise SignInThrottled(refused) from refused
    if user is None:
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
