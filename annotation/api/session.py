"""The browser's session authentication, with the CSRF token read from its header only.

DRF's SessionAuthentication checks CSRF through Django's middleware logic, which first looks for the token in the
body of a POST (`csrfmiddlewaretoken`) and so parses the body, a whole multipart upload included, while the request is
still being authenticated: before the view could check who may send it. Atlas's page always sends the token in the
`X-CSRFToken` header; here the check is made on the header alone, and the body is left unread until the view asks
for it (annotation.api.intake).
"""

from __future__ import annotations

from django.conf import settings
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.authentication import CSRFCheck


class SessionAuthentication(authentication.SessionAuthentication):
    def enforce_csrf(self, request):
        django_request = request._request
        unread = not hasattr(django_request, "_post")
        if unread:  # an empty form stands in for the body while the check runs: the token must be in the header
            django_request._post, django_request._files = QueryDict(), MultiValueDict()
        try:
            check = CSRFCheck(lambda _request: None)
            check.process_request(django_request)
            reason = check.process_view(django_request, None, (), {})
        finally:
            if unread:
                del django_request._post, django_request._files
        if reason:
            raise exceptions.PermissionDenied(f"CSRF Failed: {reason}")


class SessionScheme(OpenApiAuthenticationExtension):
    """In the OpenAPI schema, the same cookie scheme as DRF's own session authentication."""

    target_class = "annotation.api.session.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
