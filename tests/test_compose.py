"""docker-compose.yml and Dockerfile, checked by parsing them.

No Docker engine runs on the build machine, so `docker compose config` / `up` cannot run here. These tests
parse the files and check the stack's wiring instead, including that every environment variable the app
services set is one that atlas/settings.py reads (parsed from its source, so the two cannot drift apart).
No Django settings and no database are needed.
"""

import ast
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_PATH = ROOT / "docker-compose.yml"
DOCKERFILE_PATH = ROOT / "Dockerfile"
SETTINGS_PATH = ROOT / "atlas" / "settings.py"

APP_SERVICES = ("web", "worker", "gpu-worker")
ALL_SERVICES = ("postgres", "redis", *APP_SERVICES)
# Read from the environment by boto3 (S3 media through django-storages) and by torch, not by atlas/settings.py.
LIBRARY_ENV_NAMES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                     "PYTORCH_CUDA_ALLOC_CONF"}
GPU_ONLY_ENV = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)")
REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^}]*))?\}")


# ----------------------------------------------------------------------------------------------- helpers


def settings_env_names(source: str) -> set[str]:
    """Names atlas/settings.py reads: os.environ.get("X"...), os.environ["X"], os.getenv("X"), env_bool/env_list."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            func = ast.unparse(node.func)
            if func in {"os.environ.get", "os.getenv", "env_bool", "env_list"}:
                names.add(first.value)
        elif (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            names.add(node.slice.value)
    return names


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a mapping, whether written as a mapping or as a list of NAME=value."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def interpolate(value: str) -> str:
    """Compose-style ${VAR:-default} / ${VAR:?msg} with nothing set: defaults used, required ones a placeholder."""

    def repl(match: re.Match) -> str:
        name, op, arg = match.groups()
        if op == "-":
            return arg
        if op == "?":
            return f"required-{name.lower()}"
        return ""

    return INTERPOLATION.sub(repl, value)


def command_tokens(service: dict) -> list[str]:
    command = service.get("command")
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def command_text(service: dict) -> str:
    """The command as one shell string; an `sh -c "..."` wrapper is unwrapped."""
    tokens = command_tokens(service)
    if len(tokens) == 3 and tokens[0] in {"sh", "bash", "/bin/sh", "/bin/bash"} and tokens[1] == "-c":
        return tokens[2]
    return shlex.join(tokens)


def celery_worker(service: dict) -> dict:
    """Parse `celery -A atlas worker -Q queue ...` into app, subcommand and queues."""
    tokens = command_tokens(service)
    assert tokens and tokens[0] == "celery", f"not a celery command: {tokens}"
    app, queues, positional = None, [], []
    i = 1
    while i < len(tokens):
        token = tokens[i]
        if token in {"-A", "--app"}:
            app, i = tokens[i + 1], i + 2
            continue
        if token.startswith("--app="):
            app = token.split("=", 1)[1]
        elif token in {"-Q", "--queues"}:
            queues += tokens[i + 1].split(",")
            i += 2
            continue
        elif token.startswith("--queues="):
            queues += token.split("=", 1)[1].split(",")
        elif not token.startswith("-"):
            positional.append(token)
        i += 1
    return {"app": app, "subcommand": positional[:1], "queues": queues}


def volume_mounts(service: dict) -> dict[str, str]:
    """source -> target for the service's volumes, short ("src:dst[:mode]") or long syntax."""
    mounts = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) >= 2:
                mounts[parts[0]] = parts[1]
        else:
            mounts[entry.get("source")] = entry.get("target")
    return mounts


def env_name_problems(compose: dict, allowed: set[str]) -> list[str]:
    return [
        f"{name} ({svc})"
        for svc in APP_SERVICES
        for name in environment(compose["services"][svc])
        if name not in allowed
    ]


def literal_secret_problems(compose: dict) -> list[str]:
    """Environment entries with a secret-looking name whose value is not a ${...} reference."""
    problems = []
    for svc_name, service in compose["services"].items():
        for name, value in environment(service).items():
            if SECRET_NAME.search(name) and (value is None or not REFERENCE.match(value)):
                problems.append(f"{svc_name}.{name}={value!r}")
    return problems


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_PATH.is_file(), "docker-compose.yml is missing"
    data = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def settings_names() -> set[str]:
    names = settings_env_names(SETTINGS_PATH.read_text())
    # The parser must find what settings.py is known to read, or every check below would be vacuous.
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"} <= names, names
    return names


# ------------------------------------------------------------------------------------------------- tests


def test_five_services(services):
    for name in ALL_SERVICES:
        assert name in services, f"service {name!r} missing"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")


def test_web_migrates_then_runs_gunicorn(services):
    web = services["web"]
    text = command_text(web)
    assert "manage.py migrate" in text and "--noinput" in text
    assert re.search(r"gunicorn\s+atlas\.wsgi:application\b", text), text
    migrate_at, gunicorn_at = text.index("migrate"), text.index("gunicorn")
    assert migrate_at < gunicorn_at, "migrate must run before gunicorn"
    assert "&&" in text[migrate_at:gunicorn_at], "gunicorn must not start when migrate fails"
    assert "--bind 0.0.0.0:8000" in text
    assert any(str(port).split(":")[-1] == "8000" for port in web.get("ports", [])), web.get("ports")


@pytest.mark.parametrize(("service", "queue"), [("worker", "default"), ("gpu-worker", "gpu")])
def test_celery_workers_consume_their_queue(services, service, queue):
    parsed = celery_worker(services[service])
    assert parsed["app"] == "atlas"
    assert parsed["subcommand"] == ["worker"]
    assert parsed["queues"] == [queue]


def test_gpu_worker_reserves_nvidia_gpu_and_builds_cuda_torch(services):
    gpu = services["gpu-worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    nvidia = [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])]
    assert nvidia, devices
    count = nvidia[0].get("count", nvidia[0].get("device_ids"))
    assert count == "all" or (isinstance(count, int) and count >= 1) or isinstance(count, list), count
    assert "/cu" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    for cpu_service in ("web", "worker"):
        build = services[cpu_service].get("build")
        args = build.get("args", {}) if isinstance(build, dict) else {}
        assert "/cu" not in args.get("TORCH_INDEX_URL", ""), f"{cpu_service} should not pull CUDA torch"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_database_and_broker(services, service):
    env = environment(services[service])
    database = urlsplit(interpolate(env["DATABASE_URL"]))
    assert database.scheme in {"postgres", "postgresql"}
    assert database.hostname == "postgres"
    assert env["DATABASE_URL"].startswith("postgres://")
    broker = urlsplit(env["CELERY_BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"
    assert urlsplit(env["CELERY_RESULT_BACKEND"]).hostname == "redis"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_share_the_signin_cache_in_redis(services, service):
    """The sign-in gate's counters (annotation/signin.py) in one Redis database for every process, not in each
    process's default (the database cache would work too, but compose has Redis); a database of its own, since the
    cache's clear() empties its whole database and must not take the broker's queue or the results with it."""
    env = environment(services[service])
    cache = urlsplit(env.get("ATLAS_CACHE_URL") or "")
    assert cache.scheme == "redis" and cache.hostname == "redis", env.get("ATLAS_CACHE_URL")
    databases = {name: urlsplit(env[name]).path.strip("/") or "0"
                 for name in ("ATLAS_CACHE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")}
    assert len(set(databases.values())) == 3, databases


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_service_mounts_shared_media_at_media_root(compose, services, service):
    env = environment(services[service])
    mounts = volume_mounts(services[service])
    assert "media" in mounts, f"{service} does not mount the media volume: {mounts}"
    assert mounts["media"] == env["ATLAS_MEDIA_ROOT"] == "/data/media"
    assert "media" in (compose.get("volumes") or {}), "media volume not declared at top level"


def test_media_volume_is_the_same_everywhere(services):
    targets = {svc: volume_mounts(services[svc]).get("media") for svc in APP_SERVICES}
    assert len(set(targets.values())) == 1 and None not in targets.values(), targets


def test_all_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source in volume_mounts(service):
            if not source.startswith((".", "/", "~")):
                assert source in declared, f"{name} uses undeclared volume {source!r}"


@pytest.mark.parametrize("service", ("postgres", "redis"))
def test_backing_services_have_healthchecks(services, service):
    test = services[service]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    expected = "pg_isready" if service == "postgres" else "redis-cli ping"
    assert expected in text, text


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_wait_for_healthy_backends(services, service):
    depends = services[service]["depends_on"]
    assert isinstance(depends, dict), "depends_on must use the long form with conditions"
    for backend in ("postgres", "redis"):
        assert depends[backend]["condition"] == "service_healthy"


def test_no_literal_secrets(compose, services):
    assert literal_secret_problems(compose) == []
    for service in APP_SERVICES:
        env = environment(services[service])
        secret = REFERENCE.match(env["SECRET_KEY"])
        assert secret and secret["name"] == "SECRET_KEY" and secret["op"] == ":?", "SECRET_KEY must be required"
        password = urlsplit(env["DATABASE_URL"]).netloc.rpartition("@")[0].partition(":")[2]
        assert REFERENCE.match(password) and REFERENCE.match(password)["name"] == "POSTGRES_PASSWORD", password
        assert env["DEBUG"] in {"0", "false", "False"}
    pg_password = REFERENCE.match(environment(services["postgres"])["POSTGRES_PASSWORD"])
    assert pg_password and pg_password["name"] == "POSTGRES_PASSWORD"


def test_app_services_share_one_environment(services):
    """One environment; the GPU worker adds only torch's allocator setting."""
    web, worker, gpu = (environment(services[svc]) for svc in APP_SERVICES)
    assert web == worker == {name: value for name, value in gpu.items() if name not in GPU_ONLY_ENV}
    assert {name: gpu.get(name) for name in GPU_ONLY_ENV} == GPU_ONLY_ENV


@pytest.mark.parametrize("service", APP_SERVICES)
def test_training_and_inference_go_to_the_gpu_worker(services, service):
    """Every process that queues jobs sends the heavy ones to the `gpu` queue, which the GPU worker consumes."""
    value = interpolate(environment(services[service]).get("ATLAS_GPU_WORKERS") or "")  # nothing set: its default
    assert value.strip().lower() in {"1", "true", "yes", "on"}, value  # what settings.env_bool takes for true
    assert "ATLAS_GPU_WORKERS" in settings_env_names(SETTINGS_PATH.read_text())
    assert celery_worker(services["gpu-worker"])["queues"] == ["gpu"]


def test_gpu_worker_replaces_its_pool_process_now_and_then(services):
    tokens = command_tokens(services["gpu-worker"])
    limits = [tokens[i + 1] for i, token in enumerate(tokens[:-1]) if token == "--max-tasks-per-child"]
    limits += [token.split("=", 1)[1] for token in tokens if token.startswith("--max-tasks-per-child=")]
    assert len(limits) == 1 and int(limits[0]) >= 1, tokens


def test_every_env_name_is_read_by_settings(compose, settings_names):
    allowed = settings_names | LIBRARY_ENV_NAMES
    assert env_name_problems(compose, allowed) == [], "compose sets variables atlas/settings.py never reads"


def test_checks_detect_drift_and_literal_secrets(compose, settings_names):
    """The checkers above are not vacuous: they flag a misspelt name and a literal secret."""
    broken = yaml.safe_load(COMPOSE_PATH.read_text())
    for svc in APP_SERVICES:
        broken["services"][svc]["environment"] = {**environment(broken["services"][svc]), "DATABSE_URL": "x"}
    broken["services"]["worker"]["environment"]["SECRET_KEY"] = "hunter2"
    assert "DATABSE_URL (web)" in env_name_problems(broken, settings_names)
    assert literal_secret_problems(broken) == ["worker.SECRET_KEY='hunter2'"]


def test_dockerfile(services):
    assert DOCKERFILE_PATH.is_file(), "Dockerfile is missing"
    text = DOCKERFILE_PATH.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert instructions[0].startswith("FROM python:3.11-slim")
    assert any(re.match(r"ARG TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cpu\b", i) for i in instructions)
    assert "$TORCH_INDEX_URL" in text or "${TORCH_INDEX_URL}" in text, "TORCH_INDEX_URL is declared but unused"
    assert "requirements.txt" in text and "collectstatic --noinput" in text
    users = [i.split(None, 1)[1] for i in instructions if i.startswith("USER ")]
    assert users and users[-1] not in {"root", "0"}, "the image must end as a non-root user"
    entry = " ".join(i for i in instructions if i.startswith(("CMD", "ENTRYPOINT")))
    assert "gunicorn" in entry or "gunicorn" in command_text(services["web"])
    assert "atlas.wsgi:application" in entry
