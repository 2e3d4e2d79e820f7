"""Every scheduler job's and operator list/filter/stats call's SELECT has an index that serves
it (issue #20). The statements are the ones the real code sends (captured with an SQLAlchemy
event listener while the jobs and the operator calls run on a small mixed-state seed), not
copies; `bench/seed_scale.py` prints their EXPLAIN ANALYZE at 100,000 conversations.

On a small seed the planner rightly prefers sequential scans, so the plans are asked for with
`enable_seqscan = off`: a sequential scan that remains means no index can answer the statement.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from bench.seed_scale import Query, explain, gather, partial_indexes, seed, seq_scans

pytestmark = pytest.mark.services_only

SEQSCAN_OFF = ("SET LOCAL enable_seqscan = off",)


@pytest.fixture
def seeded(clean_db: str, tmp_path: Path) -> list[Query]:
    with psycopg.connect(clean_db) as conn:
        seed(conn, conversations=1000, chunks_per=6)
        conn.autocommit = True
        conn.execute("ANALYZE")
    return gather(tmp_path / "blobs")


def _plans(queries: list[Query], setup: tuple[str, ...]) -> dict[str, list[str]]:
    """label: the big tables read with a sequential scan by its statements."""
    from mina import db

    raw = db.get_engine().raw_connection()
    try:
        found: dict[str, list[str]] = {}
        for q in queries:
            tables = seq_scans(explain(raw.driver_connection, q, analyze=False, setup=setup))
            if tables:
                found.setdefault(q.label, []).extend(tables)
        return found
    finally:
        raw.close()


def test_every_scheduler_and_operator_query_has_an_index(seeded: list[Query]) -> None:
    labels = {q.label.split(" ")[0] for q in seeded}
    # Every job that reads the big tables, and every operator call, sent statements.
    for job in (
        "auto_finish",
        "dispatch",
        "barrier",
        "post_processing",
        "relay",
        "audio_retention",
        "provider_jobs",
        "missing_chunks",
        "blobs",
    ):
        assert f"scheduler.{job}" in labels, f"no statement captured for the {job} job"
    assert {"operator.list", "operator.detail", "operator.stats"} <= labels
    assert _plans(seeded, SEQSCAN_OFF) == {}


def test_without_the_partial_indexes_some_query_scans(seeded: list[Query]) -> None:
    """The check above can fail: with the partial indexes dropped (in a transaction rolled
    back), the operator's stats (the latest transcribed chunks by `finished_at`, the latest
    reveals by `revealed_at`) have no index left and scan. (Others fall back to walking a whole
    index, which `enable_seqscan = off` cannot tell from a good plan: bench/seed_scale.py shows
    their times at scale.)"""
    dropped = partial_indexes()
    assert len(dropped) >= 8
    scans = _plans(seeded, SEQSCAN_OFF + tuple(f"DROP INDEX {name}" for name in dropped))
    assert set(scans.get("operator.stats", [])) & {"chunk", "conversation"}
