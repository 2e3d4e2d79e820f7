"""Start-up shared by the commands: configuration checks, migrations, the embedded runtime."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from mina import db, languages, warm
from mina.errors import ConfigurationError, MinaError
from mina.repair import Repair
from mina.services import Services
from mina.settings import Settings
from mina.storage import build_storage
from mina_cli import migrate

log = logging.getLogger(__name__)


def check_configuration(settings: Settings) -> None:
    """Catch configuration errors at start, with a clear message, not mid-pipeline."""
    if settings.transcriber == "openai" and not settings.openai_api_key:
        raise ConfigurationError("MINA_TRANSCRIBER=openai needs MINA_OPENAI_API_KEY")
    if settings.language_provider == "openai" and not settings.openai_api_key:
        raise ConfigurationError("MINA_LANGUAGE_PROVIDER=openai needs MINA_OPENAI_API_KEY")
    if settings.transcriber == "assemblyai" and not settings.assemblyai_api_key:
        raise ConfigurationError("MINA_TRANSCRIBER=assemblyai needs MINA_ASSEMBLYAI_API_KEY")
    if settings.language not in ("auto", "en") and languages.english_only_model(settings):
        raise ConfigurationError(
            f"MINA_LANGUAGE={settings.language} needs a multilingual model: "
            f"MINA_WHISPER_MODEL={settings.whisper_model} knows English only (set base)"
        )
    if settings.language != "auto" and settings.language not in languages.CODES:
        raise ConfigurationError(f"MINA_LANGUAGE={settings.language!r} is not a language code")
    url = settings.broker_url
    if url and not url.startswith(("redis://", "rediss://", "amqp://", "amqps://")):
        raise ConfigurationError(f"MINA_BROKER_URL must be redis:// or amqp://, not {url!r}")
    try:
        db.configure(settings.resolved_database_url, settings)
        db.ping()
    except (SQLAlchemyError, OSError) as exc:
        where = _safe(settings.resolved_database_url)
        first = str(exc).splitlines()[0]
        raise ConfigurationError(f"database unreachable at {where}: {first}") from exc
    try:
        build_storage(settings).ping()
    except MinaError as exc:
        raise ConfigurationError(f"storage unreachable: {exc.message}") from exc


def _safe(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def prepare_database(settings: Settings) -> None:
    migrate.upgrade(settings.resolved_database_url)
    db.configure(settings.resolved_database_url, settings)


@contextmanager
def embedded_runtime(settings: Settings, console: Console | None = None) -> Iterator[Services]:
    """Migrated SQLite, worker threads on the StubBroker, resumed from the database."""
    from mina_cli.embedded import Embedded
    from workers.services import services

    check_configuration(settings)
    prepare_database(settings)
    runtime = Embedded(settings)
    runtime.start()
    svc = services()
    warm.start(settings)  # the model loads while the first chunk is on its way (if not yet)
    try:
        resumed = Repair(settings, svc.dispatcher, svc.storage).resume()
        if any(resumed.values()) and console is not None:
            console.print(f"resumed work left by a previous run: {resumed}")
        yield svc
    finally:
        runtime.stop()
