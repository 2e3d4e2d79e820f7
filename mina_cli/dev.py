"""`mina dev`: web, Socket.IO, worker threads and the scheduler in one process, embedded.

Everything lives in the data directory's SQLite database, so stopping the process at any moment
and starting it again completes every conversation: the embedded runtime takes back what was in
flight (chunks `processing`, tasks `running`) and queues it again.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable
from types import FrameType

import click
from rich.console import Console

from mina import conversations, languages
from mina.db import session_scope
from mina.settings import Settings, get_settings, reset_settings

log = logging.getLogger(__name__)


def _operator_token(settings: Settings) -> Settings:
    if settings.operator_token:
        return settings
    os.environ["MINA_OPERATOR_TOKEN"] = secrets.token_urlsafe(18)
    reset_settings()
    return get_settings()


def run_dev(settings: Settings) -> None:
    if not settings.embedded:
        raise click.ClickException(
            "mina dev runs everything in one process: unset MINA_BROKER_URL "
            "(use `mina web`, `mina worker` and `mina scheduler` with a broker)"
        )
    from api import create_app
    from mina_cli.runtime import embedded_runtime
    from mina_cli.serve import serve

    settings = _operator_token(settings)
    console = Console(stderr=True, soft_wrap=True)  # colour only on a terminal, never wrapped
    with embedded_runtime(settings, console) as svc:
        app = create_app(settings)
        stop_scheduler = _start_scheduler(settings)
        with session_scope() as session:
            language = languages.initial(None, settings)
            conv, token = conversations.create(session, "mina dev demo", language)
        _links(console, settings, f"/c/{conv.id}?token={token}")

        def _stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        try:
            serve(app, settings.host, settings.port)
        except KeyboardInterrupt:
            console.print("stopping: draining workers…")
        finally:
            stop_scheduler()
    log.info("mina dev stopped (%d worker threads drained)", svc.settings.worker_threads)
    sys.exit(0)


def _links(console: Console, settings: Settings, participant_path: str) -> None:
    """One link per line, unwrapped and with no markup inside it, so copy and paste works."""
    base = settings.base_url
    console.print(f"[bold]Mina dev[/] on {base}  (data in {settings.data_dir.resolve()})")
    for label, value in (
        ("participant page:", f"{base}{participant_path}"),
        ("dashboard:", f"{base}/dashboard"),
        ("operator token:", settings.operator_token or ""),
    ):
        console.print(f"{label:<18}", end="")
        console.print(value, markup=False, highlight=False, overflow="ignore", crop=False)
    console.print("Ctrl-C stops; in-flight work resumes at the next start.")


def _start_scheduler(settings: Settings) -> Callable[[], None]:
    """The scheduler's jobs on a background thread of this process."""
    from scheduler.service import start_background

    return start_background(settings)
