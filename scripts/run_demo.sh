#!/usr/bin/env bash
# Start a real Celery worker in the background, run round 0 of the loop on the demo phantoms when none exists yet
# (the shipped tiny checkpoints, briefly fine-tuned on the demo's labels, then inference and attention for every
# case), and serve the site in the foreground; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
DEMO_STEPS=${DEMO_STEPS:-20}
mkdir -p var/log
"$PY" -m celery -A atlas worker -Q default,gpu --concurrency 1 --loglevel INFO >var/log/worker.log 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null; wait $worker 2>/dev/null' EXIT INT TERM
echo "Celery worker started (pid $worker, log var/log/worker.log)"
if ! "$PY" manage.py start_round --if-none --steps "$DEMO_STEPS" --wait --timeout 1800; then
  echo "round 0 did not finish: see var/log/worker.log and python manage.py round_status; serving anyway" >&2
fi
echo "Atlas is at http://$HOST:$PORT/ (admin: /admin/, API: /api/, docs: /api/docs/)"
"$PY" -m gunicorn atlas.wsgi:application --bind "$HOST:$PORT" --workers 2 --timeout 120 --access-logfile -
