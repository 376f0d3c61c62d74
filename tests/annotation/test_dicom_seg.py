"""DICOM SEG export: SNOMED CT codes per organ, and a round trip through highdicom back onto the source series."""

from __future__ import annotations

import io
import json

import highdicom
import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from pydicom.sr._concepts_dict import concepts

from annotation.ml_adapter import OrganAttentionInput
from annotation.models import Case, LabelSet, Round
from annotation.services.dicom_seg import CODES_FILE
from annotation.services.imports import import_cases
from annotation.services.predictions import record_prediction
from annotation.storage import read_voxels
from ml_engine.labels import read_label_sets
from tests.conftest import REPO, make_ct, real_ct_as_dicom, save_nifti, write_dicom_series


def _sct(code: str) -> dict[str, set[int]]:
    """pydicom's SNOMED CT table: the meanings of code, each with the context groups (CIDs) that list it."""
    found: dict[str, set[int]] = {}
    for entries in concepts["SCT"].values():
        if code in entries:
            meaning, cids = entries[code]
            found.setdefault(meaning.lower(), set()).update(cids)
    return found


def test_every_organ_has_a_dicom_code():
    table = json.loads(CODES_FILE.read_text())
    organs = {organ["name"] for label_set in read_label_sets() for organ in label_set["organs"]}
    assert organs <= set(table["organs"]), organs - set(table["organs"])
    assert 7150 in _sct(table["category"]["code"])[table["category"]["meaning"].lower()]
    for side in table["laterality"].values():
        assert 244 in _sct(side["code"])[side["meaning"].lower()]
    for organ, entry in table["organs"].items():
        meanings = _sct(entry["code"])
        assert entry["meaning"].lower() in meanings, (organ, entry, meanings)
        if "note" not in entry:  # CID 7151: segmentation property types for anatomical structures
            assert 7151 in meanings[entry["meaning"].lower()], (organ, entry)


def label_case(case: Case, label: np.ndarray, tmp_path) -> None:
    """Give case a final label (x, y, z uint8): the pseudo-label of an annotating round."""
    round0 = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                  label_set=LabelSet.objects.get(name="abdomenatlas"))
    affine = np.asarray(case.affine)
    record_prediction(case=case, round=round0, pseudo_label=save_nifti(tmp_path / "pseudo.nii.gz", label, affine),
                      heatmap=save_nifti(tmp_path / "heat.nii.gz", np.zeros(label.shape, np.uint8), affine),
                      attention={}, organs=[OrganAttentionInput("liver", 1.0, 10)])


@pytest.mark.django_db
def test_dicom_seg_round_trip(tmp_path, settings):
    ct = make_ct(shape=(20, 16, 8), seed=3)
    series = write_dicom_series(tmp_path / "series", ct)
    assert import_cases(series, dataset="pacs").ok
    case = Case.objects.get()
    assert case.series_uid == "1.2.826.0.1.3680043.2.1125.1.42" and case.study_uid.endswith(".1.1")
    label = np.zeros(ct.shape, dtype=np.uint8)
    label[2:8, 3:12, 1:6] = 5  # liver
    label[12:17, 4:10, 2:7] = 1  # spleen
    label[9:11, 5:9, 3:5] = 2  # kidney_right
    label_case(case, label, tmp_path)
    save_nifti(tmp_path / "other.nii.gz", make_ct((20, 16, 8), seed=4), np.eye(4))
    assert import_cases(tmp_path / "other.nii.gz", dataset="files").ok  # not DICOM: no SEG, and the export says so

    # a case imported before Atlas kept DICOM headers gets them when its series is imported again
    Case.objects.filter(pk=case.pk).update(dicom_headers="", series_uid="", study_uid="")
    report = import_cases(series, dataset="pacs")
    assert report.skipped == ["series"] and "its DICOM source headers were added" in report.notes[0]
    case.refresh_from_db()
    assert case.dicom_headers and case.series_uid == "1.2.826.0.1.3680043.2.1125.1.42"

    out = io.StringIO()
    call_command("export_dataset", str(tmp_path / "out"), "--format", "dicom-seg", stdout=out)
    assert "skipped 1 cases without a DICOM source series" in out.getvalue()
    seg = highdicom.seg.segread(tmp_path / "out" / "pacs_series.seg.dcm")

    sources = sorted((pydicom.dcmread(p) for p in series.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    uids = [d.SOPInstanceUID for d in sources]
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == set(uids) and seg.ReferencedSeriesSequence[0].SeriesInstanceUID == case.series_uid
    assert seg.StudyInstanceUID == case.study_uid and seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID

    segments = {item.SegmentLabel: item for item in seg.SegmentSequence}
    assert set(segments) == {"spleen", "kidney_right", "liver"}
    liver = segments["liver"].SegmentedPropertyTypeCodeSequence[0]
    assert (liver.CodeValue, liver.CodingSchemeDesignator, liver.CodeMeaning) == ("10200004", "SCT", "Liver")
    kidney = segments["kidney_right"]
    assert kidney.SegmentedPropertyTypeCodeSequence[0].CodeValue == "64033007"
    assert kidney.SegmentedPropertyTypeModifierCodeSequence[0].CodeValue == "24028007"  # right

    # the same voxels on the source series' grid: frame k is source slice k, rows y, columns x
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True)
    values = {item.SegmentNumber: {"spleen": 1, "kidney_right": 2, "liver": 5}[item.SegmentLabel]
              for item in seg.SegmentSequence}
    lookup = np.zeros(max(values) + 1, dtype=np.uint8)
    for number, value in values.items():
        lookup[number] = value
    for k, source in enumerate(sources):
        raw = source.pixel_array.astype(np.int16)
        assert np.array_equal(raw.T, ct[:, :, k])  # the CT's voxel order is the source's (rows y, columns x)
    assert np.array_equal(lookup[pixels].transpose(2, 1, 0), label)


@pytest.mark.django_db
def test_a_real_ct_and_totalsegmentator_label_round_trip(ct_example, tmp_path):
    """The real CT as a DICOM series with TotalSegmentator's label (imported: every organ, so the final label): the
    SEG read back with highdicom holds the stored label's voxels on the source grid, organ by organ."""
    series, _ras = real_ct_as_dicom(ct_example, tmp_path / "dicom")
    report = import_cases(series, dataset="real", labels=ct_example / "seg_model_a.nii.gz",
                          label_map=REPO / "fixtures" / "label_maps" / "totalsegmentator.json")
    assert report.ok, report.errors
    case = Case.objects.get()
    stored = read_voxels(case.source_labels.get().label_file.name)
    call_command("export_dataset", str(tmp_path / "out"), "--format", "dicom-seg", stdout=io.StringIO())
    seg = highdicom.seg.segread(tmp_path / "out" / "dicom.seg.dcm")
    sources = sorted((pydicom.dcmread(p) for p in series.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    organs = dict(LabelSet.objects.get(name="abdomenatlas").organs.values_list("name", "value"))
    assert {item.SegmentLabel for item in seg.SegmentSequence} == {o for o, v in organs.items() if np.any(stored == v)}
    for item in seg.SegmentSequence:
        mask = seg.get_pixels_by_source_instance(source_sop_instance_uids=[d.SOPInstanceUID for d in sources],
                                                 segment_numbers=[item.SegmentNumber])[..., 0]
        assert np.array_equal(mask.transpose(2, 1, 0) > 0, stored == organs[item.SegmentLabel]), item.SegmentLabel
