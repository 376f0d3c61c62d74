"""The first read endpoints and the admin list of cases."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from annotation.services.imports import import_cases
from annotation.services.users import create_user
from tests.conftest import affine_for, make_ct, make_labels, save_nifti

pytestmark = pytest.mark.django_db


@pytest.fixture
def imported(tmp_path):
    src = save_nifti(tmp_path / "p1.nii.gz", make_ct(), affine_for())
    lab = save_nifti(tmp_path / "p1_seg.nii.gz", make_labels(values=(5, 9)), affine_for())
    assert import_cases(src, dataset="api", labels=lab).ok


def test_anonymous_gets_no_data(client, imported):
    api = APIClient()
    for url in ("/api/label-sets/", "/api/cases/"):
        response = api.get(url)
        assert response.status_code in (401, 403)
        assert "results" not in response.json()


def test_label_sets_and_cases(imported):
    api = APIClient()
    api.force_authenticate(create_user(username="reader", role="lead", password="x"))
    sets = {s["name"]: s for s in api.get("/api/label-sets/").json()}
    assert [o["name"] for o in sets["abdomenatlas"]["organs"]] == [
        "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "aorta", "postcava", "pancreas"]
    assert all(o["color"].startswith("#") and len(o["color"]) == 7 for o in sets["word"]["organs"])
    cases = api.get("/api/cases/").json()
    assert cases["count"] == 1
    case = cases["results"][0]
    assert case["name"] == "p1" and case["dataset"] == "api" and case["shape"] == [24, 20, 12]
    assert case["labelled_organs"] == ["liver", "pancreas"]
    detail = api.get(f"/api/cases/{case['id']}/").json()
    assert detail["spacing"] == pytest.approx([1.5, 1.5, 2.5]) and len(detail["affine"]) == 4


def test_admin_lists_cases(client, imported):
    User.objects.create_superuser("root", password="pw-for-test")
    client.login(username="root", password="pw-for-test")
    page = client.get("/admin/annotation/case/")
    assert page.status_code == 200
    assert b"p1" in page.content and b"api" in page.content


def test_schema_is_served(imported):
    api = APIClient()
    api.force_authenticate(User.objects.create_user("reader", password="x"))
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/cases/{id}/" in response.json()["paths"]
