"""Two imports of the same file at once: one case, one set of files, both runs succeed."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation.models import Case
from annotation.services.imports import import_cases
from tests.conftest import affine_for, at_once, make_ct, make_labels, save_nifti

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_imports_of_one_file(tmp_path, settings):
    src = save_nifti(tmp_path / "same.nii.gz", make_ct(shape=(64, 64, 48)), affine_for())
    lab = save_nifti(tmp_path / "same_seg.nii.gz", make_labels(shape=(64, 64, 48), values=(1, 5)), affine_for())
    import_cases(tmp_path / "nothing-yet.nii.gz", dataset="race")  # creates the dataset up front
    reports = at_once(lambda: import_cases(src, dataset="race", labels=lab), 4)
    assert sorted(len(r.imported) for r in reports) == [0, 0, 0, 1]
    assert all(r.ok for r in reports)
    case = Case.objects.get()
    media = Path(settings.MEDIA_ROOT)
    assert {str(p.relative_to(media)) for p in media.rglob("*") if p.is_file()} == {
        case.ct_file.name, case.source_labels.get().label_file.name}
