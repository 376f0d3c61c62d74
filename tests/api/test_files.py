"""Local files and SQLite (issue 14, item 6): private modes, scratch under var/, reconcile_media, WAL and 503."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from annotation.services.media import reconcile_media
from annotation.storage import clean_scratch, scratch_dir, store_file
from tests.conftest import REPO


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _settings_process(var: Path, **env) -> dict:
    code = ("import json, tempfile, django; from django.conf import settings; django.setup(); "
            "from django.db import connection; connection.ensure_connection(); "
            "print(json.dumps({'upload_tmp': settings.FILE_UPLOAD_TEMP_DIR, 'tempdir': tempfile.gettempdir(), "
            "'journal': connection.cursor().execute('PRAGMA journal_mode').fetchone()[0] "
            "if connection.vendor == 'sqlite' else None}))")
    clean = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**clean, "DJANGO_SETTINGS_MODULE": "atlas.settings", "ATLAS_VAR_DIR": str(var),
                                 **env})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_secret_key_and_sqlite_database_are_private(tmp_path):
    var = tmp_path / "var"
    os.umask(0o022)
    found = _settings_process(var)
    assert _mode(var / "secret_key") == 0o600  # before: 0644, world-readable
    assert _mode(var / "atlas.sqlite3") == 0o600
    assert found["journal"] == "wal"
    # Files made by an older version are tightened.
    os.chmod(var / "secret_key", 0o644)
    os.chmod(var / "atlas.sqlite3", 0o644)
    key = (var / "secret_key").read_text()
    _settings_process(var)
    assert _mode(var / "secret_key") == 0o600 and _mode(var / "atlas.sqlite3") == 0o600
    assert (var / "secret_key").read_text() == key


def test_temporary_files_live_under_var_and_dead_processes_scratch_is_cleaned(tmp_path, settings):
    var = tmp_path / "var"
    found = _settings_process(var)
    assert Path(found["upload_tmp"]).parent == var / "tmp"  # Django's upload spooling: before, the system /tmp
    assert Path(found["tempdir"]) == Path(found["upload_tmp"])  # and every other tempfile of the process

    settings.ATLAS_SCRATCH_DIR = tmp_path / "scratch"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = tmp_path / "scratch" / f"pid{dead_pid}" / "upload-x"
    left.mkdir(parents=True)
    (left / "upload.nii.gz").write_bytes(b"half an upload")
    with scratch_dir("revision") as mine:
        assert mine.parent == tmp_path / "scratch" / f"pid{os.getpid()}"
        removed = clean_scratch()
        assert mine.is_dir()  # a live process's scratch is kept
    assert removed == [tmp_path / "scratch" / f"pid{dead_pid}"]
    assert not left.exists()


def test_the_test_process_itself_uses_var_for_tempfiles(settings):
    assert Path(tempfile.gettempdir()).is_relative_to(Path(settings.ATLAS_SCRATCH_DIR))


def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


@pytest.mark.django_db
def test_reconcile_media_lists_and_removes_orphans_but_never_a_named_file(world, settings, capsys):
    media = Path(settings.MEDIA_ROOT)
    case = world.cases["big"]
    # What a crash between writing a revision file and committing its row leaves: a file no row names.
    source = world.tmp / "orphan.nii.gz"
    source.write_bytes(b"x" * 100)
    orphan = store_file(f"{Path(case.ct_file.name).parent.as_posix()}/revisions/7.nii.gz", source)
    young = store_file("work/big/revisions/8.nii.gz", source)
    external = store_file("work/big/external/totalseg/label.nii.gz", source)  # named by convention, not by a row
    _age(media / orphan, hours=3)
    _age(media / external, hours=3)
    named = [case.ct_file.name, *(p.pseudo_label.name for p in case.predictions.all())]
    for name in named:
        _age(media / name, hours=3)
    missing = world.cases["small"]
    (media / missing.ct_file.name).unlink()

    report = reconcile_media()
    assert report.orphans == [orphan] and report.young == [young] and report.removed == []
    assert report.kept == [external]
    assert ("annotation.Case", missing.pk, "ct_file", missing.ct_file.name) in report.missing
    assert (media / orphan).exists()  # listing only

    call_command("reconcile_media", "--delete")
    out = capsys.readouterr().out
    assert f"removed: {orphan}" in out and f"missing: annotation.Case {missing.pk} ct_file" in out
    assert not (media / orphan).exists() and (media / young).exists() and (media / external).exists()
    assert all((media / name).exists() for name in named)  # named files are never removed
    assert reconcile_media(delete=True, grace=timedelta(0), now=timezone.now()).removed == [young]
    assert all((media / name).exists() for name in named)


@pytest.mark.django_db(transaction=True)
def test_a_locked_sqlite_database_answers_503_with_retry_after(tmp_path, settings):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's lock and busy timeout: the PostgreSQL pass has neither")
    from tests.api.conftest import build_world

    world = build_world(tmp_path, {"big": 5.0})
    assert connection.cursor().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()
    settings.DATABASES["default"]["OPTIONS"]["timeout"] = 0.2  # the busy timeout, short for the test
    connection.settings_dict["OPTIONS"]["timeout"] = 0.2
    holder = sqlite3.connect(connection.settings_dict["NAME"], timeout=5)
    holder.execute("BEGIN IMMEDIATE")  # another process's long write
    try:
        api = world.client("a1")
        response = api.get("/api/queue/")  # a read: WAL lets it through while the write lock is held
        assert response.status_code == 200
        api.raise_request_exception = False
        response = api.post("/api/tasks/next/")  # a write: waits the busy timeout, then 503 (before: 500)
        assert response.status_code == 503, response.content
        assert response["Retry-After"] == "2" and "busy" in response.json()["detail"]
    finally:
        holder.rollback()
        holder.close()
        connection.close()
        connection.settings_dict["OPTIONS"]["timeout"] = 30
    assert world.client("a1").post("/api/tasks/next/").status_code == 200
