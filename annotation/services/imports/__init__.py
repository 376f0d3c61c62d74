"""Importing CT cases: one service, `import_cases`, used by the management command, tasks and tests.

Each case is read and checked whole before anything is written. Then, in one transaction, the Case row
is inserted (the unique checksum makes a re-import a no-op, even from two processes at once), its files
are written to storage (temp + rename), and its SourceLabel rows are added; on any failure the files
written so far are removed and the transaction rolls back, so no row exists without its file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from annotation.errors import Invalid, engine_refusals
from annotation.models import Case, Dataset, LabelSet, Organ, SourceLabel
from annotation.services.dicom_seg import series_headers
from annotation.services.dicomweb import SeriesQuery, fetch_series
from annotation.services.imports.labels import (
    LabelMap,
    LabelMapError,
    OrganIndex,
    binary_mask,
    convert_multilabel,
)
from annotation.services.imports.sources import CaseSource, SourceError, case_name, check_is_image, discover
from annotation.storage import delete_files, scratch_dir, store_file
from ml_engine.io import (
    DecodeLimits,
    ImageError,
    Volume,
    axis_codes,
    copy_as_nifti_gz,
    label_suffix,
    load_dicom_series,
    load_label_image,
    load_nifti,
    reorient_onto,
    sha256_file,
    write_json,
    write_nifti,
)

log = logging.getLogger(__name__)

__all__ = ["ImportReport", "ImportSetupError", "SeriesQuery", "import_cases"]


class ImportSetupError(Invalid):
    """The import cannot start (unknown label set, bad label map, missing source): nothing was imported. A refusal
    (400 over the API); its message names the option or file at fault."""


@dataclass
class ImportReport:
    """What one import run did. errors: one line each, naming the file and the problem."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the import did that the admin should know (reorientation)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Prepared:
    """A case read and checked, staged on local disk, ready to be written."""

    source: CaseSource
    checksum: str
    ct_file: Path
    ct: Volume
    label_file: Path | None
    label_organs: set[str]
    label_checksum: str
    dicom_headers: Path | None = None  # the source instances' headers in slice order (DICOM series only)
    notes: list[str] = field(default_factory=list)


ProgressFn = Callable[[int, int, str], None]


def import_cases(src: str | Path, *, dataset: str, label_set: str = "abdomenatlas", labels: str | Path | None = None,
                 label_map: str | Path | None = None, query: SeriesQuery | None = None,
                 progress: ProgressFn | None = None) -> ImportReport:
    """Import every case found under src into dataset (created with label_set if new).

    src: a NIfTI file (labels: its multi-label segmentation), a folder of NIfTI files (labels: a folder of
    segmentations with the same names), an AbdomenAtlas folder (CASE/ct.nii.gz + CASE/segmentations/),
    an nnU-Net / MSD dataset (dataset.json, imagesTr/, labelsTr/), or a DICOM series as a folder or .zip.
    src may also be a DICOMweb server's URL (http(s)://...): the series that query finds (QIDO-RS) are fetched
    (WADO-RS) and imported like a folder of DICOM series; each case records the series' URL and UIDs.
    label_map: JSON translating foreign label values / names to organs (see labels.LabelMap).
    progress(done, total, case_name) is called after each case.

    Bad cases are reported in ImportReport.errors and do not stop the others. Raises ImportSetupError when
    the run cannot start at all.
    """
    target = _dataset(dataset, label_set)
    organs = target.label_set.organ_index()
    mapping = None
    if label_map is not None:
        with engine_refusals(refusal=ImportSetupError):
            mapping = LabelMap.load(label_map, organs)
    report = ImportReport()
    web = isinstance(src, str) and src.startswith(("http://", "https://"))
    if web and labels is not None:
        raise ImportSetupError("--labels cannot be used with a DICOMweb server")
    if not web and query is not None:
        raise ImportSetupError("--study-uid, --series-uid, --modality and --study-date need a DICOMweb server as SRC")
    if web:
        (query or SeriesQuery()).filters()  # Invalid (naming the option) before anything is fetched
    with scratch_dir("import") as workdir:
        try:
            if web:
                sources = _dicomweb_sources(str(src), query or SeriesQuery(), workdir / "dicomweb")
            else:
                sources = discover(Path(src), labels=Path(labels) if labels else None, workdir=workdir,
                                   decode=decode_limits(), errors=report.errors)
        except SourceError as exc:
            report.errors.append(str(exc))
            return report
        if mapping is not None and not any(source.labels for source in sources):
            report.errors.append(f"{src}: --label-map given, but no label was found to translate (give --labels, "
                                 f"or leave --label-map out)")
            return report
        for done, source in enumerate(sources, start=1):
            try:
                prepared = _prepare(source, organs=organs, label_map=mapping, workdir=workdir / f"case{done}")
                created = _write(prepared, target)
                report.notes.extend(prepared.notes)
            except (ImageError, SourceError, LabelMapError, _Duplicate) as exc:
                report.errors.append(str(exc))
            else:
                (report.imported if created else report.skipped).append(source.name)
            if progress is not None:
                progress(done, len(sources), source.name)
    return report


def decode_limits() -> DecodeLimits:
    """The DICOM decoder child's limits, from the settings (ATLAS_DECODE_*)."""
    return DecodeLimits(memory_bytes=settings.ATLAS_DECODE_MEMORY_BYTES, seconds=settings.ATLAS_DECODE_SECONDS,
                        require_confinement=settings.ATLAS_DECODE_REQUIRE_CONFINEMENT)


def _dicomweb_sources(url: str, query: SeriesQuery, workdir: Path) -> list[CaseSource]:
    try:
        found = fetch_series(url, query, workdir)
    except Invalid as exc:
        raise SourceError(exc.message) from exc
    if not found:
        raise SourceError(f"{url}: no series matches {query.filters() or 'the query'}"
                          f"{f' in study {query.study_uid}' if query.study_uid else ''}")
    return [CaseSource(case_name(uid), folder, "dicomweb", series_uid=uid,
                       origin=f"{url.rstrip('/')}/studies/{study}/series/{uid}") for study, uid, folder in found]


def _dataset(name: str, label_set: str) -> Dataset:
    try:
        labels = LabelSet.objects.get(name=label_set)
    except LabelSet.DoesNotExist as exc:
        known = ", ".join(LabelSet.objects.values_list("name", flat=True))
        raise ImportSetupError(f"--label-set {label_set!r} does not exist (known: {known})") from exc
    dataset, _ = Dataset.objects.get_or_create(name=name, defaults={"label_set": labels})
    if dataset.label_set_id != labels.pk:
        raise ImportSetupError(f"dataset {name!r} uses label set {dataset.label_set.name!r}, not {label_set!r}")
    return dataset


def _prepare(source: CaseSource, *, organs: OrganIndex, label_map: LabelMap | None, workdir: Path) -> _Prepared:
    """Read and check the CT and its labels, staging the files to store under workdir."""
    workdir.mkdir(parents=True)
    max_bytes = settings.ATLAS_MAX_VOLUME_BYTES
    ct_file = workdir / "ct.nii.gz"
    dicom_headers = None
    if source.series_uid is not None:
        ct, files = load_dicom_series(source.path, source.series_uid, max_bytes=max_bytes, limits=decode_limits())
        digest = hashlib.sha256()
        for path in sorted(files):
            digest.update(sha256_file(path).encode())
        checksum = digest.hexdigest()
        write_nifti(ct_file, ct.data, ct.affine)
        dicom_headers = workdir / "instances.json"
        write_json(dicom_headers, _series_headers(source.path, files))
    else:
        check_is_image(source.path)
        # The header decides first (shape, type, size within ATLAS_MAX_VOLUME_BYTES); a .gz is inflated once, no
        # further than the header allows, and trailing data is refused.
        ct = load_nifti(source.path, max_bytes=max_bytes)
        checksum = sha256_file(source.path)
        copy_as_nifti_gz(source.path, ct_file)  # byte for byte: geometry and voxel values kept exactly
    label_file, label_organs, label_checksum, notes = None, set(), "", []
    if source.labels:
        label_map_data, label_organs = _merge_labels(source, ct, organs=organs, label_map=label_map, notes=notes)
        label_file = workdir / "label.nii.gz"
        write_nifti(label_file, label_map_data, ct.affine, header=ct.header, dtype=np.uint8)
        digest = hashlib.sha256()
        for label in source.labels:
            digest.update(sha256_file(label.path).encode())
        label_checksum = digest.hexdigest()
    return _Prepared(source, checksum, ct_file, ct, label_file, label_organs, label_checksum, dicom_headers, notes)


def _series_headers(folder: Path, files: list[Path]) -> dict:
    try:
        return series_headers(files)
    except Exception as exc:  # noqa: BLE001 - pydicom's many errors: GDCM read the file, pydicom could not
        raise ImageError(folder, f"DICOM headers cannot be read ({type(exc).__name__}: {str(exc)[:160]})") from exc


def _merge_labels(source: CaseSource, ct: Volume, *, organs: OrganIndex, label_map: LabelMap | None,
                  notes: list[str]) -> tuple[np.ndarray, set[str]]:
    """The case's labels as one (x, y, z) uint8 map in the label set's values, and the organs covered.

    Covered organs: per-organ mask files cover their organ; a multi-label map covers what its label map or
    dataset.json declares, else the organs present in it. Overlapping masks: the higher value wins.
    """
    merged = np.zeros(ct.shape, dtype=np.uint8)
    covered: set[str] = set()
    for label in source.labels:
        # A label must lie on the CT's grid, perhaps in another voxel order (axes flipped or permuted by another
        # converter): reordered then, and said. Its memory is bounded by the CT's size before a voxel is read (8
        # bytes a voxel at most, scaled floats included), and its shape must be a permutation of the CT's.
        try:
            if label_suffix(label.path.name) in (".nrrd", ".seg.nrrd"):  # as 3D Slicer saves label maps
                volume = load_label_image(label.path, expect_shape=ct.shape, max_bytes=ct.data.size * 8)
            else:
                volume = load_nifti(label.path, expect_shape=ct.shape, any_axis_order=True,
                                    max_bytes=ct.data.size * 8)
        except ImageError as exc:
            raise ImageError(label.path, f"label {exc.problem}" if exc.problem.startswith("shape ") else exc.problem
                             ) from exc
        data, reordered = reorient_onto(volume, ct.affine, ct.shape, label.path)
        if reordered:
            notes.append(f"{label.path}: same grid as the CT in another voxel order (axes {axis_codes(volume.affine)} "
                         f"vs the CT's {axis_codes(ct.affine)}): reoriented onto the CT's")
        volume = Volume(data=data, affine=ct.affine, header=volume.header)
        if label.structure is not None:
            try:
                organ = (label_map.organ_for_name(label.structure, organs) if label_map
                         else _organ_or_error(label.structure, organs))
            except LabelMapError as exc:
                raise ImageError(label.path, str(exc)) from exc
            mask = binary_mask(volume, ct, label.path)
            if organ is None:
                continue
            np.maximum(merged, mask * np.uint8(organs.values[organ]), out=merged)
            covered.add(organ)
        else:
            converted, present = convert_multilabel(volume, ct, label.path, organs=organs, label_map=label_map)
            np.maximum(merged, converted, out=merged)
            covered |= _declared(source, organs, label_map) or present
    return merged, covered


def _organ_or_error(structure: str, organs: OrganIndex) -> str:
    organ = organs.resolve(structure)
    if organ is None:
        raise LabelMapError(f"{structure!r} is not an organ of the label set ({', '.join(organs.values)}); "
                            f"pass --label-map to map or drop it")
    return organ


def _declared(source: CaseSource, organs: OrganIndex, label_map: LabelMap | None) -> set[str]:
    if source.declared_organs is not None:
        declared = set()
        for name in source.declared_organs:
            try:
                organ = label_map.organ_for_name(name, organs) if label_map else _organ_or_error(name, organs)
            except LabelMapError as exc:
                raise ImageError(source.path.parent.parent / "dataset.json", str(exc)) from exc
            if organ:
                declared.add(organ)
        return declared
    if label_map is not None:
        return label_map.organs_covered(organs)
    return set()


class _Duplicate(Exception):
    """A case name already taken in the dataset by other content."""


def _name_taken(source: CaseSource, dataset: Dataset) -> _Duplicate:
    return _Duplicate(f"{source.path}: dataset {dataset.name!r} already has a case named {source.name!r} "
                      f"with different content")


def _store_dicom_headers(case: Case, prepared: _Prepared, written: list[str]) -> None:
    """Inside the case's transaction: store the series' headers and record its UIDs on the row."""
    headers = json.loads(prepared.dicom_headers.read_text())
    case.dicom_headers = f"{Path(case.ct_file.name).parent.as_posix()}/dicom/instances.json"
    case.study_uid, case.series_uid = headers["study_uid"] or "", headers["series_uid"] or ""
    written.append(store_file(case.dicom_headers.name, prepared.dicom_headers))
    case.save(update_fields=["dicom_headers", "study_uid", "series_uid"])


def _keep_dicom_headers(case: Case, prepared: _Prepared) -> None:
    """A DICOM case imported before Atlas kept its source headers gets them when its series is imported again."""
    if prepared.dicom_headers is None or case.dicom_headers:
        return
    written: list[str] = []
    try:
        with transaction.atomic():
            locked = Case.objects.select_for_update().get(pk=case.pk)
            if not locked.dicom_headers:
                _store_dicom_headers(locked, prepared, written)
                prepared.notes.append(f"{prepared.source.path}: case {case.name} already present; its DICOM source "
                                      f"headers were added (a DICOM SEG export needs them)")
    except BaseException:
        delete_files(written)
        raise


def _write(prepared: _Prepared, dataset: Dataset) -> bool:
    """Insert the case and store its files in one transaction. Returns False if it was already there."""
    source = prepared.source
    existing = Case.objects.filter(dataset=dataset, checksum=prepared.checksum).first()
    if existing is not None:
        _keep_dicom_headers(existing, prepared)
        return False
    if source.series_uid and Case.objects.filter(dataset=dataset, series_uid=source.series_uid).exists():
        return False  # the same DICOM series, fetched another way (a folder, a zip, a PACS): its files differ in bytes
    # One read for the name, with its checksum: another import of the same file may commit between two reads.
    taken = Case.objects.filter(dataset=dataset, name=source.name).values_list("checksum", flat=True).first()
    if taken is not None:
        if taken == prepared.checksum:
            return False
        raise _name_taken(source, dataset)
    folder = f"{dataset.name}/{source.name}"
    written: list[str] = []
    try:
        with transaction.atomic():
            case = Case.objects.create(
                dataset=dataset, name=source.name, ct_file=f"{folder}/ct.nii.gz",
                shape=list(prepared.ct.shape), spacing=list(prepared.ct.spacing),
                affine=prepared.ct.affine.tolist(), dtype=str(prepared.ct.data.dtype),
                checksum=prepared.checksum, source_path=source.origin or str(source.path),
                source_format=source.source_format,
            )
            written.append(store_file(case.ct_file.name, prepared.ct_file))
            if prepared.dicom_headers is not None:
                _store_dicom_headers(case, prepared, written)
            if prepared.label_file is not None:
                name = f"{folder}/source_labels/1.nii.gz"
                written.append(store_file(name, prepared.label_file))
                label = SourceLabel.objects.create(
                    case=case, label_file=name, checksum=prepared.label_checksum,
                    source_path=", ".join(str(label.path) for label in source.labels),
                )
                label.organs.set(Organ.objects.filter(label_set=dataset.label_set_id,
                                                      name__in=prepared.label_organs))
    except IntegrityError:
        delete_files(written)
        if Case.objects.filter(dataset=dataset, checksum=prepared.checksum).exists():
            return False  # another import of the same file won the race
        taken = Case.objects.filter(dataset=dataset, name=source.name).values_list("checksum", flat=True).first()
        if taken is not None:
            if taken == prepared.checksum:
                return False
            raise _name_taken(source, dataset) from None
        raise
    except BaseException:
        delete_files(written)
        raise
    return True
