"""Radiological display on the real CT of ../shared/data/ct_example (skipped when the folder is absent, failed then
where ATLAS_REQUIRE_SHARED_DATA=1).

The CT is in RAS orientation; TotalSegmentator's liver (label 5 in seg_model_a.nii.gz, as in our label set) lies at
larger x (the patient's right). By default the axial view draws it on the screen's left half, as PACS, 3D Slicer,
ITK-SNAP and OHIF do; the toggle flips it to the right half. Checked twice: with the page's own screen-to-voxel map
(hover readout) and with the canvas's pixels, where the liver is the only pixels of its colour.
"""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from tests.browser.conftest import ViewMap, open_next_case, seed_reference_data, sign_in, workspace
from tests.conftest import CT_EXAMPLE, require_ct_example

pytestmark = pytest.mark.django_db(transaction=True)

LIVER, SPLEEN = 5, 1


@pytest.fixture
def real_ct(tmp_path, settings, live_server):
    require_ct_example("ct.nii.gz", "seg_model_a.nii.gz")
    from annotation.ml_adapter import OrganAttentionInput
    from annotation.models import Case, LabelSet, Round
    from annotation.services.imports import import_cases
    from annotation.services.predictions import record_prediction
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    from tests.api.conftest import PASSWORD

    seed_reference_data()
    (tmp_path / "in").mkdir()
    shutil.copy(CT_EXAMPLE / "ct.nii.gz", tmp_path / "in" / "ct_example.nii.gz")  # a temporary copy, for the import
    assert import_cases(tmp_path / "in", dataset="real").ok
    seg = nib.load(CT_EXAMPLE / "seg_model_a.nii.gz")
    labels = np.asarray(seg.dataobj)
    pseudo = np.where(np.isin(labels, (LIVER, SPLEEN)), labels, 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(pseudo, seg.affine), tmp_path / "pseudo.nii.gz")
    centroid = [round(float(c)) for c in np.argwhere(pseudo == LIVER).mean(axis=0)]
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    case = Case.objects.get(name="ct_example")
    record_prediction(case=case, round=round0, pseudo_label=tmp_path / "pseudo.nii.gz",
                      organs=[OrganAttentionInput("liver", 5.0, 100, [{"voxels": 100, "ml": 5.0, "centroid": centroid,
                                                                       "bbox": [centroid, centroid]}])])
    rebuild_tasks(round=round0)
    create_user(username="a1", role="annotator", password=PASSWORD)
    return pseudo


def _liver_pixels(page, tmp_path) -> tuple[int, int]:
    """Canvas pixels of the liver's colour (labels opaque, heatmap off) in the left and the right half."""
    canvas = page.locator(".viewer canvas")
    colour = page.evaluate("""() => {
        const el = [...document.querySelectorAll('[data-organ=liver] .swatch')][0];
        return getComputedStyle(el).backgroundColor.match(/\\d+/g).map(Number);
    }""")
    import SimpleITK as sitk

    canvas.screenshot(path=str(tmp_path / "canvas.png"))
    rgb = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "canvas.png")))[..., :3].astype(int)  # (y, x, rgb)
    match = np.abs(rgb - np.array(colour)).sum(axis=2) <= 12
    half = rgb.shape[1] // 2
    return int(match[:, :half].sum()), int(match[:, half:].sum())


def test_real_ct_liver_is_on_the_screens_left(real_ct, page, live_server, tmp_path):
    sign_in(page, live_server.url)
    open_next_case(page)
    assert workspace(page, "display") == "radiological"
    assert page.get_attribute("[data-orient-left]", "data-orient-left") == "R"
    page.click("[data-hotspot-index='0']")  # centre the views on the liver
    page.uncheck("[data-control=heatmap]")
    page.fill("[data-control=label-opacity]", "1")
    view = ViewMap(page)
    assert (view.h, view.v) == (0, 1)
    z = view.slice
    liver_x = np.argwhere(real_ct[:, :, z] == LIVER)[:, 0]
    assert len(liver_x) > 100
    canvas = page.locator(".viewer canvas").bounding_box()
    middle = canvas["x"] + canvas["width"] / 2
    # the page's map: voxel x grows toward the screen's left, and the liver's centre is left of the middle
    assert view.sh < 0
    assert view.screen(float(liver_x.mean()), 50)[0] < middle
    left, right = _liver_pixels(page, tmp_path)
    assert left > 200 and left > 5 * right, (left, right)

    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("r")  # neurological: the liver moves to the right half
    page.wait_for_selector("[data-page=workspace][data-display=neurological]")
    assert page.get_attribute("[data-orient-left]", "data-orient-left") == "L"
    left, right = _liver_pixels(page, tmp_path)
    assert right > 200 and right > 5 * left, (left, right)
    view = ViewMap(page)
    assert view.sh > 0 and view.screen(float(liver_x.mean()), 50)[0] > middle
    assert not page.errors
