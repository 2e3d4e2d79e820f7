#!/usr/bin/env bash
# Refreshes the README's images (docs/img/participant.png, docs/img/dashboard.png) from the two
# browser tests that end on those screens. `bash scripts/test.sh` writes its screenshots to a
# temporary folder and never touches docs/img. Needs what scripts/test.sh sets up (run it once):
# .venv, chromium, PostgreSQL and Redis on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PATH="$ROOT/.venv/bin:$PATH"

DB="mina_shots_$$_$(date +%s)"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
cleanup() { psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
export MINA_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB"
export MINA_TEST_SCREENSHOTS="$ROOT/docs/img"

python -m pytest -q -p no:cacheprovider tests/browser/test_pages.py \
  -k "test_participant_uploads_a_file_and_sees_the_reveal or test_dashboard_is_live" "$@"
ls -l docs/img/participant.png docs/img/dashboard.png
