# The README's two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-nninteractive.txt | cksum | cut -d' ' -f1)
# MONAI Label's stock Python client (monailabel/client/: the standard library and requests only) drives the
# /monailabel/ tests; its package's dependencies (its own torch, monai, fastapi...) are not installed.
MONAILABEL_CLIENT := monailabel==0.8.5
# nnInteractive (optional engine, requirements-nninteractive.txt) for its tests: its inference imports come with
# requirements.txt (nnunetv2), so --no-deps leaves out only its server's packages and never touches torch.
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv test lint demo serve worker clean frontend frontend-test chromium orthanc schema quick

$(STAMP): requirements.txt requirements-dev.txt requirements-nninteractive.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps $(MONAILABEL_CLIENT)
	$(PY) -m pip install --quiet --no-deps -r requirements-nninteractive.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .

test: venv lint frontend-test chromium orthanc
	$(PY) -m pytest

# A quick subset while developing (no training, no browser, no worker process): under a minute on 2 cores.
quick: venv
	$(PY) -m pytest -q -m "not slow and not browser and not integration"

# The browser tests drive Debian's Chromium (never Playwright's download). Installed when missing and apt-get is
# there (as root, or with sudo); otherwise the browser tests skip and say why (ATLAS_REQUIRE_BROWSER=1 fails them).
chromium:
	@test -x /usr/bin/chromium || ! command -v apt-get >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    $$SUDO apt-get install -y -qq chromium >/dev/null; } || echo "chromium could not be installed"

# The DICOMweb tests run a real Orthanc with its DICOMweb plugin (Debian's packages), started by the test on a free
# port. Installed when missing and apt-get is there; otherwise those tests skip and say why (ATLAS_REQUIRE_ORTHANC=1
# fails them).
orthanc:
	@{ test -x /usr/sbin/Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so; } || \
	  ! command -v apt-get >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null; } || \
	  echo "orthanc could not be installed"

# The API's OpenAPI schema, which the frontend's types are generated from (frontend_static/src/api-schema.ts), then
# the bundle: run after changing a serializer or an endpoint (tests/api/test_schema.py says when).
schema: venv
	$(PY) manage.py spectacular --file frontend_static/openapi.yml
	$(MAKE) frontend

# The frontend's own checks, with the machine's Node and npm (packages from the lockfile): ESLint (typescript-eslint with
# type information, React's rules of hooks) and the Vitest unit tests of the viewer's pure code (frontend_static/tests).
frontend-test:
	cd frontend_static && npm ci --no-audit --no-fund --include=dev && npm run lint && npm run test:unit

# Rebuild the annotator workspace bundle (frontend_static/dist, committed) with the machine's Node and npm.
frontend:
	cd frontend_static && npm ci --no-audit --no-fund && npm run build

demo: venv
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py collectstatic --noinput -v 0
	$(PY) manage.py seed_demo
	HOST=$(HOST) PORT=$(PORT) PY=$(PY) scripts/run_demo.sh

clean:
	rm -rf var
