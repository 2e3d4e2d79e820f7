"""Timed transcript segments and their text formats (txt, srt, vtt, json)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel


class Word(BaseModel):
    """One word with its own times (Whisper's word timestamps), on the segment's timeline.
    `text` keeps Whisper's leading space and punctuation; `speaker` is set by diarization."""

    start: float
    end: float
    text: str
    probability: float | None = None
    speaker: str | None = None

    def shifted(self, offset: float) -> Word:
        return self.model_copy(
            update={"start": round(self.start + offset, 3), "end": round(self.end + offset, 3)}
        )


class Segment(BaseModel):
    """One stretch of speech. Times are seconds from the start of the meeting. `words`, when
    the transcriber gives them, are the segment's words with their own times. `flag` marks a
    segment that is not a transcription: `inaudible` is speech that could not be transcribed
    (docs/transcription.md)."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    chunk_index: int | None = None
    words: list[Word] | None = None
    flag: str | None = None

    def shifted(self, offset: float, chunk_index: int | None = None) -> Segment:
        return self.model_copy(
            update={
                "start": round(self.start + offset, 3),
                "end": round(self.end + offset, 3),
                "chunk_index": self.chunk_index if chunk_index is None else chunk_index,
                "words": None if self.words is None else [w.shifted(offset) for w in self.words],
            }
        )


def segments_from_json(raw: Iterable[dict[str, Any]] | None) -> list[Segment]:
    return [Segment.model_validate(item) for item in raw or []]


def plain_text(segments: Sequence[Segment]) -> str:
    return " ".join(s.text.strip() for s in segments if s.text.strip())


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _label(seg: Segment) -> str:
    return f"{seg.speaker}: " if seg.speaker else ""


def to_txt(segments: Sequence[Segment]) -> str:
    return "".join(f"{_label(s)}{s.text.strip()}\n" for s in segments)


def to_srt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{n}\n{_stamp(s.start, ',')} --> {_stamp(s.end, ',')}\n{_label(s)}{s.text.strip()}\n"
        for n, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{_stamp(s.start, '.')} --> {_stamp(s.end, '.')}\n{_label(s)}{s.text.strip()}\n"
        for s in segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_json(segments: Sequence[Segment]) -> str:
    return json.dumps({"segments": [s.model_dump() for s in segments]}, indent=2)


FORMATS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "json": to_json}
MIMETYPES = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "json": "application/json",
}
