"""Search over many meetings: query time of `mina.memory.search` over generated conversations.

Generates `--conversations` (default 10,000) revealed conversations of `--utterances` (default
40) segments each, 8-20 words drawn from a Zipf-distributed vocabulary (a few hundred meeting
words and synthetic tail words, so there are common, middling and rare terms), two to four
speakers, dates over a year, 90 % English and 10 % of an undetected language ('simple'
configuration). Rows are written in bulk: PostgreSQL with COPY into a staging table and one
INSERT … SELECT making the tsvectors, the GIN index built afterwards; SQLite with executemany,
its FTS5 triggers indexing as rows arrive.

Then times query classes through the service the API calls (`mina.memory.search.search`, one
page of 20 hits with snippets): a common word, a middling word, a rare word, two words, a
phrase, a common word for one speaker, within one month, and in one conversation (what a
participant's token searches). Baseline in the same run, on the same data: PostgreSQL, the same
search with the indexes switched off (sequential scan of the stored tsvectors); SQLite, the words
found by a `LIKE` scan, newest first, one page.

Prints p50 and p99 per class and overall, for PostgreSQL and (unless `--no-sqlite`) SQLite, and
as the last line `ratio=<PostgreSQL p50 without indexes / p50 with them>` (what the indexes buy).

Usage: .venv/bin/python bench/search.py [--conversations 10000] [--utterances 40]
       [--queries 40] [--baseline-queries 4] [--seed 1] [--no-sqlite | --no-postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from mina import db  # noqa: E402
from mina.memory import search  # noqa: E402
from mina_cli import migrate  # noqa: E402

_WORDS = """meeting report roadmap release customer budget plan team project deadline review
design feature issue bug test deploy server database api client contract sales marketing
quarter goal metric revenue cost hire launch schedule update status risk blocker priority
sprint backlog estimate scope demo feedback user product market support ticket training
office travel invoice payment vendor partner legal security audit policy data report
analysis dashboard chart number growth churn retention pricing discount order shipment
warehouse inventory supplier quality process workflow approval decision question answer
agenda note minute action owner friday monday tuesday wednesday thursday january march
april june october november december morning afternoon week month year today tomorrow
yesterday call email slack document draft version migration outage incident latency
performance capacity storage network backup recovery monitoring alert oncall rotation
interview candidate offer onboarding manager director engineer designer analyst"""
WORDS = _WORDS.split()
_FILLER = "the a to of and we it is that this for on with be will you i so have just"
FILLER = _FILLER.split()


def vocabulary(rng: random.Random, tail: int) -> list[str]:
    syll = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    made = {"".join(rng.choice(syll) for _ in range(3)) for _ in range(tail * 2)}
    return list(dict.fromkeys(WORDS)) + sorted(made)[:tail]


def sentences(rng: random.Random, vocab: list[str], n: int) -> list[str]:
    weights = [1.0 / (r + 1) for r in range(len(vocab))]  # Zipf
    cum = list(_accumulate(weights))
    out = []
    for _ in range(n):
        k = rng.randint(8, 20)
        words = rng.choices(vocab, cum_weights=cum, k=k // 2)
        words += rng.choices(FILLER, k=k - len(words))
        rng.shuffle(words)
        out.append(" ".join(words).capitalize() + ".")
    return out


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for v in values:
        total += v
        out.append(total)
    return out


class Data:
    def __init__(self, conversations: int, utterances: int, seed: int) -> None:
        rng = random.Random(seed)
        self.vocab = vocabulary(rng, 4000)
        start = datetime(2026, 1, 1)
        self.convs: list[tuple[str, datetime, str | None, int]] = []
        for _ in range(conversations):
            at = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
            lang = "en" if rng.random() < 0.9 else None
            self.convs.append((uuid.uuid4().hex, at, lang, rng.randint(2, 4)))
        texts = sentences(rng, self.vocab, conversations * utterances)
        self.rows: list[tuple[str, int, str, float, str, str, datetime]] = []
        for ci, (cid, at, lang, speakers) in enumerate(self.convs):
            config = "english" if lang else "simple"
            for p in range(utterances):
                body = texts[ci * utterances + p]
                who = f"S{rng.randint(1, speakers)}"
                self.rows.append((cid, p, who, p * 6.0, body, config, at))
        self.rng = rng

    def queries(self, n: int) -> dict[str, list[search.Query]]:
        rng, v = self.rng, self.vocab
        common, middle, rare = v[:15], v[150:400], v[2500:]
        month = datetime(2026, rng.randint(1, 11), 1)
        out: dict[str, list[search.Query]] = {
            "common word": [search.Query(rng.choice(common)) for _ in range(n)],
            "middling word": [search.Query(rng.choice(middle)) for _ in range(n)],
            "rare word": [search.Query(rng.choice(rare)) for _ in range(n)],
            "two words": [
                search.Query(f"{rng.choice(middle)} {rng.choice(common)}") for _ in range(n)
            ],
            "phrase": [search.Query(f'"{self._pair()}"') for _ in range(n)],
            "common, one speaker": [
                search.Query(rng.choice(common), speaker="S3") for _ in range(n)
            ],
            "common, one month": [
                search.Query(rng.choice(common), since=month, until=month + timedelta(days=30))
                for _ in range(n)
            ],
            "common, one conversation": [
                search.Query(rng.choice(common), conversation_id=rng.choice(self.convs)[0])
                for _ in range(n)
            ],
        }
        return out

    def _pair(self) -> str:
        words = self.rng.choice(self.rows)[4].rstrip(".").lower().split()
        i = self.rng.randrange(len(words) - 1)
        return f"{words[i]} {words[i + 1]}"


def load_postgres(data: Data, url: str) -> float:
    import psycopg

    started = time.perf_counter()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("DROP INDEX ix_utterance_tsv")
        with cur.copy(
            "COPY conversation (id, title, token_hash, created_at, last_activity_at, status, "
            "processing_status, is_finished, is_all_chunks_transcribed, progress, reveal_count, "
            "revealed_at, language) FROM STDIN"
        ) as copy:
            for cid, at, lang, _ in data.convs:
                copy.write_row(
                    (cid, "bench", "x" * 64, at, at, "transcribed", "ready", True, True, 100, 1,
                     at, lang)
                )  # fmt: skip
        cur.execute(
            "CREATE TEMP TABLE staging (conversation_id text, position int, speaker text, "
            "start float8, text text, config text, meeting_at timestamp)"
        )
        with cur.copy("COPY staging FROM STDIN") as copy:
            for row in data.rows:
                copy.write_row(row)
        cur.execute(
            'INSERT INTO utterance (conversation_id, position, speaker, speaker_name, start, "end",'
            " text, config, meeting_at, tsv) SELECT conversation_id, position, speaker, speaker,"
            " start, start + 5, text, config, meeting_at, to_tsvector(config::regconfig, text)"
            " FROM staging"
        )
        cur.execute("CREATE INDEX ix_utterance_tsv ON utterance USING gin (tsv)")
        cur.execute("ANALYZE")
    return time.perf_counter() - started


def load_sqlite(data: Data, url: str) -> float:
    started = time.perf_counter()
    engine = db.get_engine()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO conversation (id, title, token_hash, created_at, last_activity_at, status,"
            " processing_status, is_finished, is_all_chunks_transcribed, progress, reveal_count,"
            " revealed_at, language) VALUES (?, 'bench', ?, ?, ?, 'transcribed', 'ready', 1, 1,"
            " 100, 1, ?, ?)",
            [(cid, "x" * 64, at, at, at, lang) for cid, at, lang, _ in data.convs],
        )
        conn.exec_driver_sql(
            'INSERT INTO utterance (conversation_id, position, speaker, speaker_name, start, "end",'
            " text, config, meeting_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c, p, s, s, t, t + 5, b, cfg, at) for c, p, s, t, b, cfg, at in data.rows],
        )
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) * 1000


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def scan(q: search.Query, postgres: bool) -> object:
    """The baseline. PostgreSQL: the same search (same query, ranking and snippets) with its
    indexes switched off for the transaction, so every row's tsvector is read. SQLite: every
    word found by a LIKE scan, newest first (FTS5 cannot be switched off)."""
    if postgres:
        with db.session_scope() as s:
            s.execute(text("SET LOCAL enable_bitmapscan = off"))
            s.execute(text("SET LOCAL enable_indexscan = off"))
            return search.search(s, q)
    words = q.text.strip('"').split()
    where = [f"text LIKE :w{i}" for i in range(len(words))]
    params: dict[str, object] = {f"w{i}": f"%{w}%" for i, w in enumerate(words)}
    if q.conversation_id:
        where.append("conversation_id = :cid")
        params["cid"] = q.conversation_id
    if q.speaker:
        where.append("speaker = :sp")
        params["sp"] = q.speaker
    if q.since and q.until:
        where.append("meeting_at >= :a AND meeting_at < :b")
        params.update(a=q.since, b=q.until)
    sql = text(
        f"SELECT id, text FROM utterance WHERE {' AND '.join(where)} "
        "ORDER BY meeting_at DESC LIMIT 21"
    )
    with db.session_scope() as s:
        return s.execute(sql, params).all()


def measure(name: str, data: Data, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    postgres = name == "PostgreSQL"
    classes = data.queries(args.queries)
    print(f"\n{name}: {len(data.convs):,} conversations, {len(data.rows):,} utterances")
    print(f"  {'query':<26} {'hits':>5} {'p50 ms':>8} {'p99 ms':>8} {'scan p50':>9} {'x':>6}")
    all_search, all_scan = [], []
    for label, queries in classes.items():
        times, hits = [], 0
        for q in queries:

            def run(q: search.Query = q) -> None:
                nonlocal hits
                with db.session_scope() as s:
                    found, _ = search.search(s, q)
                hits += len(found)

            times.append(timed(run))
        base = [timed(lambda q=q: scan(q, postgres)) for q in queries[: args.baseline_queries]]
        all_search += times
        all_scan += base
        p50, b50 = statistics.median(times), statistics.median(base)
        print(
            f"  {label:<26} {hits / len(queries):>5.1f} {p50:>8.1f} {pct(times, 99):>8.1f} "
            f"{b50:>9.1f} {b50 / p50:>6.1f}"
        )
    p50, b50 = statistics.median(all_search), statistics.median(all_scan)
    print(
        f"  {'all':<26} {'':>5} {p50:>8.1f} {pct(all_search, 99):>8.1f} {b50:>9.1f} "
        f"{b50 / p50:>6.1f}"
    )
    return all_search, all_scan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--utterances", type=int, default=40)
    ap.add_argument("--queries", type=int, default=40, help="per class")
    ap.add_argument("--baseline-queries", type=int, default=4, help="per class")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only (ratio from it)")
    args = ap.parse_args()

    started = time.perf_counter()
    data = Data(args.conversations, args.utterances, args.seed)
    print(f"generated in {time.perf_counter() - started:.1f}s")

    ratio_of: tuple[list[float], list[float]] | None = None
    if not args.no_postgres:
        import psycopg

        name = f"mina_bench_search_{uuid.uuid4().hex[:8]}"
        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
        admin.execute(f"CREATE DATABASE {name}")
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        try:
            migrate.upgrade(url)
            db.configure(url)
            print(f"PostgreSQL loaded in {load_postgres(data, url):.1f}s")
            ratio_of = measure("PostgreSQL", data, args)
        finally:
            db.get_engine().dispose()
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.close()

    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="mina-bench-search-") as tmp:
            lite = f"sqlite:///{os.path.join(tmp, 'mina.db')}"
            migrate.upgrade(lite)
            db.configure(lite)
            print(f"\nSQLite loaded in {load_sqlite(data, lite):.1f}s")
            lite_times = measure("SQLite", data, args)
            db.get_engine().dispose()
        ratio_of = ratio_of or lite_times
    if ratio_of is not None:
        found, scanned = ratio_of
        print(f"\nratio={statistics.median(scanned) / statistics.median(found):.1f}")


if __name__ == "__main__":
    main()
