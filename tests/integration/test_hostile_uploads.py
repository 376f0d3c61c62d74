"""Issue 23, against a real gunicorn with two workers sharing the test database: every payload class of the probe is
refused with a 4xx, nothing is stored, and the workers are the same processes afterwards (a SIGSEGV in a C++ parser,
or a request held past gunicorn's timeout, would replace one).

The payloads: NRRD headers naming a detached data file (another case's stored file, the server's database, `LIST`,
a FIFO), a header line of five thousand characters, a header of two million `key:=value` lines; deeply nested JSON on
the anonymous sign-in doors and in Slicer's `params`, an integer of 5,000 digits there, a seed of `inf`. Then a good
label whose header holds the thousand-character line that crashed ITK's reader lands.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from knox.models import AuthToken

from annotation.models import Revision
from tests.api.conftest import SHAPE, build_world
from tests.conftest import REPO, affine_for
from tests.integration.conftest import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> set[int]:
    """The process ids whose parent is pid (gunicorn's workers), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _request(url: str, *, method: str = "GET", body: bytes | None = None, headers: dict | None = None,
             timeout: float = 120) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _multipart(fields: dict[str, str], name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
             for key, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="label"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _nrrd(*lines: str, data: bytes = b"") -> bytes:
    """An NRRD header for a label on the test cases' grid (affine_for(), in NRRD's LPS), then data."""
    x, y, z = SHAPE
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_for()
    directions = " ".join("(" + ",".join(f"{v:g}" for v in lps[:3, k]) + ")" for k in range(3))
    origin = "(" + ",".join(f"{v:g}" for v in lps[:3, 3]) + ")"
    head = ["NRRD0004", "type: uint8", "dimension: 3", f"sizes: {x} {y} {z}", "space: left-posterior-superior",
            f"space directions: {directions}", f"space origin: {origin}", *lines]
    return ("\n".join(head) + "\n\n").encode() + data


@pytest.fixture
def server(tmp_path, settings):
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": database_url(), "ATLAS_MEDIA_ROOT": str(settings.MEDIA_ROOT),
           "ATLAS_VAR_DIR": str(django_settings.VAR_DIR)}
    log = open(tmp_path / "gunicorn.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "atlas.wsgi:application", "--bind",
                                f"127.0.0.1:{port}", "--workers", "2", "--timeout", "60"],
                               cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if _request(url + "/api/me/", timeout=5)[0] == 200 and len(_children(process.pid)) == 2:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"gunicorn did not start: {(tmp_path / 'gunicorn.log').read_text()[-2000:]}")
        yield url, process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_every_payload_class_is_refused_and_the_workers_survive(tmp_path, server):
    url, master = server
    world = build_world(tmp_path, {"mid": 30.0, "big": 50.0, "small": 10.0})
    _, token = AuthToken.objects.create(user=world.users["a1"])
    auth = {"Authorization": f"Bearer {token}"}
    status, body = _request(url + "/monailabel/activelearning/attention", method="POST", body=b"{}",
                            headers={**auth, "Content-Type": "application/json"})
    assert status == 200, body
    image_id = json.loads(body)["id"]
    workers = _children(master.pid)
    assert len(workers) == 2

    other_case = world.cases["mid"]  # not leased to a1: its files are 404 to them through the API
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    secret = Path(django_settings.MEDIA_ROOT) / other_case.ct_file.name
    database = Path(database_url().removeprefix("sqlite:///")) if database_url().startswith("sqlite") else secret
    x, y, z = SHAPE
    payloads = {
        "detached file (another case's CT)": _nrrd("encoding: raw", f"data file: {secret}"),
        "detached file (the database)": _nrrd("encoding: raw", f"data file: {database}"),
        "detached LIST": _nrrd("encoding: raw", "data file: LIST", data=f"{secret}\n".encode()),
        "detached file with byte skip": _nrrd("encoding: raw", "byte skip: -1", f"datafile: {secret}"),
        "detached FIFO": _nrrd("encoding: raw", f"data file: {fifo}"),
        "a 5,000-character line": _nrrd("encoding: raw", "content: " + "A" * 5000, data=bytes(x * y * z)),
        "two million key:=value lines": _nrrd("encoding: raw", *(f"k{i}:=v" for i in range(2_000_000)),
                                              data=bytes(x * y * z)),
    }
    for what, content in payloads.items():
        body, content_type = _multipart({"params": "{}"}, "label.nrrd", content)
        status, answer = _request(f"{url}/monailabel/datastore/label?image={image_id}&tag=final", method="PUT",
                                  body=body, headers={**auth, "Content-Type": content_type})
        assert status == 400, (what, status, answer[:300])
        detail = json.loads(answer)["detail"]
        assert detail.startswith("label: ") and str(secret) not in detail, (what, detail)

    deep = ("[" * 50_000 + "]" * 50_000).encode()
    for door in ("/api/auth/token/", "/monailabel/auth/token"):
        status, answer = _request(url + door, method="POST", body=deep, headers={"Content-Type": "application/json"})
        assert status == 400, (door, answer[:200])
    for params in (deep.decode(), '{"label_info": [{"name": "liver", "idx": ' + "9" * 5000 + "}]}"):
        body, content_type = _multipart({"params": params}, "label.nii.gz", b"\x1f\x8b")
        status, answer = _request(f"{url}/monailabel/datastore/label?image={image_id}", method="PUT", body=body,
                                  headers={**auth, "Content-Type": content_type})
        assert status == 400 and b"params" in answer, answer[:300]
    status, answer = _request(f"{url}/api/cases/{world.cases['big'].pk}/members/?organ=liver&box=0,0,0,5,5,5"
                              f"&seed=inf,0,0", headers={"Authorization": f"Token {token}"})
    assert status == 400 and b"seed" in answer, answer[:300]

    assert _children(master.pid) == workers, "a worker died or was replaced"
    assert master.poll() is None
    assert Revision.objects.count() == 0
    # and the door still works for a good label, with the 1,000-character line that crashed ITK's reader
    good = np.asarray(world.pseudo, dtype=np.uint8)
    body, content_type = _multipart({"params": "{}"}, "label.nrrd", _nrrd("encoding: raw", "content: " + "A" * 1000,
                                                                         data=good.tobytes(order="F")))
    status, answer = _request(f"{url}/monailabel/datastore/label?image={image_id}&tag=final", method="PUT", body=body,
                              headers={**auth, "Content-Type": content_type})
    assert status == 200, answer[:300]
    assert Revision.objects.count() == 1 and _children(master.pid) == workers
