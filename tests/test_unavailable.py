"""The one helper through which a test steps aside for something the machine lacks: a skip, or a failure where its
switch is set (.ci/run sets every switch)."""

from __future__ import annotations

import pytest

from tests.conftest import import_or_skip, require_ct_example, unavailable


def test_skips_without_its_switch(monkeypatch):
    monkeypatch.delenv("ATLAS_REQUIRE_X", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no x here"):
        unavailable("no x here", switch="ATLAS_REQUIRE_X")


def test_fails_with_its_switch(monkeypatch):
    monkeypatch.setenv("ATLAS_REQUIRE_X", "1")
    with pytest.raises(pytest.fail.Exception, match=r"required here \(ATLAS_REQUIRE_X=1\) but no x here"):
        unavailable("no x here", switch="ATLAS_REQUIRE_X")


def test_a_missing_module_fails_with_its_switch(monkeypatch):
    monkeypatch.setenv("ATLAS_REQUIRE_X", "1")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_atlas cannot be imported"):
        import_or_skip("no_such_module_atlas", reason="never installed", switch="ATLAS_REQUIRE_X")
    assert import_or_skip("json", reason="", switch="ATLAS_REQUIRE_X").dumps([]) == "[]"


def test_a_missing_shared_file_fails_with_the_shared_data_switch(monkeypatch):
    monkeypatch.setenv("ATLAS_REQUIRE_SHARED_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="no_such_file.nii.gz is absent"):
        require_ct_example("no_such_file.nii.gz")
