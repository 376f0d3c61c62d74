"""The browser workspace's extra endpoints: who am I, session sign-in / -out, error tags, a case's label set."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.api.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_me_anonymous_sets_the_csrf_cookie():
    client = APIClient()
    response = client.get("/api/me/")
    assert response.status_code == 200
    assert response.json() == {"authenticated": False, "username": "", "role": None}
    assert "csrftoken" in response.cookies


def test_session_login_needs_csrf_and_gives_a_session(world):
    client = APIClient(enforce_csrf_checks=True)
    assert client.post("/api/auth/login/", {"username": "a1", "password": PASSWORD}, format="json").status_code == 403
    token = client.get("/api/me/").cookies["csrftoken"].value
    wrong = client.post("/api/auth/login/", {"username": "a1", "password": "nope"}, format="json",
                        HTTP_X_CSRFTOKEN=token)
    assert wrong.status_code == 400 and "wrong" in wrong.json()["detail"]
    ok = client.post("/api/auth/login/", {"username": "a1", "password": PASSWORD}, format="json",
                     HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200 and ok.json() == {"authenticated": True, "username": "a1", "role": "annotator"}
    assert client.get("/api/me/").json()["role"] == "annotator"
    token = client.cookies["csrftoken"].value
    assert client.post("/api/auth/logout/", HTTP_X_CSRFTOKEN=token).status_code == 204
    assert client.get("/api/me/").json()["authenticated"] is False


def test_error_tags_and_label_set(world):
    a1 = world.client("a1")
    tags = a1.get("/api/error-tags/").json()
    assert tags and {"code", "name", "description"} <= set(tags[0])
    assert world.client("nobody").get("/api/error-tags/").status_code == 403
    case = world.task("big").case
    assert a1.get(f"/api/cases/{case.pk}/label-set/").status_code == 404  # not one of a1's cases yet
    a1.post("/api/tasks/next/")
    body = a1.get(f"/api/cases/{case.pk}/label-set/").json()
    assert body["name"] == "abdomenatlas"
    assert {o["name"]: o["value"] for o in body["organs"]}["liver"] == 5
