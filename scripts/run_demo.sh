#!/usr/bin/env bash
# Start a real Celery worker in the background and the web server in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
mkdir -p var/log
"$PY" -m celery -A atlas worker -Q default,gpu --concurrency 1 --loglevel INFO >var/log/worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM
echo "Celery worker started (pid $worker, log var/log/worker.log)"
echo "Atlas is at http://$HOST:$PORT/admin/ (API: http://$HOST:$PORT/api/, docs: http://$HOST:$PORT/api/docs/)"
"$PY" -m gunicorn atlas.wsgi:application --bind "$HOST:$PORT" --workers 2 --timeout 120 --access-logfile -
