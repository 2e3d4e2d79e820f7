"""Fixtures for provider tests: the fakes, a live app server, provider settings.

Import the ones a module needs: `from tests.fakes.fixtures import fake_openai  # noqa: F401`.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from mina.db import session_scope
from mina.models import Chunk
from tests.fakes.assemblyai_server import FakeAssemblyAI
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.server import QuietHandler
from tests.fixtures.stack import bearer


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake_assemblyai() -> Iterator[FakeAssemblyAI]:
    fake = FakeAssemblyAI().start()
    yield fake
    fake.release()
    fake.stop()


@dataclass
class LiveServer:
    url: str
    server: BaseWSGIServer

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server() -> Iterator[Callable[[Any], LiveServer]]:
    """`live_server(app)` serves the app over real HTTP on 127.0.0.1 (a free port)."""
    started: list[LiveServer] = []

    def start(app: Any) -> LiveServer:
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        live = LiveServer(f"http://127.0.0.1:{server.server_port}", server)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


def openai_env(fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    """Settings that point Mina's openai providers at the fake."""
    return {
        "openai_base_url": fake.base_url,
        "openai_api_key": fake.api_key,
        "provider_timeout_seconds": 1.5,
        **extra,
    }


# --- audio and API helpers -------------------------------------------------------------------


@pytest.fixture(scope="session")
def tone_chunks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Eight 30 s Opus chunks, each a different tone (so each has its own sha256)."""
    out = tmp_path_factory.mktemp("tones")
    paths = []
    for n in range(8):
        path = out / f"chunk-{n}.ogg"
        subprocess.run(
            [
                "ffmpeg",
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                f"sine=frequency={220 + 40 * n}:duration=30",
                "-c:a",
                "libopus",
                "-b:a",
                "24k",
                str(path),
            ],
            check=True,
        )
        paths.append(path)
    return paths


def create(client: Any) -> tuple[str, dict[str, str]]:
    r = client.post("/api/conversations", json={"title": "provider test"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    return body["id"], bearer(body["token"])


def upload(client: Any, cid: str, auth: dict[str, str], index: int, path: Path) -> Any:
    with path.open("rb") as fh:
        r = client.post(
            f"/api/conversations/{cid}/chunks",
            data={"index": str(index), "file": (fh, path.name)},
            headers=auth,
            content_type="multipart/form-data",
        )
    assert r.status_code in (200, 202), r.get_json()
    return r


def chunks_of(cid: str) -> list[Chunk]:
    with session_scope() as s:
        return list(
            s.scalars(select(Chunk).where(Chunk.conversation_id == cid).order_by(Chunk.index))
        )


def all_terminal(cid: str, count: int) -> list[Chunk] | None:
    found = chunks_of(cid)
    if len(found) == count and all(c.status in ("transcribed", "failed") for c in found):
        return found
    return None
