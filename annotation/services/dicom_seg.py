"""DICOM Segmentation objects (highdicom) for cases imported from DICOM, and the source headers they need.

An import of a DICOM series keeps each instance's header (no pixel data, no private tags) in slice order beside the
CT, `CASE/dicom/instances.json` (Case.dicom_headers; Case.study_uid and Case.series_uid): the UIDs of study, series
and instances, the frame of reference, the patient and study modules. A SEG then references the source instances,
one frame each, on the source grid, with one segment per organ coded in SNOMED CT (fixtures/dicom_seg_codes.json).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from annotation.errors import Invalid
from annotation.models import Case

CODES_FILE = Path(settings.BASE_DIR) / "fixtures" / "dicom_seg_codes.json"
_BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def series_headers(files: list[Path]) -> dict:
    """The headers of a series' files in slice order (the CT volume's z order), as DICOM JSON, and its UIDs."""
    import pydicom

    instances = []
    for path in files:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        ds.remove_private_tags()
        for element in list(ds):
            if element.VR in _BINARY_VRS:
                del ds[element.tag]
        instances.append(ds.to_json_dict())
    first = instances[0] if instances else {}
    return {"study_uid": _value(first, "0020000D"), "series_uid": _value(first, "0020000E"),
            "frame_of_reference_uid": _value(first, "00200052"), "instances": instances}


def source_datasets(headers: dict) -> list:
    import pydicom

    return [pydicom.Dataset.from_json(item) for item in headers["instances"]]


def read_headers(case: Case) -> dict | None:
    """The stored source headers of a case imported from DICOM, else None."""
    if not case.dicom_headers:
        return None
    with default_storage.open(case.dicom_headers.name, "rb") as handle:
        return json.loads(handle.read().decode("utf-8"))


def _value(item: dict, tag: str) -> str | None:
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


@cache
def organ_codes() -> dict:
    return json.loads(CODES_FILE.read_text())


def segment_description(number: int, organ: str):
    """highdicom's SegmentDescription of one organ: SNOMED CT category, type and laterality."""
    from highdicom.seg import SegmentAlgorithmTypeValues, SegmentDescription
    from highdicom.sr.coding import CodedConcept

    table = organ_codes()
    entry = table["organs"].get(organ)
    if entry is None:
        raise Invalid(f"organ {organ!r} has no SNOMED CT code in {CODES_FILE.name}", field="label_set")
    description = SegmentDescription(
        segment_number=number, segment_label=organ,
        segmented_property_category=CodedConcept(table["category"]["code"], "SCT", table["category"]["meaning"]),
        segmented_property_type=CodedConcept(entry["code"], "SCT", entry["meaning"]),
        algorithm_type=SegmentAlgorithmTypeValues.MANUAL,
    )
    if entry.get("laterality"):
        side = table["laterality"][entry["laterality"]]
        description.SegmentedPropertyTypeModifierCodeSequence = [CodedConcept(side["code"], "SCT", side["meaning"])]
    return description


def build_segmentation(case: Case, label: np.ndarray, organs: list[tuple[int, str]], *, headers: dict,
                       series_number: int = 300):
    """A DICOM SEG of label ((x, y, z) uint8 in the label set's values, on the case's CT grid), referencing the
    source instances of headers: frame k is the source's slice k; one segment per organ present."""
    import highdicom
    from pydicom.uid import generate_uid

    sources = source_datasets(headers)
    if len(sources) != label.shape[2]:
        raise Invalid(f"case {case.name}: {len(sources)} source instances for {label.shape[2]} slices")
    present = [(value, organ) for value, organ in organs if np.any(label == value)]
    numbers = np.zeros(256, dtype=np.uint8)
    for number, (value, _organ) in enumerate(present, start=1):
        numbers[value] = number
    frames = numbers[label].transpose(2, 1, 0)  # (x, y, z) -> frames (z), rows (y), columns (x), as SimpleITK read
    descriptions = [segment_description(number, organ) for number, (_v, organ) in enumerate(present, start=1)]
    if not descriptions:
        raise Invalid(f"case {case.name}: the label is empty; a DICOM SEG needs at least one segment")
    return highdicom.seg.Segmentation(
        source_images=sources, pixel_array=frames,
        segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer="Atlas",
        manufacturer_model_name="Atlas annotation platform", software_versions="1", device_serial_number="1",
        series_description=f"Atlas organs: {case.name}", omit_empty_frames=False,
    )
