"""`mina`: db upgrade, web, worker, scheduler, process, dev, doctor."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from mina.errors import ConfigurationError, MinaError
from mina.settings import Settings, get_settings, reset_settings

log = logging.getLogger("mina")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise click.ClickException(f"bad configuration: {exc}") from exc


class _Commands(click.Group):
    """The commands, with `search` imported only when it is asked for (or listed by --help):
    its imports (the meeting memory, SQLAlchemy, results, seams, scipy: ~0.5-1 s) came before
    any command ran, so `mina process` started loading its model and cutting its files that
    much later."""

    LAZY = {"search": ("mina_cli.search", "search_command")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY:
            module, name = self.LAZY[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), name)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="log progress to stderr")
def main(verbose: bool) -> None:
    """Mina: meeting audio in, transcript, analytics, action items and summary out."""
    _logging(verbose)


@main.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from mina_cli import migrate

    settings = _settings()
    migrate.upgrade(settings.resolved_database_url, revision)
    click.echo(f"database at {revision}", err=True)


@db_group.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from mina_cli import migrate

    migrate.downgrade(_settings().resolved_database_url, revision)


@db_group.command("check")
def db_check() -> None:
    """Fail if the models and the migrations drifted apart."""
    from mina_cli import migrate

    migrate.check(_settings().resolved_database_url)


@main.command()
def web() -> None:
    """Serve the API, Socket.IO and pages on $PORT (development server)."""
    from api import create_app
    from api.extensions import socketio
    from mina_cli.runtime import check_configuration

    settings = _settings()
    check_configuration(settings)
    app = create_app(settings)
    click.echo(f"mina web on http://{settings.host}:{settings.port}", err=True)
    socketio.run(app, host=settings.host, port=settings.port, allow_unsafe_werkzeug=True)


@main.command()
@click.option("--queues", "-Q", multiple=True, help="queues to consume (default: all)")
@click.option("--processes", "-p", type=int, default=None)
@click.option("--threads", "-t", type=int, default=None)
def worker(queues: tuple[str, ...], processes: int | None, threads: int | None) -> None:
    """Run Dramatiq worker processes (the `dramatiq` CLI) on the configured broker."""
    settings = _settings()
    if settings.embedded:
        raise click.ClickException("MINA_BROKER_URL is unset: use `mina dev` for one process")
    from mina_cli.runtime import check_configuration

    check_configuration(settings)
    args = [
        sys.executable,
        "-m",
        "dramatiq",
        "workers.actors",
        "--processes",
        str(processes or settings.worker_processes),
        "--threads",
        str(threads or settings.worker_threads),
    ]
    if queues:
        args += ["--queues", *queues]
    # Idle consumers poll Redis every 100 ms instead of backing off to 1 s: a group reaching
    # idle queues and each step of the merge chain start sooner (bench/post_processing.py).
    os.environ.setdefault("dramatiq_worker_timeout", "100")
    os.execv(sys.executable, args)


@main.command()
@click.option("--once", is_flag=True, help="run every job once and exit")
def scheduler(once: bool) -> None:
    """Run the catch-up scheduler (one active instance at a time)."""
    from scheduler.service import run_scheduler

    run_scheduler(_settings(), once=once)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--speakers", type=int, default=None, help="number of speakers, if known")
@click.option("--language", default=None, help="en, es, de, … or auto (default: MINA_LANGUAGE)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document on stdout")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="write transcript and results into DIR",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["txt", "md", "srt", "vtt", "json"]),
    default="txt",
    help="for --out: md = meeting notes (one Markdown file), json = notes, transcript and "
    "results as JSON files, txt/srt/vtt = the transcript",
)
def process(
    files: tuple[Path, ...],
    speakers: int | None,
    language: str | None,
    as_json: bool,
    out_dir: Path | None,
    fmt: str,
) -> None:
    """Transcribe and analyse recordings with the embedded pipeline."""
    try:
        _process(files, speakers, language, as_json, out_dir, fmt)
    except click.ClickException as exc:
        # Without the interpreter's teardown here too: the model may still be loading in its
        # thread, and tearing the interpreter down under it aborts in C++ ("terminate called").
        exc.show()
        _leave(exc.exit_code)


def _process(
    files: tuple[Path, ...],
    speakers: int | None,
    language: str | None,
    as_json: bool,
    out_dir: Path | None,
    fmt: str,
) -> None:
    from mina import warm

    console = Console(stderr=True)
    if language:
        os.environ["MINA_LANGUAGE"] = language
        reset_settings()
    settings = _settings()
    if language:
        from mina import languages

        try:
            languages.validate(language, settings)
        except MinaError as exc:
            raise click.ClickException(exc.message) from exc
    warm.start(settings)  # the model loads while the rest starts up and the files are cut
    from mina_cli import cut

    workdir = Path(tempfile.mkdtemp(prefix="mina-process-"))
    try:
        try:
            for path in files:
                cut.check_file(path)
        except MinaError as exc:
            raise click.ClickException(exc.message) from exc
        # ffmpeg cuts (and so decodes, checking every packet) while Python starts the runtime
        cuts = [
            cut.Cut(path, settings.chunk_seconds, workdir / str(n)) for n, path in enumerate(files)
        ]
        from mina_cli import process as proc
        from mina_cli.render import render
        from mina_cli.runtime import embedded_runtime

        with embedded_runtime(settings, console) as svc:
            try:
                jobs = proc.run(cuts, svc, speakers=speakers, console=console)
            except MinaError as exc:
                raise click.ClickException(exc.message) from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for job in jobs:
        if out_dir is not None:
            for written in proc.write_outputs(job, out_dir, fmt):
                console.print(f"wrote {written}")
        if not as_json:
            render(job.result, Console(), job.path.name)
    if as_json:
        docs = [proc.public_json(j) for j in jobs]
        click.echo(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
    for job in jobs:
        if job.error is not None:
            console.print(f"[red]Error:[/] {job.path.name}: {job.error}")
    failed = any(j.error is not None or j.result["status"] == "transcription_failed" for j in jobs)
    _leave(2 if failed else 0)


def _leave(code: int) -> NoReturn:
    """End `mina process` without the interpreter's teardown: every result is committed, the
    runtime stopped and the output written by now, and unloading the ~2,000 modules a run
    imports took ~0.3 s of every run (bench/embedded.py)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BrokenPipeError, ValueError):  # a reader that left (`| head`)
            stream.flush()
    logging.shutdown()
    os._exit(code)


@main.command()
def dev() -> None:
    """Web, Socket.IO, workers and scheduler in one process on the embedded defaults."""
    from mina_cli.dev import run_dev

    run_dev(_settings())


@main.command()
def doctor() -> None:
    """Check each part (database, broker, storage, ffmpeg, the model, tokens): ok, warning or
    error, with the fix. Exits 1 when any part is an error."""
    from mina_cli.doctor import report

    ok = report(_settings(), Console(soft_wrap=True))
    sys.exit(0 if ok else 1)


def entry() -> None:
    try:
        main()
    except ConfigurationError as exc:
        click.echo(f"mina: configuration error: {exc.message}", err=True)
        sys.exit(2)
