"""DICOMweb against a real Orthanc with its DICOMweb plugin (Debian's `orthanc` and `orthanc-dicomweb`, installed by
`make orthanc`): a series fed over HTTP, imported through QIDO-RS / WADO-RS, again (idempotent), and its DICOM SEG
stored back with STOW-RS. Skipped, saying why, where the packages are missing; ATLAS_REQUIRE_ORTHANC=1 fails then."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Case
from annotation.services.imports import import_cases
from annotation.storage import read_voxels
from tests.annotation.test_dicom_seg import label_case
from tests.conftest import free_port, make_ct, unavailable, write_dicom_series

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
UID = "1.2.826.0.1.3680043.2.1125.1.42"


@pytest.fixture
def orthanc(tmp_path):
    """Orthanc on free local ports with its own configuration and storage under tmp_path; yields its base URL."""
    if not (Path(ORTHANC).is_file() and PLUGIN.is_file()):
        reason = "Orthanc and its DICOMweb plugin are not installed (Debian packages orthanc, orthanc-dicomweb)"
        unavailable(reason, switch="ATLAS_REQUIRE_ORTHANC")
    port = free_port()
    config = {"Name": "atlas-test", "HttpPort": port, "DicomPort": free_port(), "DicomServerEnabled": False,
              "StorageDirectory": str(tmp_path / "orthanc-db"), "IndexDirectory": str(tmp_path / "orthanc-db"),
              "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "Plugins": [str(PLUGIN)],
              "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    path = tmp_path / "orthanc.json"
    path.write_text(json.dumps(config))
    log = open(tmp_path / "orthanc.log", "w")
    process = subprocess.Popen([ORTHANC, str(path)], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # until it answers (or dies)
            if process.poll() is not None:
                pytest.fail(f"Orthanc exited: {(tmp_path / 'orthanc.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(base + "/system", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _post(url: str, body: bytes, content_type: str = "application/dicom") -> dict:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())


@pytest.mark.django_db
@pytest.mark.slow
def test_import_from_orthanc_and_store_the_seg_back(orthanc, tmp_path):
    ct = make_ct(shape=(20, 16, 8), seed=9)
    series = write_dicom_series(tmp_path / "series", ct)
    other = write_dicom_series(tmp_path / "other", make_ct(shape=(20, 16, 8), seed=10), series_uid=UID + ".9")
    for path in sorted(series.iterdir()) + sorted(other.iterdir()):  # fed over HTTP, as a modality would
        _post(orthanc + "/instances", path.read_bytes())
    web = orthanc + "/dicom-web"

    out = io.StringIO()
    call_command("import_cases", web, "--dataset", "pacs", "--series-uid", UID, stdout=out)
    assert "imported 1, already present 0, failed 0" in out.getvalue()
    case = Case.objects.get()
    assert case.series_uid == UID and case.study_uid == "1.2.826.0.1.3680043.2.1125.1.1"
    assert case.source_format == "dicomweb" and case.source_path == f"{web}/studies/{case.study_uid}/series/{UID}"
    assert np.array_equal(read_voxels(case.ct_file.name), ct)
    report = import_cases(series, dataset="pacs")  # the same series from a folder: already there, by its UID
    assert report.ok and report.skipped == ["series"] and Case.objects.count() == 1

    out = io.StringIO()  # again, by query (CT series of the study): the imported one is already there
    call_command("import_cases", web, "--dataset", "pacs", "--study-uid", case.study_uid, "--modality", "CT",
                 stdout=out)
    assert "imported 1, already present 1, failed 0" in out.getvalue()
    assert set(Case.objects.values_list("series_uid", flat=True)) == {UID, UID + ".9"}
    out = io.StringIO()  # by study date range: both there already
    call_command("import_cases", web, "--dataset", "pacs", "--study-date", "20260101-20260131", stdout=out)
    assert "imported 0, already present 2, failed 0" in out.getvalue()

    label = np.zeros(ct.shape, dtype=np.uint8)
    label[3:9, 3:12, 1:6] = 5
    label_case(case, label, tmp_path)
    out = io.StringIO()
    call_command("export_dataset", str(tmp_path / "segs"), "--format", "dicom-seg", "--stow", web, stdout=out)
    assert "stored 1 DICOM SEG objects" in out.getvalue()
    with urllib.request.urlopen(f"{web}/studies/{case.study_uid}/series?Modality=SEG") as answer:
        found = json.loads(answer.read())
    assert len(found) == 1  # Orthanc accepted and indexed the SEG in the source's study

    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_cases", web, "--dataset", "pacs", "--series-uid", "1.2.3.4", stdout=io.StringIO(),
                     stderr=err)
    assert f"error: {web}: no series matches" in err.getvalue()
    with pytest.raises(CommandError):
        call_command("import_cases", web, "--dataset", "pacs", "--study-date", "20250101-20251231",
                     stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="--study-date: 'last week' is not a date"):
        call_command("import_cases", web, "--dataset", "pacs", "--study-date", "last week")
    with pytest.raises(CommandError, match="need a DICOMweb server"):
        call_command("import_cases", str(tmp_path / "series"), "--dataset", "pacs", "--series-uid", UID)
    assert Case.objects.count() == 2
