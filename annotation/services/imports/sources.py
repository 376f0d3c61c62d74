"""Finding cases in what the admin points at: NIfTI files or folders, the AbdomenAtlas layout, nnU-Net /
Medical Segmentation Decathlon datasets, DICOM series (folders or .zip). Nothing here touches the database.
"""

from __future__ import annotations

import json
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from annotation.errors import Invalid, engine_refusals
from ml_engine.io import DecodeLimits, ImageError, is_nifti, label_suffix, nifti_stem, read_dicom_series


@dataclass
class LabelSource:
    """A label file of a case: a multi-label map, or one organ's binary mask (then `structure` names it)."""

    path: Path
    structure: str | None = None


@dataclass
class CaseSource:
    """One case to import. For DICOM, `path` is the series folder and `series_uid` picks the series."""

    name: str
    path: Path
    source_format: str
    series_uid: str | None = None
    labels: list[LabelSource] = field(default_factory=list)
    declared_organs: list[str] | None = None  # names a dataset.json says its labels cover
    origin: str | None = None  # where it came from when `path` is a local copy (a DICOMweb series' URL)


class SourceError(Invalid):
    """A source that cannot be read at all; str() names the file and the problem."""


_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def case_name(raw: str) -> str:
    """A case name safe as a folder name."""
    name = _NAME_RE.sub("_", raw).strip("._") or "case"
    return name[:200]


def discover(src: Path, *, labels: Path | None = None, workdir: Path, decode: DecodeLimits | None = None,
             errors: list[str] | None = None) -> list[CaseSource]:
    """The cases found under src. A .zip is extracted into workdir first (its members must stay inside). DICOM
    series are found by the sandboxed decoder under `decode`'s limits; with `errors`, a folder the decoder fails on
    is one line there (naming the folder and what happened) and the other folders' series are still found.

    Raises SourceError when src is missing or holds nothing importable, or when the decoder fails on it.
    """
    src = Path(src)
    if not src.exists():
        raise SourceError(f"{src}: no such file or folder")
    if labels is not None and not labels.exists():
        raise SourceError(f"{labels}: no such file or folder")
    if src.is_file() and src.suffix.lower() == ".zip":
        folder = safe_extract(src, workdir / case_name(src.stem))
        cases = _discover_dicom(folder, fallback_name=src.stem, source_format="dicom-zip", decode=decode,
                                errors=errors)
        for case in cases:
            case.name = case_name(src.stem) if len(cases) == 1 else case.name
        if not cases:
            raise SourceError(f"{src}: no DICOM series found in the archive")
        return _dicom_labels(cases, labels, src)
    if src.is_file():
        if labels is not None and not labels.is_file():
            raise SourceError(f"{labels}: --labels must be a file when SRC is a file")
        name = nifti_stem(src) if is_nifti(src) else src.stem
        return [CaseSource(case_name(name), src, "nifti", labels=[LabelSource(labels)] if labels else [])]
    if (src / "dataset.json").is_file():
        _no_labels_option(labels, src, "an nnU-Net / MSD dataset (its labels are labelsTr/)")
        return _discover_nnunet(src)
    if (src / "ct.nii.gz").is_file():
        _no_labels_option(labels, src, "an AbdomenAtlas case (its labels are segmentations/)")
        return [_abdomenatlas_case(src)]
    atlas_cases = sorted(p for p in src.iterdir() if p.is_dir() and (p / "ct.nii.gz").is_file())
    if atlas_cases:
        _no_labels_option(labels, src, "an AbdomenAtlas folder (its labels are CASE/segmentations/)")
        return [_abdomenatlas_case(p) for p in atlas_cases]
    niftis = sorted(p for p in src.iterdir() if p.is_file() and is_nifti(p))
    if niftis:
        if labels is not None and not labels.is_dir():
            raise SourceError(f"{labels}: --labels must be a folder of label files named like the images "
                              f"when SRC is a folder")
        cases = []
        for path in niftis:
            label = labels / path.name if labels is not None else None
            found = [LabelSource(label)] if label is not None and label.is_file() else []
            cases.append(CaseSource(case_name(nifti_stem(path)), path, "nifti", labels=found))
        return cases
    cases = _discover_dicom(src, fallback_name=src.name, source_format="dicom", decode=decode, errors=errors)
    if not cases:
        raise SourceError(f"{src}: no NIfTI files, AbdomenAtlas cases, nnU-Net dataset or DICOM series found")
    return _dicom_labels(cases, labels, src)


def _no_labels_option(labels: Path | None, src: Path, what: str) -> None:
    """--labels is refused where the source brings its own labels: never silently ignored."""
    if labels is not None:
        raise SourceError(f"{src}: --labels cannot be used with {what}")


def _dicom_labels(cases: list[CaseSource], labels: Path | None, src: Path) -> list[CaseSource]:
    """Attach --labels to DICOM series: a file for one series; for several, a folder of files named by series UID
    or case name (NAME.nii.gz, .nii, .nrrd or .seg.nrrd). A file in the folder that names no series is refused, not
    ignored."""
    if labels is None:
        return cases
    if labels.is_file():
        if len(cases) != 1:
            raise SourceError(f"{labels}: one label file for {len(cases)} DICOM series in {src}; give a folder with "
                              f"one file per series, named by series UID or case name")
        cases[0].labels = [LabelSource(labels)]
        return cases
    files: dict[str, Path] = {}
    for path in sorted(p for p in labels.iterdir() if p.is_file() and not p.name.startswith(".")):
        suffix = label_suffix(path.name)
        if suffix is None:
            raise SourceError(f"{path}: not a label file (.nii.gz, .nii, .nrrd, .seg.nrrd)")
        files[path.name[: -len(suffix)]] = path
    used: set[str] = set()
    for case in cases:
        for key in (case.series_uid, case.name):
            if key in files:
                case.labels = [LabelSource(files[key])]
                used.add(key)
                break
    unused = sorted(set(files) - used)
    if unused:
        raise SourceError(f"{labels}: label files {', '.join(files[k].name for k in unused[:5])} name no series of "
                          f"{src} (by series UID or case name: {', '.join(c.name for c in cases[:5])})")
    return cases


def _abdomenatlas_case(folder: Path) -> CaseSource:
    seg_dir = folder / "segmentations"
    labels = []
    if seg_dir.is_dir():
        labels = [LabelSource(p, structure=nifti_stem(p)) for p in sorted(seg_dir.iterdir()) if is_nifti(p)]
    return CaseSource(case_name(folder.name), folder / "ct.nii.gz", "abdomenatlas", labels=labels)


def _discover_nnunet(root: Path) -> list[CaseSource]:
    """nnU-Net v2 (labels: name -> value, images CASE_0000.ext) or MSD / v1 (labels: value -> name, `training`)."""
    meta_path = root / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{meta_path}: not valid JSON ({exc})") from exc
    raw_labels = meta.get("labels")
    if not isinstance(raw_labels, dict):
        raise SourceError(f"{meta_path}: no 'labels' object")
    names: dict[int, str] = {}
    for key, value in raw_labels.items():
        if str(key).isdigit():  # MSD / nnU-Net v1: "1": "liver"
            names[int(key)] = str(value)
        elif isinstance(value, int):  # nnU-Net v2: "liver": 1
            names[value] = str(key)
        else:
            raise SourceError(f"{meta_path}: label {key!r}: {value!r} is neither 'value: name' nor 'name: value'")
    declared = [name for value, name in sorted(names.items()) if value > 0]
    channels = meta.get("channel_names") or meta.get("modality") or {"0": "CT"}
    if len(channels) != 1:
        raise SourceError(f"{meta_path}: {len(channels)} input channels; Atlas imports single-channel CT")
    ending = meta.get("file_ending", ".nii.gz")
    cases: list[CaseSource] = []
    for folder, label_folder in (("imagesTr", "labelsTr"), ("imagesTs", "labelsTs")):
        image_dir = root / folder
        if not image_dir.is_dir():
            continue
        for image in sorted(image_dir.iterdir()):
            if not image.name.endswith(ending) or image.name.startswith("."):
                continue
            stem = image.name[: -len(ending)]
            case_id = stem[:-5] if re.search(r"_\d{4}$", stem) else stem
            label = root / label_folder / f"{case_id}{ending}"
            cases.append(CaseSource(case_name(case_id), image, "nnunet",
                                    labels=[LabelSource(label)] if label.is_file() else [],
                                    declared_organs=declared))
    if not cases:
        raise SourceError(f"{root}: dataset.json found but no images under imagesTr/ or imagesTs/")
    return cases


def _discover_dicom(folder: Path, *, fallback_name: str, source_format: str, decode: DecodeLimits | None,
                    errors: list[str] | None) -> list[CaseSource]:
    failed: list[ImageError] = []
    with engine_refusals(refusal=SourceError):
        series = read_dicom_series(folder, limits=decode, errors=failed if errors is not None else None)
    if failed and not series:
        raise SourceError("; ".join(str(exc) for exc in failed[:3]))
    if errors is not None:
        errors.extend(str(exc) for exc in failed)
    cases = []
    for uid, directory in series:
        base = directory.name if directory != folder else fallback_name
        name = base if len(series) == 1 else f"{base}_{uid.rsplit('.', 1)[-1][-8:]}"
        cases.append(CaseSource(case_name(name), directory, source_format, series_uid=uid))
    return cases


def safe_extract(archive: Path, target: Path, *, max_bytes: int = 8 * 1024**3) -> Path:
    """Extract a zip into target, refusing members that would land outside it (absolute paths, '..',
    symbolic links) and archives that inflate beyond max_bytes. Raises SourceError naming the member."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"{archive}: not a readable zip archive ({exc})") from exc
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    with zf:
        total = 0
        members = zf.infolist()
        for info in members:
            pure = PurePosixPath(info.filename.replace("\\", "/"))
            mode = info.external_attr >> 16
            if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", info.filename):
                raise SourceError(f"{archive}: member {info.filename!r} escapes the target folder")
            if stat.S_ISLNK(mode):
                raise SourceError(f"{archive}: member {info.filename!r} is a symbolic link")
            dest = (root / pure).resolve()
            if root != dest and root not in dest.parents:
                raise SourceError(f"{archive}: member {info.filename!r} escapes the target folder")
            total += info.file_size
            if total > max_bytes:
                raise SourceError(f"{archive}: inflates to more than {max_bytes} bytes")
        try:
            for info in members:
                zf.extract(info, root)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise SourceError(f"{archive}: corrupt member ({exc})") from exc
    return target


def check_is_image(path: Path) -> None:
    """A CT source must be NIfTI (files) or DICOM (folders)."""
    if path.is_file() and not is_nifti(path):
        raise ImageError(path, "not a NIfTI file (.nii or .nii.gz); DICOM series are imported as folders or .zip")
