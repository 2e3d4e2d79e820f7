"""The database at scale (issue #20): seed PostgreSQL with 100,000 conversations and 1,000,000
chunks in mixed states, run every scheduler job and every operator list, filter and stats call
through the real code, capture the SELECTs they send, and print `EXPLAIN ANALYZE` for each.

Baseline in the same run: the same statements with the partial indexes dropped (inside a
transaction that is rolled back). Last line: `ratio=` total execution time without the partial
indexes / with them. The seeding is one `INSERT … SELECT FROM generate_series` per table.

    .venv/bin/python bench/seed_scale.py [--conversations 100000] [--chunks-per 10] [--keep]

`gather` and `scans` are also what tests/integration/test_query_plans.py asserts on (a small
seed, `enable_seqscan = off`: every statement has an index that serves it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: The tables whose size grows with use; a `Seq Scan` on one of them is what we look for.
BIG_TABLES = ("conversation", "chunk", "post_task", "event")

# One row per conversation; its state is picked by `i % 100` (see STATES).
SEED_CONVERSATIONS = """
INSERT INTO conversation (id, title, token_hash, created_at, last_activity_at, status,
    processing_status, is_finished, finished_at, expected_chunks, is_all_chunks_transcribed,
    transcribed_at, progress, revealed_at, reveal_count, duration, merged_audio_key, language)
SELECT id, 'meeting ' || i, md5(id), created, last_act, status, pstatus, fin,
    CASE WHEN fin THEN created + interval '40 minutes' END,
    CASE WHEN c = 92 THEN %(per)s + 2 END,
    alltx,
    CASE WHEN alltx THEN created + interval '41 minutes' END,
    CASE WHEN pstatus IN ('ready', 'partial') THEN 100 WHEN alltx THEN 70 ELSE 30 END,
    CASE WHEN pstatus IN ('ready', 'partial') THEN created + interval '42 minutes' END,
    CASE WHEN pstatus IN ('ready', 'partial') THEN 1 ELSE 0 END,
    CASE WHEN alltx THEN %(per)s * 30.0 END,
    CASE WHEN pstatus IN ('ready', 'partial') THEN 'conversations/' || id || '/merged.ogg' END,
    'en'
FROM (
    SELECT i, c, id, created,
        CASE WHEN c = 86 THEN now() AT TIME ZONE 'utc' - interval '2 hours'
             WHEN c IN (87, 88) THEN now() AT TIME ZONE 'utc' - interval '5 seconds'
             WHEN c IN (89, 90, 91) THEN now() AT TIME ZONE 'utc' - interval '5 minutes'
             WHEN c = 92 THEN now() AT TIME ZONE 'utc' - interval '3 hours'
             ELSE created + interval '40 minutes' END AS last_act,
        CASE WHEN c IN (86, 87, 88) THEN 'recording'
             WHEN c IN (89, 90, 91, 92) THEN 'finished'
             WHEN c = 96 THEN 'transcription_failed'
             ELSE 'transcribed' END AS status,
        CASE WHEN c IN (93, 94) THEN 'running'
             WHEN c IN (86, 87, 88, 89, 90, 91, 92, 95) THEN 'pending'
             WHEN c = 96 THEN 'failed'
             WHEN c = 97 THEN 'partial'
             ELSE 'ready' END AS pstatus,
        c NOT IN (86, 87, 88) AS fin,
        c NOT IN (86, 87, 88, 89, 90, 91, 92) AS alltx
    FROM (
        SELECT i, i %% 100 AS c, md5('conversation' || i) AS id,
            now() AT TIME ZONE 'utc' - interval '1 hour' - CASE
                WHEN i %% 100 BETWEEN 86 AND 96 THEN (i %% 7) * interval '1 minute'
                ELSE (%(n)s - i) * interval '75 seconds' END AS created
        FROM generate_series(1, %(n)s) AS i
    ) base
) states
"""

SEED_CHUNKS = """
INSERT INTO chunk (id, conversation_id, index, sha256, size, mime, storage_key, duration, status,
    attempts, error, error_kind, created_at, queued_at, started_at, lease_until, finished_at,
    provider, provider_job_id, provider_submitted_at, provider_polls, text, segments)
SELECT md5(cid || ':' || j), cid, j, md5(cid) || md5(j::text), 480000, 'audio/ogg',
    'conversations/' || cid || '/chunks/' || j || '.ogg', 30.0, st,
    CASE WHEN st = 'queued' THEN 0 ELSE 1 END,
    CASE WHEN st = 'failed' THEN 'provider error' END,
    CASE WHEN st = 'failed' THEN 'permanent' END,
    created + j * interval '30 seconds',
    CASE WHEN st = 'queued' AND c = 89 THEN now() AT TIME ZONE 'utc' - interval '10 minutes'
         WHEN st = 'queued' THEN now() AT TIME ZONE 'utc' - interval '1 second'
         ELSE created + j * interval '30 seconds' END,
    CASE WHEN st <> 'queued' THEN created + j * interval '30 seconds' + interval '1 second' END,
    CASE WHEN st = 'processing' AND c = 89 THEN now() AT TIME ZONE 'utc' - interval '1 minute'
         WHEN st = 'processing' THEN now() AT TIME ZONE 'utc' + interval '10 minutes' END,
    CASE WHEN st IN ('transcribed', 'failed')
         THEN created + j * interval '30 seconds' + interval '3 seconds' END,
    CASE WHEN st = 'processing' AND c = 90 THEN 'assemblyai' END,
    CASE WHEN st = 'processing' AND c = 90 THEN 'job-' || cid || '-' || j END,
    CASE WHEN st = 'processing' AND c = 90 THEN now() AT TIME ZONE 'utc' - interval '1 hour' END,
    0,
    CASE WHEN st = 'transcribed' THEN 'words of chunk ' || j || ' said in the meeting' END,
    CASE WHEN st = 'transcribed' THEN json_build_array(json_build_object(
        'start', 0.0, 'end', 30.0, 'text', 'words of chunk ' || j || ' said in the meeting')) END
FROM (
    SELECT conv.id AS cid, conv.created_at AS created, j,
        ('x' || substr(conv.id, 1, 8))::bit(32)::int AS h,
        CASE WHEN conv.status = 'recording' AND j >= 8 THEN 'queued'
             WHEN conv.status = 'recording' AND j >= 6 THEN 'processing'
             WHEN conv.status = 'finished' AND m.c IN (89, 90) AND j >= 7 THEN 'queued'
             WHEN conv.status = 'finished' AND m.c IN (89, 90) AND j >= 5 THEN 'processing'
             WHEN m.c = 96 THEN 'failed'
             WHEN m.c IN (91, 97) AND j = 3 THEN 'failed'
             ELSE 'transcribed' END AS st,
        m.c
    FROM conversation conv
    JOIN LATERAL (SELECT (substr(conv.title, 9)::int %% 100) AS c) m ON true
    CROSS JOIN generate_series(0, %(per)s - 1) AS j
) rows
"""

TASKS = ("merge", "diarize", "analytics", "refinement", "tasks", "summary")
SEED_TASKS = """
INSERT INTO post_task (conversation_id, name, status, attempts, error, started_at, finished_at,
    deadline_at, duration_ms)
SELECT cid, name, st, 1, CASE WHEN st = 'failed' THEN 'provider error' END,
    created + interval '41 minutes',
    CASE WHEN st IN ('done', 'failed') THEN created + interval '41 minutes 30 seconds' END,
    CASE WHEN st = 'running' AND n = 2 AND i %% 1000 = 93
         THEN now() AT TIME ZONE 'utc' - interval '1 minute'
         WHEN st = 'running' THEN now() AT TIME ZONE 'utc' + interval '10 minutes' END,
    CASE WHEN st IN ('done', 'failed') THEN 3000 END
FROM (
    SELECT conv.id AS cid, conv.created_at AS created, t.name, t.n, m.i,
        CASE WHEN conv.processing_status IN ('ready') THEN 'done'
             WHEN conv.processing_status = 'partial' AND t.name = 'summary' THEN 'failed'
             WHEN conv.processing_status = 'partial' THEN 'done'
             WHEN t.n < 2 THEN 'done'
             WHEN m.i %% 100 = 93 THEN 'running'
             ELSE 'pending' END AS st
    FROM conversation conv
    JOIN LATERAL (SELECT substr(conv.title, 9)::int AS i) m ON true
    CROSS JOIN unnest(%(tasks)s::text[]) WITH ORDINALITY AS t(name, n)
    WHERE conv.processing_status IN ('ready', 'partial', 'running')
) rows
"""

# Three ledger events per conversation (emitted), the newest unemitted for 1 in 1000.
SEED_EVENTS = """
INSERT INTO event (conversation_id, type, payload, created_at, emitted_at)
SELECT conv.id, e.type, '{}'::json, conv.created_at + e.k * interval '20 minutes',
    CASE WHEN e.k = 2 AND substr(conv.title, 9)::int %% 1000 = 7 THEN NULL
         ELSE conv.created_at + e.k * interval '20 minutes' END
FROM conversation conv
CROSS JOIN (VALUES (0, 'chunk_uploaded'), (1, 'post_transcription_started'),
                   (2, 'revealed')) AS e(k, type)
"""

STATES = {
    "0-85, 98, 99": "revealed (ready), created over the last ~87 days",
    "86": "recording, idle 2 h (auto-finish)",
    "87, 88": "recording, active; chunks queued and processing",
    "89": "finished; chunks queued 10 min ago and leases expired (dispatch)",
    "90": "finished; chunks processing at an async provider for 1 h (provider jobs)",
    "91": "finished; every chunk terminal, barrier not passed (lost callback)",
    "92": "finished; 2 announced chunks never came, idle 3 h (missing chunks)",
    "93": "post-processing running (1 in 10 with a task past its deadline)",
    "94": "post-processing running, tasks pending (requeue)",
    "95": "transcribed, post-processing never started",
    "96": "transcription failed (every chunk failed)",
    "97": "partial (a chunk and the summary failed)",
}


def seed(conn: Any, conversations: int, chunks_per: int = 10) -> dict[str, float]:
    """Fill an empty migrated database (psycopg connection); seconds per table."""
    took: dict[str, float] = {}
    for table, sql, params in (
        ("conversation", SEED_CONVERSATIONS, {"n": conversations, "per": chunks_per}),
        ("chunk", SEED_CHUNKS, {"per": chunks_per}),
        ("post_task", SEED_TASKS, {"tasks": list(TASKS)}),
        ("event", SEED_EVENTS, {}),
    ):
        started = time.perf_counter()
        conn.execute(sql, params)
        conn.commit()
        took[table] = time.perf_counter() - started
    return took


# --- capturing the statements the real code sends ----------------------------------------


@dataclass
class Query:
    label: str
    statement: str
    params: Any


@contextlib.contextmanager
def capture(engine: Any) -> Iterator[Callable[[str], list[Query]]]:
    """While inside, every SELECT sent through `engine` that reads a big table is recorded under
    the label last passed to the yielded function (which returns what was captured so far)."""
    from sqlalchemy import event

    seen: list[Query] = []
    label = ["?"]

    def on_execute(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        text = statement.lstrip().upper()
        if text.startswith("SELECT") and any(f" {t}" in statement for t in BIG_TABLES):
            seen.append(Query(label[0], statement, params))

    def mark(name: str) -> list[Query]:
        label[0] = name
        return seen

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield mark
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


class _QuietEmitter:
    def emit(self, event: str, data: dict[str, Any], room: str) -> None:
        return None


def gather(storage_dir: Path, stuck_seconds: float = 600.0) -> list[Query]:
    """Run every scheduler job once and the operator's list (each filter, a cursor page, an
    offset page), detail and stats; the SELECTs they sent, first of each statement per label.

    The jobs change what they find (that is their work): call this on a throwaway database.
    """
    from mina import blobs, events
    from mina.db import get_engine, session_scope, utcnow
    from mina.dispatch import NullDispatcher
    from mina.operator import listing
    from mina.operator.stats import stats as operator_stats
    from mina.repair import Repair
    from mina.settings import get_settings
    from mina.storage import LocalStorage
    from scheduler.service import jobs

    settings = get_settings().model_copy(update={"audio_retention_days": 30})
    repair = Repair(settings, NullDispatcher(), LocalStorage(storage_dir), poll_provider=_no_poll)
    had_emitter = events.relay.emitter
    events.relay.set_emitter(_QuietEmitter())  # else the relay job sends no query
    now = utcnow()
    try:
        with capture(get_engine()) as mark:
            for job in jobs(repair, settings):
                mark(f"scheduler.{job.name}")
                job.run()
            mark("(the bench's own)")
            with session_scope() as s:
                from sqlalchemy import select

                from mina.models import Chunk, Conversation

                chunk = s.execute(select(Chunk.id, Chunk.conversation_id).limit(1)).first()
                conv = s.scalar(select(Conversation.id).limit(1))
            assert chunk is not None and conv is not None
            mark("scheduler.blobs (referenced)")
            blobs.referenced(
                [
                    f"conversations/{chunk[1]}/chunks/0.ogg",
                    f"conversations/{conv}/merged.ogg",
                    f"pieces/{chunk[0]}/0.wav",
                    f"conversations/{conv}/normalized/0.wav",
                ]
            )
            filters: list[tuple[str, listing.ListFilter]] = [
                ("default", listing.ListFilter()),
                ("status=recording", listing.ListFilter(status=("recording",))),
                ("status=finished", listing.ListFilter(status=("finished",))),
                (
                    "status=transcription_failed",
                    listing.ListFilter(status=("transcription_failed",)),
                ),
                ("processing=running", listing.ListFilter(processing_status=("running",))),
                ("processing=pending", listing.ListFilter(processing_status=("pending",))),
                (
                    "processing=failed,partial",
                    listing.ListFilter(processing_status=("failed", "partial")),
                ),
                ("stuck", listing.ListFilter(stuck=True, stuck_seconds=stuck_seconds)),
                ("failed", listing.ListFilter(failed=True)),
                ("offset=1000", listing.ListFilter(offset=1000)),
            ]
            cursor = None
            for name, f in filters:
                mark(f"operator.list {name}")
                with session_scope() as s:
                    out = listing.list_conversations(s, f, now)
                cursor = cursor or out["next_cursor"]
            mark("operator.list cursor page")
            with session_scope() as s:
                listing.list_conversations(s, listing.ListFilter(cursor=cursor), now)
            mark("operator.detail")
            with session_scope() as s:
                listing.detail(s, conv, now, stuck_seconds)
            mark("operator.stats")
            with session_scope() as s:
                operator_stats(s, now, stuck_seconds, None)
            captured = mark("done")
    finally:
        events.relay.set_emitter(had_emitter)
    unique: dict[tuple[str, str], Query] = {}
    for q in captured:
        if q.label.startswith("("):
            continue
        unique.setdefault((q.label, q.statement), q)
    return list(unique.values())


def _no_poll(chunk_id: str) -> None:
    return None


# --- EXPLAIN -----------------------------------------------------------------------------


def explain(
    dbapi_conn: Any, q: Query, *, analyze: bool, setup: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The JSON plan of one captured statement, in a transaction that is rolled back after the
    `setup` statements (`SET LOCAL …`, `DROP INDEX …`) and the EXPLAIN."""
    options = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
    cur = dbapi_conn.cursor()
    try:
        for statement in setup:
            cur.execute(statement)
        cur.execute(f"EXPLAIN ({options}) {q.statement}", q.params)
        raw = cur.fetchone()[0]
    finally:
        cur.close()
        dbapi_conn.rollback()
    plan = raw if isinstance(raw, list) else json.loads(raw)
    return dict(plan[0])


def scans(node: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(node type, relation, index) of every scan node in a plan."""
    out: list[tuple[str, str, str]] = []
    if "Relation Name" in node:
        out.append((node["Node Type"], node["Relation Name"], node.get("Index Name", "")))
    for child in node.get("Plans", []):
        out.extend(scans(child))
    return out


def seq_scans(plan: dict[str, Any]) -> list[str]:
    """The big tables a plan reads with a sequential scan."""
    return [rel for kind, rel, _ in scans(plan["Plan"]) if kind == "Seq Scan" and rel in BIG_TABLES]


def partial_indexes() -> list[str]:
    """The partial indexes of the models (the ones this bench's baseline drops)."""
    from mina.models import Base

    return sorted(
        ix.name
        for table in Base.metadata.tables.values()
        for ix in table.indexes
        if ix.dialect_options["postgresql"].get("where") is not None and ix.name
    )


# --- the bench ---------------------------------------------------------------------------


def _run(dbapi_conn: Any, queries: list[Query], drop: list[str]) -> list[dict[str, Any]]:
    setup = tuple(f"DROP INDEX IF EXISTS {name}" for name in drop)
    return [explain(dbapi_conn, q, analyze=True, setup=setup) for q in queries]


def _describe(plan: dict[str, Any]) -> str:
    parts = []
    for kind, rel, index in scans(plan["Plan"]):
        if rel not in BIG_TABLES:
            continue
        short = {
            "Seq Scan": "SEQ",
            "Index Scan": "idx",
            "Index Only Scan": "idx-only",
            "Bitmap Heap Scan": "bitmap",
        }.get(kind, kind)
        parts.append(f"{rel}:{short}" + (f"({index})" if index else ""))
    return " ".join(dict.fromkeys(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--chunks-per", type=int, default=10)
    parser.add_argument("--redis-db", type=int, default=11)
    parser.add_argument("--keep", action="store_true", help="do not drop the database")
    parser.add_argument("--runs", type=int, default=3, help="EXPLAIN ANALYZE runs (best kept)")
    parser.add_argument(
        "--show", default="", help="print the statement and text plan of labels containing this"
    )
    args = parser.parse_args()

    import logging

    import psycopg

    from bench import services

    logging.basicConfig(level=logging.ERROR)  # the jobs log what they repair: not wanted here

    workdir = Path(tempfile.mkdtemp(prefix="mina-seed-scale-"))
    name = services.configure(workdir, args.redis_db)
    services.admin(f"CREATE DATABASE {name}")
    print(f"database {name}; machine: 2-core shared VM (other engineers running)")
    try:
        from mina import db
        from mina.settings import get_settings
        from mina_cli import migrate

        url = get_settings().resolved_database_url
        migrate.upgrade(url)
        with psycopg.connect(url) as conn:
            started = time.perf_counter()
            took = seed(conn, args.conversations, args.chunks_per)
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            total = time.perf_counter() - started
            counts = {
                t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # type: ignore[index]
                for t in BIG_TABLES
            }
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
            db_size = size.fetchone()[0]  # type: ignore[index]
        print(
            "seeded "
            + ", ".join(f"{counts[t]:,} {t}" for t in BIG_TABLES)
            + f" in {total:.1f}s ("
            + ", ".join(f"{t} {s:.1f}s" for t, s in took.items())
            + f", vacuum analyze {total - sum(took.values()):.1f}s); database {db_size}"
        )
        db.configure(url)
        queries = gather(workdir / "blobs")
        engine = db.get_engine()
        dropped = partial_indexes()
        print(f"{len(queries)} distinct SELECTs captured; baseline drops {', '.join(dropped)}\n")
        raw = engine.raw_connection()
        dbapi = raw.driver_connection
        best_with = _best([_run(dbapi, queries, []) for _ in range(args.runs)])
        best_without = _best([_run(dbapi, queries, dropped) for _ in range(args.runs)])
        if args.show:
            for q in queries:
                if args.show in q.label:
                    cur = dbapi.cursor()
                    cur.execute(f"EXPLAIN (ANALYZE, COSTS OFF) {q.statement}", q.params)
                    plan = "\n".join(r[0] for r in cur.fetchall())
                    cur.close()
                    dbapi.rollback()
                    print(f"--- {q.label}\n{q.statement}\n{q.params}\n{plan}\n")
        raw.close()
        print(f"{'statement':44} {'with ms':>8} {'without':>8}  scans (with the partial indexes)")
        sum_with = sum_without = 0.0
        seq = []
        for q, w, wo in zip(queries, best_with, best_without, strict=True):
            t_with, t_without = w["Execution Time"], wo["Execution Time"]
            sum_with += t_with
            sum_without += t_without
            label = q.label[:44]
            print(f"{label:44} {t_with:8.2f} {t_without:8.2f}  {_describe(w)}")
            if seq_scans(w):
                seq.append(q.label)
        print(
            f"\ntotal {sum_with:.1f} ms with, {sum_without:.1f} ms without the partial indexes; "
            f"slowest with: {max(w['Execution Time'] for w in best_with):.1f} ms; "
            f"statements still with a seq scan on a big table: {len(seq)}"
            + (f" ({', '.join(sorted(set(seq)))})" if seq else "")
        )
        print(f"ratio={sum_without / sum_with:.2f}")
    finally:
        from mina import db as _db

        with contextlib.suppress(Exception):
            _db.get_engine().dispose()
        if not args.keep:
            services.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _best(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per statement, the run with the least execution time."""
    return [min(plans, key=lambda p: p["Execution Time"]) for plans in zip(*runs, strict=True)]


if __name__ == "__main__":
    main()
