"""Atlas settings. Everything comes from the environment; the defaults run embedded with no servers.

- DATABASE_URL: default SQLite file under var/.
- CELERY_BROKER_URL: default kombu's filesystem transport under var/broker/ (ATLAS_BROKER_DIR): a real worker,
  no server.
- CELERY_RESULT_BACKEND: default the broker's Redis when the broker is Redis, else files under var/.
- ATLAS_S3_BUCKET (+ ATLAS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): S3-compatible media;
  default local files under var/media/ (ATLAS_MEDIA_ROOT).
- SECRET_KEY, DEBUG, ALLOWED_HOSTS.
- Security: ATLAS_SECURE_COOKIES, ATLAS_HSTS_SECONDS, ATLAS_BEHIND_HTTPS_PROXY, ATLAS_TRUST_X_FORWARDED_FOR,
  ATLAS_TOKEN_TTL_HOURS, ATLAS_SIGNIN_* (see docs/deployment.md, "Security").
- ATLAS_CACHE_URL: the cache that sign-in counters share (redis://...); default the database (table atlas_cache).
- ATLAS_SCRATCH_DIR: temporary files (uploads, imports), default var/tmp/.
- ATLAS_MAX_VOLUME_BYTES: the most bytes one imported volume's voxels may take (default 4 GiB).
- ATLAS_DECODE_MEMORY_BYTES, ATLAS_DECODE_SECONDS, ATLAS_DECODE_REQUIRE_CONFINEMENT: DICOM is decoded (ITK / GDCM)
  in a child process with this address space (default 1 GiB + 2 x ATLAS_MAX_VOLUME_BYTES), this wall-clock and CPU
  time (default 300 s), confined by Landlock; with REQUIRE_CONFINEMENT a kernel without Landlock refuses to decode
  instead of going on with the limits alone (see ml_engine.io.sandbox).
- ATLAS_SQLITE_BUSY_TIMEOUT: seconds SQLite waits for a lock before the request gets 503.
- ATLAS_JOB_HEARTBEAT_SECONDS, ATLAS_JOB_STALE_SECONDS, ATLAS_JOB_MAX_ATTEMPTS: jobs whose worker died are queued
  again (see docs/deployment.md, "When a worker dies").
"""

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ATLAS_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def private_file(path: Path) -> Path:
    """Make sure path is readable by its owner only (0600): created so if absent, tightened if it was wider."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    return path


def _secret_key() -> str:
    """SECRET_KEY from the environment, else a random key kept in var/ (0600, never in the repository)."""
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if path.exists():
        private_file(path)
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    os.replace(tmp, path)
    return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "atlas.apps.AtlasConfig",
    "annotation",
]

MIDDLEWARE = [
    # Outermost, so that its headers (CSP, X-Frame-Options) reach WhiteNoise's responses too; it also answers a
    # locked SQLite database with 503 and Retry-After.
    "atlas.security.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # A body larger than its route allows is refused with 413 before a byte of it is read (uploads: the doors of
    # annotation.api.intake, ATLAS_MAX_UPLOAD_BYTES; anything else DATA_UPLOAD_MAX_MEMORY_SIZE). Before the CSRF
    # check, which would read a form's body.
    "annotation.api.intake.BodySizeLimit",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The sign-in gate's refusal raised in a non-DRF view (the admin's login) answers 429 with Retry-After.
    "annotation.signin.SignInRefusedMiddleware",
]

ROOT_URLCONF = "atlas.urls"
WSGI_APPLICATION = "atlas.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'atlas.sqlite3'}"),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
ATLAS_SQLITE_BUSY_TIMEOUT = float(os.environ.get("ATLAS_SQLITE_BUSY_TIMEOUT", "10"))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A real worker process shares the file with the web process. WAL: readers never wait for a writer, and a
    # writer waits up to the busy timeout for another; past it the request gets 503 with Retry-After.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": ATLAS_SQLITE_BUSY_TIMEOUT, "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    if DATABASES["default"]["NAME"] not in ("", ":memory:") and not str(DATABASES["default"]["NAME"]).startswith(
            "file:"):
        private_file(Path(DATABASES["default"]["NAME"]))  # the database holds password hashes: 0600
    # A file (not memory), so that a real worker process can share it; one per test run, so runs side by side
    # do not share one.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# The annotator workspace (frontend_static/dist, built by `make frontend`, committed): whitenoise serves it at the
# site root, index.html for "/".
WHITENOISE_ROOT = BASE_DIR / "frontend_static" / "dist"
WHITENOISE_INDEX_FILE = True

MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("ATLAS_MEDIA_ROOT", VAR_DIR / "media"))

S3_BUCKET = os.environ.get("ATLAS_S3_BUCKET", "")
if S3_BUCKET:
    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": os.environ.get("ATLAS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("ATLAS_S3_REGION") or None,
            "file_overwrite": False,
            "default_acl": None,
            # "path" for servers reached by IP or without wildcard DNS (MinIO, moto); default: boto3's choice
            "addressing_style": os.environ.get("ATLAS_S3_ADDRESSING_STYLE") or None,
        },
    }
else:
    _media_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",  # location: MEDIA_ROOT
    }
STORAGES = {
    "default": _media_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.api.session.SessionAuthentication",  # Django's session; the CSRF token in its header only
        "knox.auth.TokenAuthentication",  # hashed (SHA-512), expiring tokens; "Authorization: Token <key>"
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON under a depth limit and bounded numbers (annotation.api.parsing); bodies are bounded before they are read
    # (annotation.api.intake.BodySizeLimit: files only through the upload doors)
    "DEFAULT_PARSER_CLASSES": ["annotation.api.parsing.BoundedJSONParser", "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "annotation.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "atlas.security.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Atlas API",
    "DESCRIPTION": "Human-in-the-loop annotation of abdominal CT.",
    "VERSION": "0.1.0",
    # one name per choice set, so that the generated TypeScript types (frontend_static/src/api-schema.ts) are stable
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "annotation.models.Task.Status",
        "RoundStatusEnum": "annotation.models.Round.Status",
        "JobStatusEnum": "annotation.models.Job.Status",
        "JobKindEnum": "annotation.models.Job.Kind",
        "VerdictDecisionEnum": "annotation.models.Review.Decision",  # a review's decision, wherever it is shown
    },
    # Swagger UI from the pinned drf-spectacular-sidecar package, served locally: no CDN, no unpinned script.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Sign-in and tokens (annotation/api/auth.py).
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=float(os.environ.get("ATLAS_TOKEN_TTL_HOURS", "12"))),
    "AUTH_HEADER_PREFIX": "Token",
}
ATLAS_SIGNIN_FAILURES_PER_IP = int(os.environ.get("ATLAS_SIGNIN_FAILURES_PER_IP", "20"))
ATLAS_SIGNIN_FAILURES_PER_USER = int(os.environ.get("ATLAS_SIGNIN_FAILURES_PER_USER", "5"))
ATLAS_SIGNIN_WINDOW_SECONDS = int(os.environ.get("ATLAS_SIGNIN_WINDOW_SECONDS", "300"))
ATLAS_SIGNIN_CONCURRENCY = int(os.environ.get("ATLAS_SIGNIN_CONCURRENCY", "2"))
ATLAS_TRUST_X_FORWARDED_FOR = env_bool("ATLAS_TRUST_X_FORWARDED_FOR", False)
# Every password check goes through the sign-in gate (annotation/signin.py), the admin's login included.
AUTHENTICATION_BACKENDS = ["annotation.signin.GatedModelBackend"]
# The cache holds the gate's counters, shared by every process: Redis with ATLAS_CACHE_URL, else the database (table
# atlas_cache, created by `manage.py migrate`: annotation/migrations/0017_cache_table.py).
ATLAS_CACHE_URL = os.environ.get("ATLAS_CACHE_URL", "")
if ATLAS_CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": ATLAS_CACHE_URL,
                          "KEY_PREFIX": "atlas"}}
elif ATLAS_CACHE_URL:
    raise ImproperlyConfigured(f"ATLAS_CACHE_URL must be redis://... or rediss://..., not {ATLAS_CACHE_URL!r}")
else:
    # MAX_ENTRIES: past it Django culls a third of the rows, live counters too; each failing (IP, username) adds 4
    CACHES = {"default": {"BACKEND": "atlas.cache.DatabaseCache", "LOCATION": "atlas_cache",
                          "OPTIONS": {"MAX_ENTRIES": 100_000}}}

# Headers (atlas/security.py). The CSP lets the workspace run: its bundle, NiiVue's WebGL, blobs and data URLs it
# makes, and WebAssembly (blosc); nothing inline but styles, nothing from another origin.
ATLAS_CSP = os.environ.get("ATLAS_CSP", "; ".join([
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self' blob: data:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
]))
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Behind HTTPS only (docs/deployment.md, "Security"): secure cookies, HSTS, and the proxy's X-Forwarded-Proto.
ATLAS_SECURE_COOKIES = env_bool("ATLAS_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = ATLAS_SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = int(os.environ.get("ATLAS_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ATLAS_HSTS_INCLUDE_SUBDOMAINS", False)
if env_bool("ATLAS_BEHIND_HTTPS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("ATLAS_SSL_REDIRECT", False)

# Celery: embedded default is kombu's filesystem transport, so a real worker runs with no server.
BROKER_DIR = Path(os.environ.get("ATLAS_BROKER_DIR", VAR_DIR / "broker"))
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    _default_backend = f"file://{VAR_DIR / 'celery-results'}"
    (VAR_DIR / "celery-results").mkdir(parents=True, exist_ok=True)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    _default_backend = CELERY_BROKER_URL
else:
    _default_backend = "rpc://"
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", _default_backend)
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("ATLAS_DEFAULT_QUEUE", "default")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Import: upper bound on one uncompressed volume, against decompression bombs (bytes).
ATLAS_MAX_VOLUME_BYTES = int(os.environ.get("ATLAS_MAX_VOLUME_BYTES", str(4 * 1024**3)))
# DICOM decoding in a sandboxed child (ml_engine.io.sandbox): its address space (unset: 1 GiB + 2 x the volume bound;
# a 512 x 512 x 300 int16 series needs 560 MiB), its wall-clock and CPU seconds, and whether Landlock is required.
ATLAS_DECODE_MEMORY_BYTES = int(os.environ.get("ATLAS_DECODE_MEMORY_BYTES") or 0) or None
ATLAS_DECODE_SECONDS = float(os.environ.get("ATLAS_DECODE_SECONDS", "300"))
ATLAS_DECODE_REQUIRE_CONFINEMENT = env_bool("ATLAS_DECODE_REQUIRE_CONFINEMENT", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
}

# Annotation workflow.
ATLAS_LEASE_MINUTES = float(os.environ.get("ATLAS_LEASE_MINUTES", "30"))
ATLAS_MAX_UPLOAD_BYTES = int(os.environ.get("ATLAS_MAX_UPLOAD_BYTES", str(512 * 1024**2)))
ATLAS_MINUTES_PER_CASE = float(os.environ.get("ATLAS_MINUTES_PER_CASE", "15"))  # the paper's estimate
ATLAS_HOURS_PER_DAY = float(os.environ.get("ATLAS_HOURS_PER_DAY", "8"))
# MONAI Label protocol (3D Slicer): how long the image link handed out by /monailabel/activelearning/ opens the CT
# to a request without an auth header (Slicer downloads with none); its lease holder only.
ATLAS_MONAILABEL_LINK_MINUTES = float(os.environ.get("ATLAS_MONAILABEL_LINK_MINUTES", "10"))
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024**2  # larger uploads stream to a temporary file, under ATLAS_SCRATCH_DIR
# Temporary files (uploads, imports, remote media copies): one folder per process under var/tmp/, removed once
# its process is gone (annotation.storage.clean_scratch, at web and worker start).
ATLAS_SCRATCH_DIR = Path(os.environ.get("ATLAS_SCRATCH_DIR", VAR_DIR / "tmp"))
FILE_UPLOAD_TEMP_DIR = str(ATLAS_SCRATCH_DIR / f"pid{os.getpid()}")
Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
# Every tempfile of this process (Django's upload spooling, the services' staging folders, a worker's inference
# scratch) goes there too, not to the system /tmp; forked pool processes share their parent's folder.
tempfile.tempdir = FILE_UPLOAD_TEMP_DIR

# Rounds: training and inference go to the GPU queue when GPU workers exist (ATLAS_GPU_WORKERS=1).
ATLAS_GPU_WORKERS = env_bool("ATLAS_GPU_WORKERS", False)
# How a worker runs the members on the CPU: "torch" (default) or "openvino" (converted once per worker process, then
# about 2 x faster sliding windows: docs/benchmarks.md). Checked when the worker builds its Predictor.
ATLAS_CPU_RUNTIME = os.environ.get("ATLAS_CPU_RUNTIME", "torch")
# The workspace's click tool (annotation.ml_adapter.interactive): cases whose CT a web process keeps open between
# clicks (the oldest evicted; a 512 x 512 x 300 CT is 150 MiB), their bytes at most, clicks computed at once (the
# rest wait up to ATLAS_INTERACTIVE_WAIT seconds, then hear 503 "busy"), and which engine the page offers first.
ATLAS_INTERACTIVE_SESSIONS = int(os.environ.get("ATLAS_INTERACTIVE_SESSIONS", "4"))
ATLAS_INTERACTIVE_MAX_BYTES = int(os.environ.get("ATLAS_INTERACTIVE_MAX_BYTES", str(1024**3)))
ATLAS_INTERACTIVE_SLOTS = int(os.environ.get("ATLAS_INTERACTIVE_SLOTS", "1"))
ATLAS_INTERACTIVE_WAIT = float(os.environ.get("ATLAS_INTERACTIVE_WAIT", "10"))
# torch threads of the click model on the CPU (the web process's; 0: torch's default)
ATLAS_INTERACTIVE_THREADS = int(os.environ.get("ATLAS_INTERACTIVE_THREADS", "1"))
# A registered nnInteractive engine (manage.py register_interactive): its AutoZoom (on, as in nnInteractive's own
# viewers: the prediction's window grows up to 4 x its patch while the object reaches its border).
ATLAS_NNINTERACTIVE_AUTOZOOM = env_bool("ATLAS_NNINTERACTIVE_AUTOZOOM", True)
if ATLAS_CPU_RUNTIME not in ("torch", "openvino"):
    raise ImproperlyConfigured(f"ATLAS_CPU_RUNTIME must be torch or openvino, got {ATLAS_CPU_RUNTIME!r}")
ATLAS_GPU_QUEUE = os.environ.get("ATLAS_GPU_QUEUE", "gpu")
# How a job reaches a worker (annotation.services.dispatch): a dotted path to a function of one Job.
ATLAS_JOB_ENQUEUE = os.environ.get("ATLAS_JOB_ENQUEUE", "annotation.services.dispatch.send_to_worker")
# Jobs whose worker died (annotation.services.reaper): the worker running a job refreshes its heartbeat every
# ATLAS_JOB_HEARTBEAT_SECONDS, and every worker looks as often for running jobs not heard of for
# ATLAS_JOB_STALE_SECONDS, which it queues again; a job claimed ATLAS_JOB_MAX_ATTEMPTS times fails instead (and its
# round with it).
ATLAS_JOB_HEARTBEAT_SECONDS = float(os.environ.get("ATLAS_JOB_HEARTBEAT_SECONDS", "10"))
ATLAS_JOB_STALE_SECONDS = float(os.environ.get("ATLAS_JOB_STALE_SECONDS", "120"))
ATLAS_JOB_MAX_ATTEMPTS = int(os.environ.get("ATLAS_JOB_MAX_ATTEMPTS", "3"))
if not 0 < 3 * ATLAS_JOB_HEARTBEAT_SECONDS <= ATLAS_JOB_STALE_SECONDS:
    raise ImproperlyConfigured(f"ATLAS_JOB_STALE_SECONDS ({ATLAS_JOB_STALE_SECONDS:g}) must be at least three "
                               f"heartbeats (ATLAS_JOB_HEARTBEAT_SECONDS = {ATLAS_JOB_HEARTBEAT_SECONDS:g}, above 0)")
if ATLAS_JOB_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured(f"ATLAS_JOB_MAX_ATTEMPTS must be at least 1, got {ATLAS_JOB_MAX_ATTEMPTS}")
