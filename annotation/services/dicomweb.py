"""DICOMweb: finding series on a PACS (QIDO-RS), fetching them (WADO-RS) and storing objects back (STOW-RS), with
dicomweb-client. Fetched series land as DICOM files in a local folder, one subfolder per series, and are imported by
the same code as a folder of DICOM files (same checks, errors and idempotence)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from annotation.errors import Invalid

_DATE = re.compile(r"^(\d{8})?-(\d{8})?$|^\d{8}$")
_UID = re.compile(r"^[0-9.]{1,64}$")


@dataclass(frozen=True)
class SeriesQuery:
    """What to import: series by UID, a study's series, or a query (modality, study date or range YYYYMMDD-YYYYMMDD)."""

    study_uid: str | None = None
    series_uid: str | None = None
    modality: str | None = "CT"
    study_date: str | None = None

    def filters(self) -> dict[str, str]:
        found = {}
        if self.series_uid:
            found["SeriesInstanceUID"] = self.series_uid
        if self.modality:
            found["Modality"] = self.modality
        if self.study_date:
            if not _DATE.match(self.study_date):
                raise Invalid(f"{self.study_date!r} is not a date YYYYMMDD or a range YYYYMMDD-YYYYMMDD",
                              field="study_date")
            found["StudyDate"] = self.study_date
        return found


def client(url: str):
    from dicomweb_client.api import DICOMwebClient

    if not re.match(r"^https?://", url):
        raise Invalid(f"{url!r} is not an http(s) URL of a DICOMweb server", field="src")
    return DICOMwebClient(url=url.rstrip("/"))


def fetch_series(url: str, query: SeriesQuery, workdir: Path) -> list[tuple[str, str, Path]]:
    """Every series the query finds, written to workdir/<series UID>/<n>.dcm: [(study UID, series UID, folder)].

    Raises Invalid when the server cannot be reached or answers with an error (naming the URL).
    """
    import requests

    api = client(url)
    try:
        found = api.search_for_series(study_instance_uid=query.study_uid, search_filters=query.filters(),
                                      get_remaining=True)
    except (requests.RequestException, OSError) as exc:
        raise Invalid(f"{url}: QIDO-RS search failed ({type(exc).__name__}: {str(exc)[:200]})", field="src") from exc
    series = []
    for item in found:
        study = item.get("0020000D", {}).get("Value", [None])[0]
        uid = item.get("0020000E", {}).get("Value", [None])[0]
        if not study or not uid or not _UID.match(uid):
            continue
        folder = workdir / uid
        folder.mkdir(parents=True, exist_ok=True)
        try:  # one instance at a time as the multipart answer streams in: memory holds one slice, not the series
            for n, dataset in enumerate(api.iter_series(study, uid)):
                sop = str(getattr(dataset, "SOPInstanceUID", ""))
                name = sop if _UID.match(sop) else f"instance{n:05d}"  # named by UID: the same files whatever order
                dataset.save_as(folder / f"{name}.dcm", enforce_file_format=True)
        except (requests.RequestException, OSError) as exc:
            raise Invalid(f"{url}: WADO-RS retrieval of series {uid} failed ({type(exc).__name__}: "
                          f"{str(exc)[:200]})", field="src") from exc
        series.append((study, uid, folder))
    return series


def store(url: str, paths: list[Path]) -> int:
    """STOW-RS the DICOM files at paths to the server; returns how many it accepted (Invalid on a failure)."""
    import pydicom
    import requests

    api = client(url)
    datasets = [pydicom.dcmread(str(path)) for path in paths]
    try:
        answer = api.store_instances(datasets)
    except (requests.RequestException, OSError) as exc:
        raise Invalid(f"{url}: STOW-RS failed ({type(exc).__name__}: {str(exc)[:200]})", field="src") from exc
    failed = getattr(answer, "FailedSOPSequence", None) or []
    if failed:
        raise Invalid(f"{url}: the server refused {len(failed)} of {len(datasets)} objects", field="src")
    return len(datasets)
