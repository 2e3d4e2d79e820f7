"""Schemathesis against a live app over its own /openapi.json: no 5xx, no response that breaks
its own schema, with the operator token (random ids everywhere) and with a participant token on
its own conversation. Fixed seed and a bounded number of examples per operation, so a run is
reproducible and takes about a minute on two cores.

Twelve random examples per operation rarely hit the classes of input that broke the server
before (NUL in text, numbers past bigint or datetime), so a dictionary of them is mixed into the
parameters that reach the database; everything else is Schemathesis's own generation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from mina.db import session_scope
from mina.models import WebhookDelivery
from mina.webhooks import token
from tests.fixtures.stack import OPERATOR, bearer

WEBHOOK_SECRET = "whsec-fuzz"
WEBHOOK_CHUNK = "chunk-fuzz"
SEED = 15
EXAMPLES = 12
CHECKS = "not_a_server_error,response_schema_conformance"
# libFuzzer dictionary format: name="value" with \xNN escapes
TEXT = 'nul="ab\\x00cd"\nnul_end="x\\x00"\n'
NUMBERS = 'huge="1000000000000000000000000000000"\ndate_overflow="1e12"\nfar="1e300"\n'
BOUND = {
    "text": ("body.title", "query.cursor", "query.status", "query.format"),
    "numbers": (
        "body.expected_chunks",
        "body.size",
        "body.index",
        "query.offset",
        "query.after",
        "query.limit",
        "query.stuck_seconds",
    ),
}


def config_file(tmp_path: Path, conversation_id: str | None = None) -> Path:
    (tmp_path / "text.dict").write_text(TEXT)
    (tmp_path / "numbers.dict").write_text(NUMBERS)
    lines = [
        "[dictionaries.text]",
        'from-file = "text.dict"',
        "[dictionaries.numbers]",
        'from-file = "numbers.dict"',
        "[parameters]",
    ]
    for name, keys in BOUND.items():
        lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key in keys]
    if conversation_id is None:
        lines.append('"path.conversation_id" = { dictionary = "text", probability = 0.3 }')
        signature = token(WEBHOOK_SECRET, "assemblyai", WEBHOOK_CHUNK)
        lines += [
            '"path.provider" = "assemblyai"',
            f'"query.chunk" = "{WEBHOOK_CHUNK}"',
            f'"header.X-Mina-Webhook-Token" = "{signature}"',
        ]
    else:
        lines.append(f'"path.conversation_id" = "{conversation_id}"')
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


@pytest.fixture
def live(clean_db: str, env: Any) -> Iterator[str]:
    from api import create_app
    from mina.settings import get_settings

    # an event stream ends instead of holding on; webhooks are configured, so signed bodies
    # reach the code that parses and stores them
    env(sse_max_seconds=1, sse_poll_seconds=0.2, webhook_secret=WEBHOOK_SECRET)
    app = create_app(get_settings())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def schemathesis(url: str, headers: dict[str, str], config: Path, report: Path) -> str:
    """`st run` over the live /openapi.json; returns its output, fails the test on a failure."""
    header = [f"{k}: {v}" for k, v in headers.items()]
    cmd = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        CHECKS,
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        "--no-color",
        *(arg for h in header for arg in ("--header", h)),
    ]
    env = {**os.environ, "COLUMNS": "160"}
    # run in the test's folder: Schemathesis keeps a crash cache (.schemathesis/) in its working
    # directory, which would leave the checkout dirty and replay old crashes in later runs
    done = subprocess.run(
        cmd, cwd=config.parent, env=env, capture_output=True, text=True, timeout=300
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    return out


def test_operator_token_random_ids(live: str, tmp_path: Path) -> None:
    out = schemathesis(live, OPERATOR, config_file(tmp_path), tmp_path / "operator.xml")
    tested = int(re.search(r"Tested: (\d+)", out).group(1))  # type: ignore[union-attr]
    assert tested >= 25, out[-2000:]  # every operation of the document was exercised
    with session_scope() as s:  # signed webhook bodies got through to the stored deliveries
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)), out[-2000:]


def test_participant_token_on_its_conversation(live: str, tmp_path: Path) -> None:
    created = requests.post(f"{live}/api/conversations", json={"title": "fuzzed"}, timeout=10)
    assert created.status_code == 201
    cid, tok = created.json()["id"], created.json()["token"]
    schemathesis(live, bearer(tok), config_file(tmp_path, cid), tmp_path / "participant.xml")
    # the conversation the fuzzer worked on is still readable with its token
    status = requests.get(f"{live}/api/conversations/{cid}", headers=bearer(tok), timeout=10)
    assert status.status_code == 200, status.text
