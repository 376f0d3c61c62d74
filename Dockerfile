# Atlas image: web (gunicorn), CPU worker and GPU worker all run from this one Dockerfile.
#
# TORCH_INDEX_URL picks the torch build:
#   CPU (default):  docker build -t atlas:cpu .
#   CUDA:           docker build -t atlas:gpu --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
# The CUDA wheels bring their own CUDA runtime; the host needs only the NVIDIA driver and the
# NVIDIA Container Toolkit (see docs/deployment.md).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so that code changes do not reinstall them.
# torch alone from TORCH_INDEX_URL at the version requirements.txt pins (its wheel there is e.g.
# 2.13.0+cpu or 2.13.0+cu128, which satisfies the pin ==2.13.0), then everything else from PyPI;
# the second install keeps the torch already installed.
COPY requirements.txt ./
RUN TORCH_PIN="$(grep -E '^torch==' requirements.txt)" \
    && test -n "$TORCH_PIN" \
    && pip install --index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple "$TORCH_PIN" \
    && pip install -r requirements.txt

# Unprivileged user; /data/media is created here owned by it, so that a fresh named volume mounted
# there inherits that ownership.
RUN groupadd --system atlas \
    && useradd --system --gid atlas --home-dir /app --shell /usr/sbin/nologin atlas \
    && mkdir -p /data/media \
    && chown atlas:atlas /data/media

COPY --chown=atlas:atlas . .

# Static files are collected at build (STATIC_ROOT is var/static, served by WhiteNoise).
# The SECRET_KEY here exists only for this command and is not kept in the image.
RUN SECRET_KEY=collectstatic-build-only python manage.py collectstatic --noinput \
    && chown -R atlas:atlas /app/var

USER atlas

EXPOSE 8000

CMD ["gunicorn", "atlas.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
