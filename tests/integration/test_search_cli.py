"""`mina search` against the configured database: hits printed and as JSON, bad input refused
with a usage error, and `--reindex` rebuilding the index of revealed conversations."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import delete

from mina.db import session_scope
from mina.memory.models import Utterance
from mina_cli.main import main
from tests.fixtures.memory import revealed, seg

pytestmark = pytest.mark.embedded


def run(*args: str) -> Any:
    return CliRunner().invoke(main, ["search", *args])


def test_search_prints_hits_and_json(client: Any) -> None:
    cid, _ = revealed(
        client,
        [seg(0.0, "Hello everyone."), seg(64.0, "The invoice for the vendor is overdue.", "S2")],
        title="Finance sync",
    )
    out = run("invoice")
    assert out.exit_code == 0, out.output
    assert "Finance sync" in out.output and "01:04" in out.output and "S2:" in out.output
    assert "invoice for the vendor" in out.output and f"{cid} at 64.0s" in out.output
    as_json = run("vendor", "overdue", "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert [(h["conversation_id"], h["start"]) for h in body["hits"]] == [(cid, 64.0)]
    assert run("vendor", "--speaker", "S1", "--json").output.count('"start"') == 0


def test_search_refuses_bad_input(clean_db: str) -> None:
    for args in (("--from", "someday", "x"), ("?!",), (), ("x", "--limit", "0")):
        out = run(*args)
        assert out.exit_code == 2, (args, out.output)
        assert "Error" in out.output


def test_reindex_rebuilds_the_index_of_revealed_conversations(client: Any) -> None:
    cid, _ = revealed(client, [seg(0.0, "Quarterly numbers look good.")])
    with session_scope() as s:
        s.execute(delete(Utterance))
    assert '"hits": []' in run("quarterly", "--json").output
    out = run("--reindex", "quarterly", "--json")
    assert out.exit_code == 0, out.output
    assert "1 conversation(s) indexed" in out.output
    assert cid in out.output
