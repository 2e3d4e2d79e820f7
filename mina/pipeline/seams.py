"""Chunk boundaries: the audio around each cut transcribed again, joined, so a word the cut
split comes out once and right (docs/transcription.md).

Once both neighbours of a boundary are transcribed, the last ~`seam_seconds` of the left chunk
and the first ~`seam_seconds` of the right one (edges moved to the widest pause between words
nearby) are joined and transcribed; their words replace the words of both chunks inside that
window. Done eagerly by whichever neighbour finishes second, in its own actor, and again for any
boundary still open by the chunk that finishes last, before the barrier. A boundary in silence
costs no transcription.

The result is derived data, stored on the right chunk (`chunk.seam`) with the attempts of both
neighbours it was made from: a chunk transcribed again makes it stale, and `joined` ignores a
stale seam. Storing is conditional, so two workers making the same seam at once is harmless;
inside one process a boundary's seam (or the open tail before it) is made by one thread at a
time, and a thread that wanted it too looks again once it is stored instead of transcribing it
a second time (`_one_maker`).
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from sqlalchemy import select

from mina import audio, coverage, languages, vad
from mina.db import session_scope
from mina.errors import MinaError
from mina.models import Chunk, Conversation
from mina.pipeline.chunk_state import TERMINAL as CHUNK_TERMINAL
from mina.pipeline.chunk_state import TRANSCRIBED as CHUNK_TRANSCRIBED
from mina.providers.base import TranscriptionResult
from mina.settings import get_settings
from mina.storage import Storage
from mina.transcript import Segment, Word, segments_from_json

log = logging.getLogger(__name__)

#: How far the window's edges may move from `seam_seconds` to sit in a pause between words.
SNAP = 1.5
#: A gap between words at least this long is a pause to cut the window in.
PAUSE = 0.1
#: The same word this close in time in the seam and a chunk: they agree.
MATCH = 0.35
#: Speech this close to the cut makes a seam worth transcribing.
NEAR_CUT = 0.3
#: ... unless the VAD hears a pause this far on both sides of the cut, frame by frame: no word
#: crosses it, and both chunks heard their edge words whole.
QUIET_REACH = 0.1
#: A left chunk whose tail was left open (`flag: "open"`, mina.providers.whisper): the seam
#: window starts at least this long before the tail, so the seam hears the words leading into
#: it and agrees with the chunk on one of them.
TAIL_CONTEXT = 2.0


@runtime_checkable
class SampleTranscriber(Protocol):
    def transcribe_samples(
        self, samples: np.ndarray, language: str | None = None
    ) -> TranscriptionResult: ...


@dataclass(frozen=True)
class Side:
    """One neighbour of a boundary as it was read (the seam is only stored if still so)."""

    id: str
    index: int
    attempts: int
    duration: float
    segments: list[Segment]
    storage_key: str = ""

    @classmethod
    def of(cls, chunk: Chunk) -> Side:
        return cls(
            chunk.id,
            chunk.index,
            chunk.attempts,
            float(chunk.duration or 0.0),
            segments_from_json(chunk.segments),
            chunk.storage_key or "",
        )

    @property
    def tail(self) -> float | None:
        """Where this chunk's open tail starts: its transcription stopped there for the seam."""
        return open_tail(self.segments)


def open_tail(segments: list[Segment]) -> float | None:
    marks = [s.start for s in segments if s.flag == coverage.OPEN]
    return marks[0] if marks else None


def _tail_of(chunk: Chunk) -> float | None:
    marks = [s.get("start") for s in chunk.segments or [] if s.get("flag") == coverage.OPEN]
    return float(marks[0]) if marks else None


def valid(seam: dict[str, Any] | None, left: Chunk, right: Chunk) -> bool:
    return (
        bool(seam)
        and seam.get("left_attempts") == left.attempts  # type: ignore[union-attr]
        and seam.get("right_attempts") == right.attempts  # type: ignore[union-attr]
    )


def _has_words(chunk: Chunk) -> bool:
    return any(s.get("words") is not None for s in chunk.segments or [])


def _open_pairs(
    session: Any, conversation_id: str, rights: set[int] | None
) -> list[tuple[Side, Side]]:
    chunks = session.scalars(
        select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
    ).all()
    pairs = []
    for left, right in itertools.pairwise(chunks):
        if rights is not None and right.index not in rights:
            continue
        if right.index != left.index + 1 or not (left.duration and right.duration):
            continue
        if left.status != CHUNK_TRANSCRIBED or right.status != CHUNK_TRANSCRIBED:
            continue
        if valid(right.seam, left, right):
            continue
        if not (_has_words(left) and _has_words(right)) and _tail_of(left) is None:
            continue
        pairs.append((Side.of(left), Side.of(right)))
    return pairs


def _seamed(left: Chunk, right: Chunk | None) -> bool:
    """The boundary after `left` has a transcribed seam (which then holds its open tail)."""
    return (
        right is not None
        and right.index == left.index + 1
        and right.status == CHUNK_TRANSCRIBED
        and valid(right.seam, left, right)
        and right.seam is not None
        and right.seam.get("segments") is not None
    )


def _tail_valid(chunk: Chunk) -> bool:
    tail = (chunk.seam or {}).get("tail")
    return isinstance(tail, dict) and tail.get("attempts") == chunk.attempts


def _open_tails(session: Any, conversation_id: str) -> list[Side]:
    """Transcribed chunks whose open tail no transcribed seam covers: the last chunk, a right
    neighbour that failed or is missing, or a seam that could not be made (asked once no chunk
    is in flight, after `repair` made the seams it could)."""
    chunks = session.scalars(
        select(Chunk).where(Chunk.conversation_id == conversation_id).order_by(Chunk.index)
    ).all()
    out = []
    for left, right in itertools.zip_longest(chunks, chunks[1:]):
        if left.status != CHUNK_TRANSCRIBED or _tail_of(left) is None or _tail_valid(left):
            continue
        if not _seamed(left, right):  # incl. a seam that could not be made (repair tried)
            out.append(Side.of(left))
    return out


def wanted() -> bool:
    """Seams are made: switched on, and the transcriber gives word times (the local model)."""
    settings = get_settings()
    return settings.whisper_seams and settings.transcriber == "local"


def open_in(session: Any, conversation_id: str) -> bool:
    """Some boundary between two transcribed chunks still lacks its seam, or a chunk's open
    tail has neither a seam nor its own transcription (asked once no chunk is in flight)."""
    return bool(_open_pairs(session, conversation_id, None)) or bool(
        _open_tails(session, conversation_id)
    )


def repair(
    conversation_id: str,
    rights: set[int] | None,
    transcriber: object,
    storage: Storage,
    seconds: float,
    language: str | None = None,
) -> int:
    """Make the open seams before the chunks `rights` (None: every one); how many were made."""
    if not isinstance(transcriber, SampleTranscriber):
        return 0  # a remote provider: no word times to join by
    with session_scope() as session:
        pairs = _open_pairs(session, conversation_id, rights)
    made = 0
    for left, right in pairs:
        with _one_maker(conversation_id, right.index):
            if not _still_open(left, right):  # made meanwhile (by the thread waited for)
                continue
            made += _make_and_store(
                left, right, transcriber, storage, conversation_id, seconds, language
            )
    if rights is None:  # before the barrier: tails no seam will cover are transcribed here
        made += _close_tails(conversation_id, transcriber, storage, language)
    return made


def _make_and_store(
    left: Side,
    right: Side,
    transcriber: SampleTranscriber,
    storage: Storage,
    conversation_id: str,
    seconds: float,
    language: str | None,
) -> int:
    started = time.monotonic()
    try:
        seam = make(left, right, transcriber, storage, conversation_id, seconds, language)
    except (MinaError, ValueError, OSError) as exc:
        # The chunks' own words stand; the next repair (before the barrier) tries again.
        log.warning(
            "conversation %s: seam %d|%d not made: %s",
            conversation_id,
            left.index,
            right.index,
            exc,
        )
        return 0
    if not store(left, right, seam):
        return 0
    log.info(
        "conversation %s: seam %d|%d made in %.2fs (%s)",
        conversation_id,
        left.index,
        right.index,
        time.monotonic() - started,
        "transcribed" if seam.get("segments") is not None else "silent",
    )
    return 1


# --- one maker per boundary in this process ----------------------------------------------------

_making: set[tuple[str, int]] = set()
_made = threading.Condition()


@contextmanager
def _one_maker(conversation_id: str, right_index: int) -> Iterator[None]:
    """Hold the boundary before chunk `right_index` (its seam, and the open tail of the chunk
    before it) for this thread: another thread of this process that wants it waits here until
    it is released, then looks again (`_still_open`, `_tail_still_open`) before transcribing.

    Without it the chunk that finished last, the chunk before it and a `seam_and_settle` all
    made the last boundary's seam, and transcribed the open tail it covers, while it was still
    in flight: on bench/embedded.py's meeting, under load, 3 extra model calls of 21 at the end
    of the run, one of them after the reveal (delaying the exit); a race, absent on a quiet
    machine. Across processes storing stays conditional (`store`, `_close_tails`): at worst a
    call is wasted."""
    key = (conversation_id, right_index)
    with _made:
        while key in _making:
            _made.wait()
        _making.add(key)
    try:
        yield
    finally:
        with _made:
            _making.discard(key)
            _made.notify_all()


def _still_open(left: Side, right: Side) -> bool:
    """The seam between the two is still to be made from these attempts (as `store` checks)."""
    with session_scope() as session:
        before, row = session.get(Chunk, left.id), session.get(Chunk, right.id)
        return (
            row is not None
            and before is not None
            and row.status == CHUNK_TRANSCRIBED
            and before.status == CHUNK_TRANSCRIBED
            and (before.attempts, row.attempts) == (left.attempts, right.attempts)
            and not valid(row.seam, before, row)
        )


def _tail_still_open(conversation_id: str, side: Side) -> bool:
    """The chunk's open tail still has neither its own transcription nor a seam after it."""
    with session_scope() as session:
        rows = session.scalars(
            select(Chunk).where(
                Chunk.conversation_id == conversation_id,
                Chunk.index.in_([side.index, side.index + 1]),
            )
        ).all()
        left = next((c for c in rows if c.index == side.index), None)
        right = next((c for c in rows if c.index == side.index + 1), None)
        return (
            left is not None
            and left.status == CHUNK_TRANSCRIBED
            and left.attempts == side.attempts
            and not _tail_valid(left)
            and not _seamed(left, right)
        )


def _close_tails(
    conversation_id: str, transcriber: SampleTranscriber, storage: Storage, language: str | None
) -> int:
    """Transcribe each open tail that no seam covers (what faster-whisper's second window would
    have decoded: the audio from where the chunk's words stop), kept on the chunk's `seam`
    JSON as `tail` with the chunk's attempt."""
    with session_scope() as session:
        sides = _open_tails(session, conversation_id)
    done = 0
    for side in sides:
        with _one_maker(conversation_id, side.index + 1):
            if _tail_still_open(conversation_id, side):  # else covered meanwhile
                done += _close_tail(conversation_id, side, transcriber, storage, language)
    return done


def _close_tail(
    conversation_id: str,
    side: Side,
    transcriber: SampleTranscriber,
    storage: Storage,
    language: str | None,
) -> int:
    tail = side.tail
    assert tail is not None
    try:
        with tempfile.TemporaryDirectory(prefix="mina-tail-") as tmp:
            samples = _samples(storage, conversation_id, side, Path(tmp))
        result = transcriber.transcribe_samples(samples[int(tail * vad.RATE) :], language)
    except (MinaError, ValueError, OSError) as exc:
        log.warning(
            "conversation %s: open tail of chunk %d not transcribed: %s",
            conversation_id,
            side.index,
            exc,
        )
        return 0
    segments = [s.shifted(tail).model_dump(exclude_none=True) for s in result.segments]
    with session_scope() as session:
        row = session.get(Chunk, side.id, with_for_update=True)
        if row is None or row.status != CHUNK_TRANSCRIBED or row.attempts != side.attempts:
            return 0
        row.seam = {
            **(row.seam or {}),
            "tail": {"attempts": side.attempts, "segments": segments},
        }
    log.info("conversation %s: open tail of chunk %d transcribed", conversation_id, side.index)
    return 1


def _can_make(svc: Any) -> bool:
    """Seams switched on and a transcriber that can make them (word times from samples): else
    `repair` makes none, and nothing needs reading first (two transactions a chunk saved)."""
    return bool(svc.settings.whisper_seams) and isinstance(svc.transcriber, SampleTranscriber)


def repair_around(conversation_id: str, index: int, svc: Any) -> int:
    """The eager step of the chunk `index` that just finished: its two boundaries."""
    if not _can_make(svc):
        return 0
    return repair(
        conversation_id,
        {index, index + 1},
        svc.transcriber,
        svc.storage,
        svc.settings.seam_seconds,
        languages.for_chunk(conversation_id),
    )


def repair_before_barrier(conversation_id: str, svc: Any) -> int:
    """Every boundary still open, once the conversation is finished and no chunk is in flight
    (the barrier is about to pass): normally none, after a crash between two steps a few."""
    if not _can_make(svc):
        return 0
    with session_scope() as session:
        conv = session.get(Conversation, conversation_id)
        if conv is None or not conv.is_finished or conv.is_all_chunks_transcribed:
            return 0
        statuses = session.scalars(
            select(Chunk.status).where(Chunk.conversation_id == conversation_id)
        ).all()
        if any(s not in CHUNK_TERMINAL for s in statuses):
            return 0
    return repair(
        conversation_id,
        None,
        svc.transcriber,
        svc.storage,
        svc.settings.seam_seconds,
        languages.for_chunk(conversation_id),
    )


# --- making one seam -------------------------------------------------------------------------


def _words(side: Side) -> list[tuple[float, float]]:
    return [(w.start, w.end) for s in side.segments for w in s.words or []]


def _edge(words: list[tuple[float, float]], target: float, lo: float, hi: float) -> float:
    """A point near `target`: in the widest pause between words within [lo, hi], else at the
    start of the word `target` falls in (never inside a word)."""
    best, width = None, PAUSE
    for (_, end), (start, _) in itertools.pairwise(words):
        mid = (end + start) / 2
        if lo <= mid <= hi and start - end >= width:
            best, width = mid, start - end
    if best is not None:
        return best
    inside = [w for w in words if w[0] < target < w[1]]
    return inside[0][0] if inside else target


def window(left: Side, right: Side, seconds: float) -> tuple[float, float]:
    """(a, b): the seam spans the left chunk from `a` and the right chunk until `b`."""
    lw, rw = _words(left), _words(right)
    target_a = left.duration - seconds
    latest = left.duration - 1.0
    if left.tail is not None:  # the seam transcribes the open tail, with words before it
        target_a = min(target_a, left.tail - TAIL_CONTEXT)
        latest = min(latest, left.tail - TAIL_CONTEXT / 2)
    a = 0.0
    if target_a > SNAP:  # else the whole (short) left chunk
        a = _edge(lw, target_a, target_a - SNAP, min(target_a + SNAP, latest))
    b = right.duration
    if seconds < right.duration - SNAP:
        b = _edge(rw, seconds, max(1.0, seconds - SNAP), seconds + SNAP)
    return max(0.0, a), min(right.duration, b)


def _samples(storage: Storage, conversation_id: str, side: Side, tmp: Path) -> np.ndarray:
    """The chunk's normalized audio: the copy transcription keeps until merge is done, else
    (a chunk transcribed again after the barrier) normalized again from the original."""
    from mina.pipeline.transcribe import normalized_key  # the module that writes them

    key = normalized_key(conversation_id, side.index)
    if not storage.exists(key):
        src = storage.local_path(side.storage_key) or tmp / f"{side.index}.orig"
        if not src.exists():
            storage.download(side.storage_key, src)
        path = tmp / f"{side.index}.wav"
        audio.normalize(src, path)
    else:
        path = storage.local_path(key) or tmp / Path(key).name
        if not path.exists():
            storage.download(key, path)
    samples = audio.read_normalized(path)
    if samples is None:
        raise ValueError(f"{key} is not a normalized WAV")
    return samples


def make(
    left: Side,
    right: Side,
    transcriber: SampleTranscriber,
    storage: Storage,
    conversation_id: str,
    seconds: float,
    language: str | None,
) -> dict[str, Any]:
    """The seam between `left` and `right` (times relative to the right chunk's start)."""
    a, b = window(left, right, seconds)
    seam: dict[str, Any] = {
        "left_id": left.id,
        "left_attempts": left.attempts,
        "right_attempts": right.attempts,
        "from": round(a - left.duration, 3),
        "to": round(b, 3),
        "segments": None,
    }
    with tempfile.TemporaryDirectory(prefix="mina-seam-") as tmp:
        head = _samples(storage, conversation_id, left, Path(tmp))
        tail = _samples(storage, conversation_id, right, Path(tmp))
    joined = np.concatenate([head[int(a * vad.RATE) :], tail[: int(b * vad.RATE)]])
    cut = (head.size - int(a * vad.RATE)) / vad.RATE
    speech = vad.speech(joined)
    if left.tail is None and (
        not any(s.start - NEAR_CUT < cut < s.end + NEAR_CUT for s in speech)
        or vad.quiet(joined, cut, QUIET_REACH)
    ):
        return seam  # the cut is in a pause: both chunks' own words stand
    result = transcriber.transcribe_samples(joined, language)
    segments = [s.shifted(a - left.duration) for s in result.segments]
    start, end, kept = anchored(segments, left, right, seam["from"], seam["to"])
    seam["segments"] = [s.model_dump(exclude_none=True) for s in kept]
    seam["from"], seam["to"] = round(start, 3), round(end, 3)
    return seam


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _match(word: Word, words: list[Word]) -> Word | None:
    text = _norm(word.text)
    for w in words:
        if text and _norm(w.text) == text and abs(w.start - word.start) < MATCH:
            return w
    return None


def anchored(
    segments: list[Segment], left: Side, right: Side, start: float, end: float
) -> tuple[float, float, list[Segment]]:
    """The seam's words between its first word that agrees with the left chunk's (same word at
    the same time) and its last that agrees with the right chunk's, and the times they replace.

    The window's edges cut through audio the seam hears without context (a word's onset, its
    tail): where the chunks agree with the seam, their words stand; the seam's replace theirs
    only between the agreeing words. Without an agreeing word, the window's edge is used.
    All times are relative to the right chunk's start."""
    lw = [w.shifted(-left.duration) for s in left.segments for w in s.words or []]
    rw = [w for s in right.segments for w in s.words or []]
    sw = [w for s in segments for w in s.words or []]
    first, last = 0, len(sw) - 1
    for i, w in enumerate(sw):
        if w.start >= 0:
            break
        if (m := _match(w, lw)) is not None:
            first, start = i, m.start
            break
    for k in range(len(sw) - 1, -1, -1):
        w = sw[k]
        if w.end <= 0:
            break
        if (m := _match(w, rw)) is not None:
            last, end = k, m.end
            break
    keep = {id(w) for w in sw[first : last + 1]}
    out = []
    for seg in segments:
        if seg.flag:
            if start <= (seg.start + seg.end) / 2 < end:
                out.append(seg)
            continue
        words = [w for w in seg.words or [] if id(w) in keep]
        if words:
            out.append(coverage.with_words(seg, words))
    return start, end, out


def store(left: Side, right: Side, seam: dict[str, Any]) -> bool:
    """Keep the seam if both neighbours are still as they were read and no valid seam is there."""
    with session_scope() as session:
        row = session.get(Chunk, right.id, with_for_update=True)
        before = session.get(Chunk, left.id)
        if row is None or before is None:
            return False
        if row.status != CHUNK_TRANSCRIBED or before.status != CHUNK_TRANSCRIBED:
            return False
        if (before.attempts, row.attempts) != (left.attempts, right.attempts):
            return False
        if valid(row.seam, before, row):
            return False
        tail = (row.seam or {}).get("tail")  # the right chunk's own open tail, if transcribed
        row.seam = {**seam, "tail": tail} if tail else seam
    return True


# --- reading: chunks and seams on one timeline -------------------------------------------------


def joined(chunks: list[Chunk]) -> list[Segment]:
    """Chunk segments on one timeline (each chunk starts where the ones before it ended), the
    words inside each valid seam's window replaced by the seam's."""
    out: list[Segment] = []
    offset = 0.0
    previous: Chunk | None = None
    for chunk, after in itertools.zip_longest(chunks, chunks[1:]):
        if chunk.status == CHUNK_TRANSCRIBED:
            own = [
                s.shifted(offset, chunk.index)
                for s in segments_from_json(chunk.segments)
                if s.flag != coverage.OPEN  # a marker: the seam or the tail below has the words
            ]
            if _tail_valid(chunk) and not _seamed(chunk, after):
                own += [
                    s.shifted(offset, chunk.index)
                    for s in segments_from_json(chunk.seam["tail"]["segments"])  # type: ignore[index]
                ]
            seam = chunk.seam
            if (
                previous is not None
                and previous.status == CHUNK_TRANSCRIBED
                and previous.index == chunk.index - 1
                and valid(seam, previous, chunk)
                and seam is not None
                and seam.get("segments") is not None
            ):
                a, b = offset + float(seam["from"]), offset + float(seam["to"])
                out = _outside(out, a, b)
                own = _outside(own, a, b)
                out += [
                    s.shifted(offset, chunk.index) for s in segments_from_json(seam["segments"])
                ]
            out += own
        offset += chunk.duration or 0.0
        previous = chunk
    return sorted(out, key=lambda s: s.start) if any(c.seam for c in chunks) else out


def _outside(segments: list[Segment], a: float, b: float) -> list[Segment]:
    """The segments without their words whose middle lies in [a, b)."""
    out = []
    for seg in segments:
        if seg.flag:  # an inaudible mark inside the window: the seam transcribed it again
            if not a <= (seg.start + seg.end) / 2 < b:
                out.append(seg)
            continue
        if seg.words is None:
            out.append(seg)
            continue
        words = [w for w in seg.words if not a <= (w.start + w.end) / 2 < b]
        if words:
            out.append(coverage.with_words(seg, words))
    return out
