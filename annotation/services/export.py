"""Exporting the finished dataset, each case with its final label (selectors.labels.final_label).

Layouts: AbdomenAtlas (CASE/ct.nii.gz, CASE/combined_labels.nii.gz, CASE/segmentations/<organ>.nii.gz), an
nnU-Net v2 raw dataset (dataset.json, imagesTr/CASE_0000.nii.gz, labelsTr/CASE.nii.gz) that nnU-Net trains on
as it is, or DICOM Segmentation objects (CASE.seg.dcm, services.dicom_seg) for the cases imported from DICOM.
The export is built beside OUT and renamed onto it at the end: OUT appears whole or not at all.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from annotation.errors import Invalid
from annotation.models import Case, LabelSet
from annotation.selectors.labels import final_label
from annotation.selectors.rounds import models_card
from annotation.services.dicom_seg import build_segmentation, read_headers
from annotation.services.dicomweb import store
from annotation.storage import local_copy, read_volume
from ml_engine.io import DEFAULT, atomic_folder, write_nifti

FORMATS = ("abdomenatlas", "nnunetv2", "dicom-seg")
RULES = {"revision": "accepted revision", "imported": "imported", "pseudo_label": "pseudo-label"}


@dataclass
class ExportReport:
    exported: list[str] = field(default_factory=list)
    from_revision: int = 0
    from_imported: int = 0
    from_pseudo_label: int = 0
    skipped: list[str] = field(default_factory=list)  # cases with no final label yet
    not_dicom: list[str] = field(default_factory=list)  # dicom-seg: cases not imported from DICOM
    stored: int = 0  # SEG objects the DICOMweb server accepted (--stow)


def export_dataset(out: str | Path, *, format: str, label_set: str = "abdomenatlas", datasets: list[str] | None = None,
                   accepted_only: bool = False, progress: Callable[[int, int, str], None] | None = None,
                   stow: str | None = None) -> ExportReport:
    """Write every case of label_set (optionally only some datasets) with its final label to out, and `sources.csv`:
    per case, the rule that chose its label (accepted revision, imported, pseudo-label) and the revision's number.

    accepted_only: only labels that people made or checked (an accepted revision or an imported label); the others
    are skipped.
    stow: with format dicom-seg, a DICOMweb server's URL the SEG objects are then stored to (STOW-RS).
    """
    if format not in FORMATS:
        raise Invalid(f"{format!r} is not one of {', '.join(FORMATS)}", field="format")
    if stow and format != "dicom-seg":
        raise Invalid("only DICOM SEG objects (--format dicom-seg) can be stored to a DICOMweb server", field="stow")
    labels = LabelSet.objects.filter(name=label_set).first()
    if labels is None:
        raise Invalid(f"label set {label_set!r} does not exist", field="label_set")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise Invalid(f"{out}: exists and is not an empty folder")
    organs = list(labels.organs.order_by("value").values_list("value", "name"))
    cases = Case.objects.filter(dataset__label_set=labels).select_related("dataset").order_by("dataset__name", "name")
    if datasets:
        cases = cases.filter(dataset__name__in=datasets)
    cases = list(cases)
    several = len({c.dataset_id for c in cases}) > 1
    report = ExportReport()
    sources: list[list] = []
    with atomic_folder(out) as staging:
        for done, case in enumerate(cases, start=1):
            name = f"{case.dataset.name}_{case.name}" if several else case.name
            final = final_label(case)
            if format == "dicom-seg" and not case.dicom_headers:
                report.not_dicom.append(name)
            elif final is None or (accepted_only and final.source == "pseudo_label"):
                report.skipped.append(name)
            else:
                _write_case(staging, name, case, final.name, organs, format)
                report.exported.append(name)
                setattr(report, f"from_{final.source}", getattr(report, f"from_{final.source}") + 1)
                sources.append([name, RULES[final.source], final.revision.number if final.revision else ""])
            if progress is not None:
                progress(done, len(cases), name)
        (staging / "DATASET_CARD.md").write_text(dataset_card(labels, report), encoding="utf-8")
        with open(staging / "sources.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case", "label", "revision"])
            writer.writerows(sources)
        if format == "nnunetv2":
            meta = {"name": label_set, "description": "exported by Atlas", "channel_names": {"0": "CT"},
                    "labels": {"background": 0, **{organ: value for value, organ in organs}},
                    "numTraining": len(report.exported), "file_ending": ".nii.gz"}
            (staging / "dataset.json").write_text(json.dumps(meta, indent=1) + "\n")
        os.chmod(staging, 0o755)
    if stow and report.exported:
        report.stored = store(stow, sorted(out.glob("*.seg.dcm")))
    return report


def dataset_card(labels: LabelSet, report: ExportReport) -> str:
    """The export's dataset card: what it holds, and the models whose pseudo-labels it may contain, each with its
    source, licence and citation (a model's weights carry them wherever they are used)."""
    lines = [f"# Atlas export: label set {labels.name}", "",
             f"{len(report.exported)} cases: {report.from_revision} from accepted revisions, {report.from_imported} "
             f"from imported labels, {report.from_pseudo_label} pseudo-labels (sources.csv says which).", "",
             "## Models behind the pseudo-labels", ""]
    rows = models_card(labels)
    if not rows:
        lines.append("No round has run on this label set.")
    for row in rows:
        prov = row["provenance"]
        lines += [f"- **{row['name']}** ({row['kind']}, round {row['round']}, {row['source']})",
                  f"  - source: {prov['source']}", f"  - licence: {prov['licence']}",
                  f"  - citation: {prov['citation']}"]
    return "\n".join(lines) + "\n"


def _write_case(root: Path, name: str, case: Case, label_name: str, organs: list[tuple[int, str]],
                format: str) -> None:
    if format == "dicom-seg":
        seg = build_segmentation(case, np.asarray(read_volume(label_name).data, dtype=np.uint8), organs,
                                 headers=read_headers(case))
        seg.save_as(root / f"{name}.seg.dcm", enforce_file_format=True)
        return
    if format == "abdomenatlas":
        ct_path, label_path = root / name / "ct.nii.gz", root / name / "combined_labels.nii.gz"
    else:
        ct_path, label_path = root / "imagesTr" / f"{name}_0000.nii.gz", root / "labelsTr" / f"{name}.nii.gz"
    ct_path.parent.mkdir(parents=True, exist_ok=True)
    with local_copy(case.ct_file.name) as src:
        shutil.copyfile(src, ct_path)
    volume = read_volume(label_name)
    data = np.asarray(volume.data, dtype=np.uint8)
    write_nifti(label_path, data, volume.affine, header=volume.header, dtype=np.uint8, level=DEFAULT)  # leaves
    if format == "abdomenatlas":
        for value, organ in organs:
            write_nifti(root / name / "segmentations" / f"{organ}.nii.gz", (data == value).astype(np.uint8),
                        volume.affine, header=volume.header, level=DEFAULT)
