"""Chunks normalized at once in a worker process share ffmpeg children.

Decoding a 30 s chunk to 16 kHz costs ffmpeg ~30 ms of CPU, and starting ffmpeg ~60 ms more
(the dynamic loader binds the symbols of its ~200 libraries), so when many chunks arrive at once
(a finished hour of recording, bench/hour.py) most of the worker's CPU went to starting
children. Here a thread that wants a chunk normalized runs ffmpeg at once if fewer than
`children` (the cores) are running; otherwise it waits, and the next thread to start a child
takes every waiting chunk, up to `MOST`, into it (`mina.audio.normalize_many`: the same bytes as
one child per chunk). Nobody waits for a timer: a lone chunk is normalized as before.

A child that fails leaves each of its chunks to be normalized alone by its own thread, so a
chunk's error (corrupt audio, a timeout) is exactly the one `normalize` gives, and the others
are not held by it. A source larger than `MOST_BYTES` (far past a 30 s chunk) runs alone too, so
it never delays the small ones batched with it, and so does a normalized WAV (copied, as ever).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from mina import audio
from mina.errors import MinaError

#: Chunks one child takes at most (its CPU per 30 s chunk: 90 ms alone, 49 ms for 4, 41 ms
#: for 8, measured on this 2-core machine with Debian's ffmpeg 5.1).
MOST = 8
#: Larger sources are normalized alone.
MOST_BYTES = 4 << 20


@dataclass(eq=False)
class _Job:
    src: Path
    dst: Path
    done: bool = False
    alone: bool = False  # its child failed: the owner normalizes it alone


class Normalizer:
    def __init__(self, children: int | None = None, most: int = MOST) -> None:
        self.children = max(1, children or os.cpu_count() or 1)
        self.most = max(1, most)
        self._cond = threading.Condition()
        self._waiting: list[_Job] = []
        self._running = 0
        self.batches = 0  # children started, and chunks they took (benches, tests)
        self.chunks = 0

    def normalize(self, src: audio.StrPath, dst: audio.StrPath) -> float:
        """`mina.audio.normalize(src, dst)`, maybe in one child with others asked for now."""
        src, dst = Path(src), Path(dst)
        if self.most == 1 or not _small(src) or audio.is_normalized(src):
            return audio.normalize(src, dst)
        job = _Job(src, dst)
        with self._cond:
            self._waiting.append(job)
            try:
                while not job.done and (job not in self._waiting or self._running >= self.children):
                    self._cond.wait()
            except BaseException:  # e.g. the actor's time limit, raised in this thread
                if job in self._waiting:
                    self._waiting.remove(job)  # no child should take a chunk nobody waits for
                raise
            batch: list[_Job] = []
            if not job.done:  # this thread starts the next child: its chunk and those waiting
                batch = [job, *[j for j in self._waiting if j is not job][: self.most - 1]]
                for j in batch:
                    self._waiting.remove(j)
                self._running += 1
                self.batches += 1
                self.chunks += len(batch)
        if len(batch) == 1:
            try:
                return audio.normalize(src, dst)
            finally:
                self._ended(batch)
        if batch:
            try:
                audio.normalize_many([(j.src, j.dst) for j in batch])
            except MinaError:
                for j in batch:
                    j.alone = True
            finally:
                self._ended(batch)
        if job.alone or not dst.is_file():
            # Its child failed, or was stopped before this chunk's output was in place (an
            # exception raised in the thread that ran it): normalized alone, as ever.
            return audio.normalize(src, dst)
        return audio.duration(dst)

    def _ended(self, batch: list[_Job]) -> None:
        with self._cond:
            self._running -= 1
            for j in batch:
                j.done = True
            self._cond.notify_all()


def _small(src: Path) -> bool:
    """At most `MOST_BYTES`; False for a missing file too (alone, it fails as it always did)."""
    try:
        return src.stat().st_size <= MOST_BYTES
    except OSError:
        return False


_shared: Normalizer | None = None
_shared_lock = threading.Lock()


def normalize(src: audio.StrPath, dst: audio.StrPath) -> float:
    """`mina.audio.normalize` through this process's `Normalizer`."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Normalizer()
    return _shared.normalize(src, dst)
