"""Merge memory and time: the `merge` post-processing task on generated 15, 30 and 60-minute
conversations (30 s Opus chunks, stored and in the database like uploads), each merge in a
process of its own so its peak RSS (and that of the ffmpeg processes it starts) is its own.

Baseline in the same run: one plain `ffmpeg` concat of the same chunk files to Opus (what
the merge does at the least: decode everything, encode once). Printed per length: merge
seconds, baseline seconds, peak RSS of the merging Python process and of its largest ffmpeg
child, seconds per audio minute (linear in length if flat). The chunks' normalized copies are
not kept here, so the merge normalizes every original again (the slower path; in the pipeline
transcription usually kept them). Targets: peak RSS <= 200 MB, time linear in length.
Last line: `ratio=<merge seconds / baseline seconds at the longest length>`.

    .venv/bin/python bench/merge.py [--minutes 15 30 60] [--redis-db 9]

About 1-3 minutes on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import services  # noqa: E402
from bench.ingest import make_chunk  # noqa: E402


def seed_conversation(chunk: Path, count: int) -> tuple[str, list[Path]]:
    """A finished conversation of `count` transcribed 30 s chunks; their stored files."""
    import hashlib

    from mina import conversations
    from mina.db import session_scope, utcnow
    from mina.ingest import chunk_key
    from mina.models import Chunk
    from mina.settings import get_settings
    from mina.storage import build_storage

    storage = build_storage(get_settings())
    data = chunk.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    files: list[Path] = []
    with session_scope() as s:
        conv, _ = conversations.create(s, f"merge {count}")
        cid = conv.id
        for i in range(count):
            key = chunk_key(cid, i, sha, "audio/ogg")
            storage.put_file(key, chunk)
            path = storage.local_path(key)
            assert path is not None
            files.append(path)
            s.add(
                Chunk(
                    conversation_id=cid,
                    index=i,
                    sha256=sha,
                    size=len(data),
                    mime="audio/ogg",
                    storage_key=key,
                    duration=30.0,
                    status="transcribed",
                    attempts=1,
                    finished_at=utcnow(),
                )
            )
    return cid, files


def child(conversation_id: str) -> None:
    """In the measured process: one merge, then its figures as JSON on stdout."""
    from mina import db
    from mina.pipeline.work import merge
    from mina.settings import get_settings
    from workers.services import services as worker_services

    db.configure(get_settings().resolved_database_url)
    started = time.perf_counter()
    out = merge(conversation_id, worker_services())
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                "duration": out["duration"],
            }
        )
    )


def baseline(files: list[Path], work: Path) -> tuple[float, float]:
    """(seconds, peak RSS MB) of one ffmpeg concat of the files to Opus."""
    listing = work / "list.txt"
    listing.write_text("".join(f"file '{f}'\n" for f in files))
    out = work / "plain.ogg"
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing)]
    cmd += ["-ac", "1", "-ar", "16000", "-c:a", "libopus", "-b:a", "24k", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit("ffmpeg concat failed")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[15, 30, 60])
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    work = Path(tempfile.mkdtemp(prefix="mina-merge-bench-"))
    name = services.configure(work, args.redis_db, {"MINA_TRANSCRIBER": "simulated"})
    services.admin(f"CREATE DATABASE {name}")
    try:
        from mina import db
        from mina.settings import get_settings
        from mina_cli import migrate

        url = get_settings().resolved_database_url
        migrate.upgrade(url)
        db.configure(url)
        chunk = work / "chunk.ogg"
        make_chunk(work)
        print(
            f"merge of generated conversations of 30 s Opus chunks; cores={os.cpu_count()}, "
            f"load={os.getloadavg()[0]:.2f} (a shared machine: others were running too)"
        )
        print(f"{'minutes':>7} {'chunks':>6} {'merge s':>8} {'ffmpeg s':>8} {'s/min':>6} "
              f"{'python MB':>9} {'ffmpeg MB':>9} {'plain MB':>8}")  # fmt: skip
        last_ratio = 0.0
        peak = 0.0
        per_minute: list[float] = []
        for minutes in args.minutes:
            cid, files = seed_conversation(chunk, minutes * 2)
            proc = subprocess.run(
                [sys.executable, __file__, "--child", cid],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"merge failed:\n{proc.stderr[-3000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            base_s, base_mb = baseline(files, work)
            peak = max(peak, got["self_mb"], got["children_mb"])
            per_minute.append(got["seconds"] / minutes)
            last_ratio = got["seconds"] / base_s
            print(
                f"{minutes:7d} {len(files):6d} {got['seconds']:8.2f} {base_s:8.2f} "
                f"{got['seconds'] / minutes:6.3f} {got['self_mb']:9.0f} {got['children_mb']:9.0f} "
                f"{base_mb:8.0f}",
                flush=True,
            )
        spread = max(per_minute) / min(per_minute)
        print(
            f"peak RSS {peak:.0f} MB (target <= 200: {'met' if peak <= 200 else 'NOT met'}); "
            f"seconds per audio minute vary x{spread:.2f} across lengths (1.00 = linear)"
        )
        print(f"ratio={last_ratio:.2f}")
    finally:
        from mina import db as _db

        try:
            _db.get_engine().dispose()
        finally:
            services.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
