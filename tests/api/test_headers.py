"""Headers (issue 14, item 3): X-Frame-Options and a real CSP on every response, the app page and static files
included; secure cookies, HSTS and the proxy SSL header from the environment; the API docs load local assets."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.test import Client

from tests.conftest import REPO

pytestmark = pytest.mark.django_db


def _assert_hardened(response):
    assert response["X-Frame-Options"] == "DENY"
    csp = response["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert "'unsafe-inline'" not in directives["script-src"] and "*" not in csp
    assert directives["object-src"] == "'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("url", ["/", "/index.html", "/build-stamp.json", "/api/me/", "/api/cases/", "/api/docs/",
                                 "/admin/login/", "/no/such/page"])
def test_every_response_carries_the_frame_and_csp_headers(url):
    _assert_hardened(Client().get(url))  # before: "/" (WhiteNoise) had neither


def test_the_bundle_and_its_assets_are_covered():
    client = Client()
    index = b"".join(client.get("/").streaming_content).decode()
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', index)
    assert assets, index
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200
        _assert_hardened(response)


def test_the_api_docs_load_pinned_local_assets_and_no_inline_script():
    page = Client().get("/api/docs/")
    html = page.content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources and all(not s.startswith(("http:", "https:", "//")) for s in sources), sources
    assert any("swagger-ui-dist" in s and s.startswith("/static/") for s in sources), sources
    assert not re.search(r"<script>\s*\S", html)  # the init script is a separate request (the CSP forbids inline)
    init = Client().get("/api/docs/?script=")
    assert init.status_code == 200 and "SwaggerUIBundle" in init.content.decode()


def _settings_in_env(**env) -> dict:
    code = ("import json, django; from django.conf import settings; django.setup(); print(json.dumps({k: "
            "getattr(settings, k, None) for k in ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
            "'SECURE_HSTS_SECONDS', 'SECURE_PROXY_SSL_HEADER', 'SECURE_SSL_REDIRECT']}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "atlas.settings", **env})
    assert result.returncode == 0, result.stderr
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def test_secure_cookies_hsts_and_the_proxy_header_switch_on_from_the_environment():
    off = _settings_in_env()
    assert off["SESSION_COOKIE_SECURE"] is False and off["SECURE_HSTS_SECONDS"] == 0
    assert off["SECURE_PROXY_SSL_HEADER"] is None
    on = _settings_in_env(ATLAS_SECURE_COOKIES="1", ATLAS_HSTS_SECONDS="31536000", ATLAS_BEHIND_HTTPS_PROXY="1")
    assert on["SESSION_COOKIE_SECURE"] is True and on["CSRF_COOKIE_SECURE"] is True
    assert on["SECURE_HSTS_SECONDS"] == 31536000
    assert on["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_hsts_is_sent_over_https_behind_the_proxy(settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = Client().get("/api/me/", HTTP_X_FORWARDED_PROTO="https")
    assert response["Strict-Transport-Security"].startswith("max-age=3600")
