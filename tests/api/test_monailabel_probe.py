"""Nothing a MONAI Label client sends to /monailabel/ gets a 5xx (Hypothesis): image ids, strategies, models, params,
label_info of any shape, tags, files and paths. The test client re-raises a view's exception, so a server error shows
up as that exception with its traceback."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from annotation.models import Revision
from tests.api.test_no_server_errors import json_values
from tests.api.test_workflow import nifti_bytes

pytestmark = pytest.mark.django_db

texts = st.text(max_size=60)
label_info = st.one_of(json_values, st.lists(st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["liver", "Spleen", "inferior vena cava", "tumour", ""]), json_values),
     "idx": st.one_of(st.integers(min_value=-3, max_value=300), st.integers(min_value=2**62, max_value=2**80),
                      json_values)}), max_size=4))


def _answer(response, what):
    assert response.status_code < 500, (what, response.status_code)
    return response


@hsettings(max_examples=40, deadline=None, derandomize=True,
           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(image=st.one_of(texts, st.just("")), strategy=texts, model=texts, path=texts, info=label_info,
       params=st.one_of(texts, json_values.map(json.dumps)), tag=texts, name=st.sampled_from(
           ["label.nii.gz", "label.nrrd", "label.seg.nrrd", "x.txt", "", "label.nii"]))
def test_the_protocol_never_answers_5xx(world, image, strategy, model, path, info, params, tag, name):
    api = world.client("a1")
    sample = _answer(api.post("/monailabel/activelearning/attention", {}, format="json"), "next").json()
    real = sample.get("id", "")
    _answer(api.post(f"/monailabel/activelearning/{strategy or 'x'}", {}, format="json"), "strategy")
    for image_id in (image, real):
        _answer(api.get("/monailabel/datastore/image", {"image": image_id}), "image")
        _answer(world.client(None).get("/monailabel/datastore/image", {"image": image_id}), "anonymous image")
        _answer(api.post(f"/monailabel/infer/{model or 'atlas'}?image={image_id}", {"params": params},
                         format="multipart"), "infer")
        # a file on the wrong grid, so that the lease stays for the next example; then label_info alone varies
        wrong = io.BytesIO(nifti_bytes(world.pseudo[:, :, :4]) if name.endswith(".nii.gz") else b"NRRD0004\n")
        wrong.name = name
        _answer(api.put(f"/monailabel/datastore/label?image={image_id}&tag={tag}",
                        {"params": json.dumps({"label_info": info}), "label": wrong}, format="multipart"), "save")
        bad = io.BytesIO(nifti_bytes(np.zeros_like(world.pseudo)[:, :, :3]))
        bad.name = "label.nii.gz"
        _answer(api.put(f"/monailabel/datastore/label?image={image_id}", {"params": params, "label": bad},
                        format="multipart"), "params")
    for method in ("get", "post", "put", "delete"):
        _answer(getattr(api, method)(f"/monailabel/{path}"), "path")
    _answer(world.client(None).post("/monailabel/auth/token", {"username": path, "password": tag}), "token")
    cache.clear()  # the sign-in failures it counted (per client IP) would refuse later tests' sign-ins
    assert not Revision.objects.exists()
