"""No token, secret or transcript text in any log line of any process.

A full conversation runs through the production processes (gunicorn with its access log on,
`mina web`, `mina worker`, `mina scheduler`, every one at INFO with `-v`) and through `mina dev`,
with the participant token in query strings the way links and event streams carry it; then
every line each process wrote is searched for the tokens, the configured secrets, a database
password and the words of the transcript.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mina import audio
from mina.synth import Line, make_meeting
from mina.webhooks import token as webhook_token
from tests.conftest import BASE_ENV, REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
OPERATOR = "op-token-4b1f9e2c"
SECRETS = {
    "MINA_WEBHOOK_SECRET": "whsec-7d3a0c91",
    "MINA_SECRET_KEY": "flask-key-5e8b2f60",
    "MINA_OPENAI_API_KEY": "sk-unused-9c4d1e77",
    "MINA_ASSEMBLYAI_API_KEY": "aai-unused-2f6b8a13",
}
DB_PASSWORD = "db-pw-8e1c5a2d"
LINES = [
    Line("Alice", "The periwinkle flamingo negotiated quietly with eleven harpsichords."),
    Line("Bob", "Marmalade volcanoes erupted beside the lighthouse keeper yesterday."),
]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chunks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    work = tmp_path_factory.mktemp("speech")
    make_meeting(LINES, work / "m.wav")
    return audio.split(work / "m.wav", 6, work / "chunks")


class Procs:
    """Processes started with their output in one log file each; stopped like a deploy would."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, *args: str, extra: dict[str, str] | None = None) -> Path:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env={**self.env, **(extra or {}), "PYTHONUNBUFFERED": "1"},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append((name, proc))
        return log

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def logs(self) -> dict[str, str]:
        return {
            name: ANSI.sub("", (self.tmp / f"{name}.log").read_text(errors="replace"))
            for name, _ in self.procs
        }


def wait_http(url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not start")


def wait_log(path: Path, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name}: no {text!r}:\n{path.read_text()[-2000:]}")
        time.sleep(0.3)


def run_conversation(base: str, chunks: list[Path], operator: str) -> tuple[str, str, str]:
    """A participant's whole meeting with the token in the query string, as links and event
    streams carry it, plus the operator's views; returns (id, token, transcript text)."""
    created = requests.post(f"{base}/api/conversations", json={"title": "secrets"}, timeout=30)
    assert created.status_code == 201, created.text
    cid, tok = created.json()["id"], created.json()["token"]
    q = {"token": tok}
    assert requests.get(f"{base}/c/{cid}", params=q, timeout=30).status_code == 200
    for n, path in enumerate(chunks):
        r = requests.post(
            f"{base}/api/conversations/{cid}/chunks",
            params=q,
            data={"index": str(n)},
            files={"file": (path.name, path.read_bytes())},
            timeout=60,
        )
        assert r.status_code == 202, r.text
    stream = requests.get(f"{base}/api/conversations/{cid}/events/stream", params=q, timeout=30)
    assert stream.status_code == 200
    r = requests.post(f"{base}/api/conversations/{cid}/finish", params=q, json={}, timeout=30)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 240
    while True:
        view = requests.get(f"{base}/api/conversations/{cid}", params=q, timeout=30).json()
        if view["processing_status"] in ("ready", "partial", "failed"):
            break
        assert time.monotonic() < deadline, view
        time.sleep(1.0)
    assert view["status"] == "transcribed", view
    text = requests.get(
        f"{base}/api/conversations/{cid}/transcript", params={**q, "format": "txt"}, timeout=30
    ).text
    for name in ("summary", "tasks", "analytics"):
        requests.get(f"{base}/api/conversations/{cid}/{name}", params=q, timeout=30)
    ops = {"token": operator}
    assert requests.get(f"{base}/api/operator/conversations", params=ops, timeout=30).ok
    assert requests.get(f"{base}/api/operator/conversations/{cid}", params=ops, timeout=30).ok
    login = requests.Session()
    page = login.get(f"{base}/login", timeout=30).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    signed = login.post(
        f"{base}/login",
        data={"token": operator, "csrf": csrf.group(1), "next": "/dashboard"},
        timeout=30,
    )
    assert signed.status_code == 200 and "dashboard" in signed.url
    return cid, tok, text


def words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z]{6,}", text)}


def assert_clean(logs: dict[str, str], secrets: dict[str, str], spoken: set[str]) -> None:
    for process, text in logs.items():
        for name, value in secrets.items():
            assert value not in text, f"{process} logged the {name}"
        found = spoken & words(text)
        assert not found, f"{process} logged transcript words {sorted(found)}"


@pytest.fixture
def database(clean_db: str) -> str:
    """The test database's URL with a password in it (local trust auth ignores it)."""
    url = BASE_ENV["MINA_DATABASE_URL"]
    return url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)


@pytest.fixture
def procs(tmp_path: Path, database: str, clean_redis: None) -> Iterator[Procs]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
    env.update(
        {
            **{k: v for k, v in BASE_ENV.items() if k != "MINA_DATABASE_URL"},
            **SECRETS,
            "MINA_DATABASE_URL": database,
            "MINA_BROKER_URL": REDIS_URL,
            "MINA_OPERATOR_TOKEN": OPERATOR,
            "MINA_SSE_MAX_SECONDS": "1",
            "MINA_SCHEDULER_INTERVAL_SECONDS": "1",
        }
    )
    started = Procs(tmp_path, env)
    yield started
    started.stop()


def test_production_processes_log_no_secret_and_no_transcript(
    procs: Procs, chunks: list[Path]
) -> None:
    mina = [sys.executable, "-m", "mina_cli", "-v"]
    gport, wport = free_port(), free_port()
    gunicorn = [
        str(Path(sys.executable).with_name("gunicorn")),
        *("-c", "python:api.gunicorn_config", "-w", "1", "--threads", "8"),
        *("-b", f"127.0.0.1:{gport}", "--access-logfile", "-", "--log-level", "info"),
        "api:create_app()",
    ]
    procs.start("gunicorn", *gunicorn, extra={"PORT": str(gport)})
    procs.start("mina-web", *mina, "web", extra={"PORT": str(wport)})
    worker_log = procs.start("worker", *mina, "worker", "--processes", "1", "--threads", "2")
    procs.start("scheduler", *mina, "scheduler")
    wait_log(worker_log, "is ready for action")
    gunicorn_url, web_url = f"http://127.0.0.1:{gport}", f"http://127.0.0.1:{wport}"
    wait_http(gunicorn_url)
    wait_http(web_url)

    cid, tok, text = run_conversation(gunicorn_url, chunks, OPERATOR)
    # the same participant and operator links through `mina web` (werkzeug's request log)
    for path, params in (
        (f"/c/{cid}", {"token": tok}),
        (f"/api/conversations/{cid}", {"token": tok}),
        (f"/api/conversations/{cid}/transcript", {"token": tok, "format": "srt"}),
        ("/api/operator/conversations", {"token": OPERATOR}),
    ):
        assert requests.get(f"{web_url}{path}", params=params, timeout=30).ok
    # a provider's webhook, signed with the secret (the header token is a secret too)
    signature = webhook_token(SECRETS["MINA_WEBHOOK_SECRET"], "assemblyai", "chunk-x")
    hook = requests.post(
        f"{gunicorn_url}/webhooks/transcription/assemblyai",
        params={"chunk": "chunk-x"},
        headers={"X-Mina-Webhook-Token": signature},
        json={"transcript_id": "t-1", "status": "completed"},
        timeout=30,
    )
    assert hook.status_code == 200, hook.text
    time.sleep(2.0)  # the scheduler's next runs and the worker's last lines
    procs.stop()

    logs = procs.logs()
    spoken = words(text)
    assert {"periwinkle", "flamingo", "lighthouse"} & spoken, text  # real speech, transcribed
    # the logs do talk about this conversation and these requests: they were searched, not empty
    assert cid in logs["worker"] and f"/c/{cid}?token=[redacted]" in logs["gunicorn"]
    assert f"/c/{cid}?token=[redacted]" in logs["mina-web"]
    assert "GET /api/operator/conversations?token=[redacted]" in logs["mina-web"]
    assert "/webhooks/transcription/assemblyai?chunk=chunk-x" in logs["gunicorn"]
    assert_clean(
        logs,
        {
            "participant token": tok,
            "operator token": OPERATOR,
            "webhook signature": signature,
            "database password": DB_PASSWORD,
            **SECRETS,
        },
        spoken,
    )


def test_mina_dev_logs_no_secret_and_no_transcript(tmp_path: Path, chunks: list[Path]) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
    env.update(
        {
            **SECRETS,
            "MINA_DATA_DIR": str(tmp_path / "data"),
            "MINA_OPERATOR_TOKEN": OPERATOR,
            "MINA_SSE_MAX_SECONDS": "1",
            "MINA_WORKER_THREADS": "2",
            "PORT": str(port),
        }
    )
    procs = Procs(tmp_path, env)
    log = procs.start("dev", sys.executable, "-m", "mina_cli", "-v", "dev")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base)
        # What `mina dev` prints for its user before serving (the demo link and the operator
        # token, to copy) is its output, not a log line; everything after it is searched.
        banner = log.read_text(errors="replace")
        cid, tok, text = run_conversation(base, chunks, OPERATOR)
    finally:
        procs.stop()
    after = procs.logs()["dev"][len(ANSI.sub("", banner)) :]
    spoken = words(text)
    assert {"periwinkle", "flamingo", "lighthouse"} & spoken, text
    assert cid in after  # the worker threads' lines about this conversation were searched
    assert tok not in banner and "mina dev stopped" in after
    assert_clean({"mina dev": after}, {"participant token": tok, **SECRETS}, spoken)
    assert OPERATOR not in after
