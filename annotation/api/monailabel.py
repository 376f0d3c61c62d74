"""MONAI Label-compatible endpoints under /monailabel/: point 3D Slicer's MONAI Label module (or OHIF, or
`monailabel.client.MONAILabelClient`) at http://HOST:PORT/monailabel. Thin: annotation.services.monailabel decides.

Paths, methods and encodings are the protocol's: `GET /info/`, `POST /activelearning/{strategy}` (JSON body),
`GET /datastore/image?image=ID`, `POST /infer/{model}?image=ID` (multipart in, multipart out: `params` + the label
file), `PUT /datastore/label?image=ID&tag=final` (multipart: `params` JSON with `label_info`, `label` file),
`GET /auth/`, `POST /auth/token` (form: username, password), `GET /auth/token/valid`. Signed-in calls carry
`Authorization: Bearer <token>` (an Atlas API token). Anything else answers 404 with what Atlas offers instead.
"""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import HttpResponse
from django.urls import re_path
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import intake
from annotation.api.auth import sign_in
from annotation.api.files import storage_file_response
from annotation.api.intake import upload_door
from annotation.api.parsing import BoundedJSONParser, loads
from annotation.api.permissions import HasRole
from annotation.errors import Invalid
from annotation.roles import role_of
from annotation.services import monailabel
from annotation.storage import scratch_dir


class BearerTokenAuthentication(TokenAuthentication):
    """Atlas's API tokens (knox) sent as MONAI Label clients send them: `Authorization: Bearer <token>`."""

    def authenticate_header(self, request):
        return "Bearer"


class _Protocol(APIView):
    """Bearer tokens (or Atlas's `Token` header); no session, so no CSRF on the client's PUTs; not in the OpenAPI
    schema of Atlas's own API."""

    authentication_classes = [BearerTokenAuthentication, TokenAuthentication]
    permission_classes = [HasRole]
    schema = None


class AuthEnabled(_Protocol):
    permission_classes = [AllowAny]
    authentication_classes = []

    def get(self, request):
        return Response({"enabled": True, "client_id": "atlas", "realm": ""})


class OAuthTokenLogin(_Protocol):
    """OAuth2's password form (username, password, grant_type) -> an Atlas API token, as a bearer token."""

    permission_classes = [AllowAny]
    authentication_classes = []
    parser_classes = [FormParser, MultiPartParser, BoundedJSONParser]

    def post(self, request):
        user = sign_in(request)
        instance, token = AuthToken.objects.create(user=user, expiry=settings.REST_KNOX["TOKEN_TTL"])
        return Response({"access_token": token, "token_type": "bearer",
                         "expires_in": int(settings.REST_KNOX["TOKEN_TTL"].total_seconds())})


class AuthTokenValid(_Protocol):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        user = request.user
        return Response({"username": user.username, "email": user.email, "name": user.get_full_name(),
                         "roles": [role_of(user)]})


class Info(_Protocol):
    def get(self, request):
        return Response(monailabel.info(request.user))


class ActiveLearning(_Protocol):
    parser_classes = [BoundedJSONParser, FormParser]

    def post(self, request, strategy: str):
        return Response(monailabel.next_sample(user=request.user, strategy=strategy))


class DatastoreImage(_Protocol):
    """The CT for an image id. Slicer sends no auth header here: the id itself is the (short-lived) permission."""

    permission_classes = [AllowAny]

    def get(self, request):
        name = monailabel.image_for_download(request.query_params.get("image", ""), request.user)
        return storage_file_response(request, name, filename="image.nii.gz")


def _params(request) -> dict:
    raw = request.data.get("params") if hasattr(request.data, "get") else None
    if raw in (None, ""):
        return {}
    if hasattr(raw, "read"):  # sent as a file part
        raw = raw.read(1 << 20)
    value = loads(raw, field="params") if isinstance(raw, str | bytes) else raw
    if not isinstance(value, dict):
        raise Invalid("expected a JSON object", field="params")
    return value


def _multipart(params: dict, file_name: str, content: bytes) -> HttpResponse:
    """A multipart/form-data answer as MONAI Label's infer gives it: `params` (JSON) and the label file."""
    boundary = secrets.token_hex(16)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\nContent-Type: application/json\r\n\r\n"
            f"{json.dumps(params)}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            f"filename=\"{file_name}\"\r\nContent-Type: application/gzip\r\n\r\n").encode()
    body = head + content + f"\r\n--{boundary}--\r\n".encode()
    return HttpResponse(body, content_type=f"multipart/form-data; boundary={boundary}")


class Infer(_Protocol):
    """`atlas`: the label to correct for an image id (no model runs); `atlas_click`: that label with the current
    organ refined by the click model at Slicer's points. Multipart `params` + `image` (the label, NIfTI)."""

    parser_classes = [MultiPartParser, FormParser, BoundedJSONParser]

    def post(self, request, model: str):
        if model == monailabel.CLICK_MODEL:
            with scratch_dir("click") as tmp:
                path, params = monailabel.click_label(image_id=request.query_params.get("image", ""),
                                                      user=request.user, params=_params(request), workdir=tmp)
                return _multipart(params, "label.nii.gz", path.read_bytes())
        label = monailabel.label_to_correct(image_id=request.query_params.get("image", ""), user=request.user,
                                            model=model)
        params = {"label_names": label.label_names, "source": label.source, "base_revision": label.base_revision}
        if request.query_params.get("output") == "json":
            return Response(params)
        with default_storage.open(label.storage_name, "rb") as handle:
            content = handle.read()
        return _multipart(params, "label.nii.gz", content)


@upload_door("label")
class DatastoreLabel(_Protocol):
    """Save the corrected label (multipart: `params` with `label_info`, `label` file, NIfTI or NRRD)."""

    parser_classes = [MultiPartParser, FormParser]

    def put(self, request):
        image_id = request.query_params.get("image", "")
        capability = None

        def authorize():
            nonlocal capability
            capability = monailabel.open_for_upload(image_id=image_id, user=request.user,
                                                    tag=request.query_params.get("tag", ""))

        with intake.receive(request, field="label", suffixes=monailabel.UPLOAD_SUFFIXES, authorize=authorize) as path:
            revision = monailabel.save_label(capability=capability, user=request.user, upload=path,
                                             label_info=_params(request).get("label_info"), workdir=path.parent)
        return Response({"image": image_id, "label": f"revision {revision.number}",
                         "revision": revision.pk, "number": revision.number, "case": revision.case.name})


class Unsupported(APIView):
    """Every other path of the protocol: a 404 that says what Atlas does instead (for any method)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    schema = None

    def _answer(self, request, rest: str = ""):
        return Response({"detail": f"Atlas does not offer {request.method} /monailabel/{rest} of the MONAI Label "
                                   f"protocol. Atlas offers /info/, /activelearning/{monailabel.STRATEGY}, "
                                   f"/datastore/image, /infer/{monailabel.MODEL}, PUT /datastore/label and /auth/; "
                                   f"training runs in Atlas's rounds, images come in by import_cases."},
                        status=status.HTTP_404_NOT_FOUND)

    get = post = put = delete = patch = head = _answer


urlpatterns = [  # the client's own spellings: some paths end in a slash, some do not; both are accepted
    re_path(r"^auth/?$", AuthEnabled.as_view(), name="monailabel-auth"),
    re_path(r"^auth/token/?$", OAuthTokenLogin.as_view(), name="monailabel-token"),
    re_path(r"^auth/token/valid/?$", AuthTokenValid.as_view(), name="monailabel-token-valid"),
    re_path(r"^info/?$", Info.as_view(), name="monailabel-info"),
    re_path(r"^activelearning/(?P<strategy>[^/]+)/?$", ActiveLearning.as_view(), name="monailabel-next"),
    re_path(r"^datastore/image/?$", DatastoreImage.as_view(), name="monailabel-image"),
    re_path(r"^infer/(?P<model>[^/]+)/?$", Infer.as_view(), name="monailabel-infer"),
    re_path(r"^datastore/label/?$", DatastoreLabel.as_view(), name="monailabel-label"),
    re_path(r"^(?P<rest>.*)$", Unsupported.as_view(), name="monailabel-unsupported"),
]
