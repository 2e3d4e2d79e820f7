"""`mina doctor` as a person runs it: each part ok / warning / error, with the fix, and its exit
status. Real model, real ffmpeg and espeak-ng, real PostgreSQL and Redis."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REDIS_URL


def doctor(tmp_path: Path, path: str | None = None, **env: str) -> tuple[int, dict[str, str]]:
    """Run `mina doctor` with only the given `MINA_*`; returns its status and line per part."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
    base.update(MINA_DATA_DIR=str(tmp_path / "data"), **env)
    if path is not None:
        base["PATH"] = path
    done = subprocess.run(
        [sys.executable, "-m", "mina_cli", "doctor"], env=base, capture_output=True, timeout=120
    )
    out = done.stdout.decode()
    assert "\x1b[" not in out, out  # no colour codes when the output is not a terminal
    parts: dict[str, str] = {}
    name = ""
    for line in out.splitlines():
        found = re.match(r"(ok|warning|error)\s+([^:]+): (.*)", line)
        if found:
            name = found.group(2)
            parts[name] = f"{found.group(1)}: {found.group(3)}"
        elif line.strip().startswith("fix:"):
            parts[name] += " | " + line.strip()
    assert re.search(r"\d+ ok, \d+ warning\(s\), \d+ error\(s\)", out), out
    return done.returncode, parts


def test_doctor_on_the_embedded_defaults_loads_the_model_and_hears_speech(tmp_path: Path) -> None:
    code, parts = doctor(tmp_path)
    assert code == 0, parts
    assert all(p.startswith("ok") for p in parts.values()), parts
    assert re.search(r"heard '.*(hello|test).*'", parts["whisper model"], flags=re.I), parts
    assert re.match(r"ok: version \S+, libopus encoder present", parts["ffmpeg"]), parts
    assert "mina dev" in parts["operator token"]


def test_doctor_warns_when_a_deployment_has_no_operator_token(tmp_path: Path) -> None:
    code, parts = doctor(
        tmp_path,
        MINA_BROKER_URL=REDIS_URL,
        MINA_DATABASE_URL=os.environ["MINA_DATABASE_URL"],
        MINA_TRANSCRIBER="simulated",
    )
    assert code == 0, parts  # a warning does not fail
    assert parts["operator token"].startswith("warning: unset"), parts
    assert "fix: set MINA_OPERATOR_TOKEN" in parts["operator token"]
    assert parts["redis"].startswith("ok"), parts
    assert parts["transcriber"].startswith("ok: simulated"), parts


def test_doctor_names_each_broken_part_with_its_fix_and_fails(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    code, parts = doctor(
        tmp_path,
        path=str(empty),  # no ffmpeg, no espeak-ng
        MINA_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nothing",
        MINA_BROKER_URL="redis://127.0.0.1:1/0",
        MINA_WHISPER_MODEL_PATH=str(tmp_path / "no-model"),
        MINA_OPERATOR_TOKEN="set-here",
    )
    assert code == 1, parts
    assert parts["database"].startswith("error:") and "fix: start the database" in parts["database"]
    assert parts["redis"].startswith("error:") and "fix: start Redis" in parts["redis"]
    assert parts["ffmpeg"] == (
        "error: ffmpeg or ffprobe is not on PATH | fix: install ffmpeg with libopus "
        "(Debian: apt-get install ffmpeg)"
    )
    assert parts["whisper model"].startswith("error:"), parts
    assert "MINA_WHISPER_MODEL_PATH" in parts["whisper model"]
    assert parts["operator token"] == "ok: set"


def test_doctor_refuses_a_language_the_model_does_not_know(tmp_path: Path) -> None:
    code, parts = doctor(tmp_path, MINA_LANGUAGE="es", MINA_TRANSCRIBER="simulated")
    assert code == 0, parts  # a simulated transcriber takes any language
    code, parts = doctor(tmp_path, MINA_LANGUAGE="es", MINA_WHISPER_MODEL="tiny.en")
    assert code == 1, parts
    assert parts["configuration"].startswith("error: MINA_LANGUAGE=es needs a multilingual model")
