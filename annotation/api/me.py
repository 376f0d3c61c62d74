"""What the browser workspace needs besides the task API: session sign-in and -out, who am I, the error tags."""

from __future__ import annotations

from django.contrib.auth import login
from django.urls import path
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import auth
from annotation.api.permissions import HasRole
from annotation.api.serializers import TokenRequestSerializer
from annotation.models import ErrorTag
from annotation.roles import ADMIN, ANNOTATOR, LEAD, role_of

_Me = inline_serializer("Me", {"authenticated": serializers.BooleanField(), "username": serializers.CharField(),
                               "role": serializers.ChoiceField(choices=[ANNOTATOR, LEAD, ADMIN], allow_null=True,
                                                               help_text="the strongest role; null: signed out")})


def me_body(user) -> dict:
    if not user.is_authenticated:
        return {"authenticated": False, "username": "", "role": None}
    return {"authenticated": True, "username": user.get_username(), "role": role_of(user)}


@method_decorator(ensure_csrf_cookie, name="dispatch")
class Me(APIView):
    """The signed-in user and their role (never 401: the page decides to show the login form); sets csrftoken."""

    permission_classes = [AllowAny]

    @extend_schema(responses=_Me)
    def get(self, request):
        return Response(me_body(request.user))


@method_decorator(csrf_protect, name="dispatch")
class SessionLogin(APIView):
    """Sign in with a session cookie (the browser's way; scripts use /api/auth/token/). Needs X-CSRFToken.

    The same gate as the token sign-in: 429 with Retry-After past the failure limits or when too many run at once.
    """

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(request=TokenRequestSerializer, responses={200: _Me, 400: None, 429: None})
    def post(self, request):
        user = auth.sign_in(request)
        login(request, user)
        return Response(me_body(user))


class ErrorTagSerializer(serializers.ModelSerializer):
    class Meta:
        model = ErrorTag
        fields = ["code", "name", "description"]
        read_only_fields = fields


class ErrorTagList(APIView):
    """The error taxonomy an annotator tags organs with when submitting a revision."""

    permission_classes = [HasRole]

    @extend_schema(responses=ErrorTagSerializer(many=True))
    def get(self, request):
        return Response(ErrorTagSerializer(ErrorTag.objects.all(), many=True).data)


urlpatterns = [
    path("me/", Me.as_view(), name="me"),
    path("auth/login/", SessionLogin.as_view(), name="session-login"),
    path("auth/logout/", auth.SignOut.as_view(), name="session-logout"),
    path("auth/logout-all/", auth.SignOutEverywhere.as_view(), name="logout-all"),
    path("error-tags/", ErrorTagList.as_view(), name="error-tag-list"),
]
