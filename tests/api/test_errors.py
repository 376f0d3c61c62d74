"""annotation.errors: one shape for every refusal, 404s of Django and DRF included, and the engine's refusals of an
input translated in one place (engine_refusals)."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework import exceptions

from annotation.errors import Invalid, NotFound, engine_refusals, exception_handler
from annotation.services.revisions import UploadError
from ml_engine.io import CheckpointError, ImageError
from ml_engine.labels import LabelMapError
from ml_engine.members import MemberError


def test_a_404_of_django_or_drf_answers_like_a_domain_not_found(world):
    lead = world.client("lead")
    generic = lead.get("/api/cases/999999/")  # get_object_or_404
    domain = lead.get("/api/review/revisions/999999/")  # the domain's NotFound
    assert (generic.status_code, domain.status_code) == (404, 404)
    assert generic.json() == {"detail": "not found"} and domain.json() == {"detail": "no revision with id 999999"}
    assert generic.json().keys() == domain.json().keys() == NotFound("x").body().keys()


@pytest.mark.parametrize(("exc", "detail"), [
    (Http404("No Task matches the given query."), "not found"),  # names a model, not what was asked for
    (Http404(), "not found"),
    (Http404("no such file"), "no such file"),  # a message of our own stays
    (exceptions.NotFound(), "not found"),
    (exceptions.NotFound("no such page"), "no such page"),
])
def test_the_handler_renders_every_404_in_the_domain_shape(exc, detail):
    response = exception_handler(exc, {})
    assert response.status_code == 404 and response.data == {"detail": detail}


def test_other_drf_errors_are_drf_s():
    response = exception_handler(exceptions.MethodNotAllowed("PUT"), {})
    assert response.status_code == 405 and response.data == {"detail": 'Method "PUT" not allowed.'}


def test_engine_refusals_for_an_upload_say_the_problem_and_the_field(tmp_path):
    upload = tmp_path / "upload-123.nii.gz"
    with pytest.raises(UploadError) as caught, engine_refusals(field="file", refusal=UploadError, upload=upload):
        raise ImageError(upload, f"shape (2, 2) differs from the CT's; {upload} is truncated")
    assert caught.value.body() == {"detail": "file: shape (2, 2) differs from the CT's; the upload is truncated",
                                   "field": "file", "file": ["shape (2, 2) differs from the CT's; the upload is "
                                                             "truncated"]}
    with pytest.raises(Invalid) as caught, engine_refusals(field="label"):
        raise LabelMapError("label values must be integers")
    assert str(caught.value) == "label: label values must be integers" and caught.value.field == "label"


def test_engine_refusals_of_an_admin_s_file_name_it(tmp_path):
    with pytest.raises(Invalid) as caught, engine_refusals():
        raise CheckpointError(tmp_path / "model.pt", "not a checkpoint")
    assert str(caught.value) == f"{tmp_path / 'model.pt'}: not a checkpoint" and caught.value.field is None
    with pytest.raises(Invalid, match="^nnunet: no folds$"), engine_refusals():
        raise MemberError("nnunet: no folds")


def test_engine_refusals_let_everything_else_through():
    with pytest.raises(KeyError), engine_refusals(field="file"):
        raise KeyError("a bug stays a bug (500)")
    with pytest.raises(NotFound), engine_refusals(field="file"):
        raise NotFound("a domain error passes unchanged")
