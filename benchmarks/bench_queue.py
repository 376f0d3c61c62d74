"""Queue latency under load: POST /api/tasks/next/ and revision uploads against a real server on PostgreSQL.

Setup: a fresh database `atlas_bench` (dropped first if it exists, and at the end unless --keep), migrated by
`manage.py migrate` in a subprocess, then filled with bulk inserts at AbdomenAtlas-8K's size: 8,448 cases of
32 x 32 x 16 voxels, one round (number 0, annotating), a Prediction per case (all pointing at one small
pseudo-label NIfTI in a temporary media folder), 8,448 x 9 OrganAttention rows with random sizes, tasks from
`rebuild_tasks`, and 20 annotators. gunicorn (gthread) serves the project; each client thread logs in for its
own token and loops: next -> upload a revision of the leased task with its base_revision -> GET /api/queue/.

Measured: p50 / p99 latency of next, of the upload, and of GET /api/queue/ (the baseline: a minimal
authenticated endpoint, measured in the same loop under the same load, so next / baseline shows what the
queue itself costs), and the number of tasks leased to two different clients (must be 0), found from what the
clients received (and cross-checked against the revisions in the database).

    .venv/bin/python benchmarks/bench_queue.py [--clients 20] [--seconds 60] [--cycles 0] [--think 0] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DB_NAME = "atlas_bench"
SHAPE = (32, 32, 16)
SPACING = (1.5, 1.5, 3.0)
PASSWORD = "bench-annotator-pw-8448"
ENDPOINTS = {"next": "POST /api/tasks/next/", "upload": "POST /api/tasks/{id}/revisions/",
             "baseline": "GET /api/queue/ (baseline)"}


def recreate_database(server: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        if not drop_only:
            conn.execute(f"CREATE DATABASE {DB_NAME}")


def populate(n_cases: int, n_clients: int, seed: int) -> int:
    """Fill the migrated database with bulk inserts; returns the number of tasks."""
    from django.conf import settings

    from annotation.models import Case, Dataset, LabelSet, Organ, OrganAttention, Prediction, Round
    from annotation.services.queue import rebuild_tasks
    from annotation.services.users import create_user
    from ml_engine.io import write_nifti

    rng = np.random.default_rng(seed)
    affine = np.diag([*SPACING, 1.0])
    pseudo_label = "bench/pseudo_label.nii.gz"
    write_nifti(Path(settings.MEDIA_ROOT) / pseudo_label, rng.integers(0, 10, SHAPE, dtype=np.uint8), affine,
                dtype=np.uint8)
    label_set = LabelSet.objects.get(name="abdomenatlas")
    organs = list(Organ.objects.filter(label_set=label_set).order_by("value"))
    dataset = Dataset.objects.create(name="bench", label_set=label_set)
    cases = Case.objects.bulk_create([
        Case(dataset=dataset, name=f"case_{i:05d}", ct_file=f"bench/case_{i:05d}/ct.nii.gz", shape=list(SHAPE),
             spacing=list(SPACING), affine=affine.tolist(), dtype="int16", checksum=f"{i:064x}",
             source_format="nifti") for i in range(n_cases)], batch_size=2000)
    round_ = Round.objects.create(number=0, status=Round.Status.ANNOTATING,
                                    label_set=LabelSet.objects.get(name="abdomenatlas"))
    Prediction.objects.bulk_create([Prediction(case=c, round=round_, pseudo_label=pseudo_label) for c in cases],
                                   batch_size=2000)
    voxel_ml = float(np.prod(SPACING)) / 1000
    sizes = rng.lognormal(mean=1.0, sigma=1.5, size=(n_cases, len(organs)))
    OrganAttention.objects.bulk_create([
        OrganAttention(case=case, round=round_, organ=organ, size_ml=float(ml), voxels=int(ml / voxel_ml),
                       hotspots=[{"voxels": int(ml / voxel_ml), "ml": float(ml), "centroid": [16, 16, 8],
                                  "bbox": [[10, 10, 4], [22, 22, 12]]}])
        for case, row in zip(cases, sizes, strict=True) for organ, ml in zip(organs, row, strict=True)],
        batch_size=5000)
    n_tasks = rebuild_tasks(round=round_)
    for i in range(n_clients):
        create_user(username=f"annotator{i:02d}", role="annotator", password=PASSWORD)
    return n_tasks


class Http:
    """One keep-alive connection; a request dropped by a closed idle connection is retried once."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        for attempt in range(2):
            try:
                start = time.perf_counter()
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                return response.status, data, (time.perf_counter() - start) * 1000
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")


def start_server(env: dict[str, str], log: Path, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    """gunicorn on a free port; returns once it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "atlas.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers",
             str(workers), "--threads", str(threads), "--worker-class", "gthread", "--timeout", "120"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and server.poll() is None:
        try:
            Http(port).request("GET", "/api/queue/")
            return server, port
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"gunicorn did not answer; its log:\n{log.read_text(errors='replace')[-3000:]}")


def multipart(fields: dict[str, str], content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="label.nii.gz"\r\n'
                 f"Content-Type: application/gzip\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@dataclass
class Client:
    username: str
    token: str = ""
    ms: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in ENDPOINTS})
    leased: list[int] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    cycles: int = 0
    emptied: bool = False
    failure: str = ""

    def login(self, port: int) -> None:
        body = json.dumps({"username": self.username, "password": PASSWORD}).encode()
        status, data, _ = Http(port).request("POST", "/api/auth/token/", body, {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"login of {self.username}: HTTP {status} {data[:200]!r}")
        self.token = json.loads(data)["token"]

    def run(self, port: int, label: bytes, start: threading.Barrier, deadline: list[float], cycles: int,
            warmup: int, think: float = 0.0, seed: int = 0) -> None:
        """next -> upload -> GET /api/queue/ until the deadline, `cycles` counted cycles, or an empty queue.

        think: mean seconds (exponential) a client pauses after next and after the upload, as an annotator looks
        at the case before submitting; 0 is a closed loop with no pause.
        """
        http_, auth = Http(port), {"Authorization": f"Token {self.token}"}
        rng = np.random.default_rng(seed)

        def pause() -> None:
            if think > 0:
                time.sleep(min(float(rng.exponential(think)), 10 * think))
        start.wait()
        try:
            while time.monotonic() < deadline[0] and not (cycles and self.cycles >= cycles + warmup):
                keep = self.cycles >= warmup
                status, data, ms = http_.request("POST", "/api/tasks/next/", headers=auth)
                if status == 204:
                    self.emptied = True
                    return
                if status != 200:
                    self.errors[f"next {status}"] += 1
                    continue
                task = json.loads(data)
                self.leased.append(task["id"])
                self.record("next", keep, status, 200, ms)
                pause()
                fields = {"seconds_spent": "1.0"}
                if task["base_revision"] is not None:
                    fields["base_revision"] = str(task["base_revision"])
                body, content_type = multipart(fields, label)
                status, _, ms = http_.request("POST", f"/api/tasks/{task['id']}/revisions/", body,
                                              {**auth, "Content-Type": content_type})
                self.record("upload", keep, status, 201, ms)
                pause()
                status, _, ms = http_.request("GET", "/api/queue/", headers=auth)
                self.record("baseline", keep, status, 200, ms)
                self.cycles += 1
        except Exception as exc:  # reported by the main thread
            self.failure = f"{type(exc).__name__}: {exc}"

    def record(self, name: str, keep: bool, status: int, expected: int, ms: float) -> None:
        if status != expected:
            self.errors[f"{name} {status}"] += 1
        elif keep:
            self.ms[name].append(ms)


def report(clients: list[Client], elapsed: float, load: list[tuple[float, ...]], db_twice: int) -> None:
    ms = {name: np.array([v for c in clients for v in c.ms[name]]) for name in ENDPOINTS}
    holders: dict[int, set[str]] = defaultdict(set)
    for client in clients:
        for task_id in client.leased:
            holders[task_id].add(client.username)
    twice = sum(1 for names in holders.values() if len(names) > 1)
    errors = sum((c.errors for c in clients), Counter())
    cycles = sum(c.cycles for c in clients)
    print(f"\n{len(clients)} clients, {elapsed:.1f} s, {cycles} cycles ({cycles / elapsed:.1f} / s), "
          f"{len(holders)} distinct tasks leased")
    print("load average (1, 5, 15 min) before " + ", after ".join(" ".join(f"{x:.2f}" for x in v) for v in load))
    if errors:
        print(f"non-success answers: {dict(errors)}")
    for client in (c for c in clients if c.failure):
        print(f"{client.username} failed: {client.failure}")
    print(f"tasks leased to two different clients: {twice} (database: {db_twice} tasks revised by two authors)")
    if any(ms[name].size == 0 for name in ENDPOINTS):
        print("too few measurements for figures: run longer or with fewer warm-up cycles")
        return
    print(f"\n{'endpoint':<34}{'n':>7}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    p = {name: np.percentile(ms[name], [50, 90, 99]) for name in ENDPOINTS}
    for name, label in ENDPOINTS.items():
        print(f"{label:<34}{ms[name].size:>7}" + "".join(f"{x:>10.1f}" for x in [*p[name], ms[name].max()]))
    print()
    for name in ("next", "upload"):
        print(f"ratio {name} / baseline: p50 {p[name][0] / p['baseline'][0]:.2f}, "
              f"p99 {p[name][2] / p['baseline'][2]:.2f}")
    print(f"goal p99 of next < 100 ms: {'met' if p['next'][2] < 100 else 'NOT met'} ({p['next'][2]:.1f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--cases", type=int, default=8448)
    parser.add_argument("--seconds", type=float, default=60, help="stop the clients after this long")
    parser.add_argument("--cycles", type=int, default=0, help="or after this many counted cycles each (0: none)")
    parser.add_argument("--warmup", type=int, default=2, help="first cycles of each client, not counted")
    parser.add_argument("--think", type=float, default=0.0,
                        help="mean pause (s, exponential) after next and after each upload; 0: none (closed loop)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432", help="PostgreSQL, no database")
    parser.add_argument("--seed", type=int, default=8448)
    parser.add_argument("--keep", action="store_true", help="keep the database and the media folder")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    env = {**os.environ, "DATABASE_URL": f"{args.server}/{DB_NAME}", "ATLAS_VAR_DIR": str(tmp / "var"),
           "ATLAS_MEDIA_ROOT": str(tmp / "media"), "SECRET_KEY": uuid.uuid4().hex * 2, "DEBUG": "0",
           "ALLOWED_HOSTS": "127.0.0.1,localhost", "DJANGO_SETTINGS_MODULE": "atlas.settings"}
    server: subprocess.Popen | None = None
    try:
        print(f"machine: {os.cpu_count()} CPU cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"gunicorn gthread {args.workers} workers x {args.threads} threads; think time {args.think} s; "
              f"DATABASE_CONN_MAX_AGE={env.get('DATABASE_CONN_MAX_AGE', '0')}")
        started = time.perf_counter()
        recreate_database(args.server)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=REPO, env=env,
                       check=True)
        os.environ.update(env)
        import django

        django.setup()
        from django.db import connection, connections
        from django.db.models import Count

        from annotation.models import Revision
        from ml_engine.io import write_nifti

        n_tasks = populate(args.cases, args.clients, args.seed)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        connections.close_all()
        print(f"setup: {args.cases} cases, {n_tasks} tasks, {args.cases * 9} attention rows, "
              f"{args.clients} annotators in {time.perf_counter() - started:.1f} s")

        server, port = start_server(env, tmp / "gunicorn.log", args.workers, args.threads)
        clients = [Client(f"annotator{i:02d}") for i in range(args.clients)]
        for client in clients:
            client.login(port)
        upload = np.random.default_rng(args.seed + 1).integers(0, 10, SHAPE, dtype=np.uint8)
        label = write_nifti(tmp / "upload.nii.gz", upload, np.diag([*SPACING, 1.0]), dtype=np.uint8).read_bytes()
        barrier, deadline = threading.Barrier(args.clients + 1), [float("inf")]
        threads = [threading.Thread(target=c.run, args=(port, label, barrier, deadline, args.cycles, args.warmup,
                                                        args.think, args.seed + i), daemon=True)
                   for i, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        load = [os.getloadavg()]
        deadline[0] = time.monotonic() + args.seconds
        barrier.wait()
        begun = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - begun
        load.append(os.getloadavg())
        db_twice = Revision.objects.values("task").annotate(n=Count("author", distinct=True)).filter(n__gt=1).count()
        connections.close_all()
        report(clients, elapsed, load, db_twice)
        if any(c.emptied for c in clients):
            print("note: the queue ran empty before the end")
        return 0
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if "django.db" in sys.modules:
            sys.modules["django.db"].connections.close_all()
        if args.keep:
            print(f"kept: database {DB_NAME}, media and logs in {tmp}")
        else:
            recreate_database(args.server, drop_only=True)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
