"""Speech that could not be transcribed is kept in sight: the chunk's warning is persisted, in
its event, in the operator's chunk detail, and marked in the transcript (never dropped).

Which speech the local transcriber cannot cover is tested on real audio and with decoders in
tests/unit (test_coverage, test_whisper_vad); here a transcriber passed in reports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mina import coverage
from mina.dispatch import NullDispatcher
from mina.pipeline.transcribe import run_chunk
from mina.providers.base import TranscriptionResult
from mina.services import Services
from mina.settings import get_settings
from mina.storage import build_storage
from mina.transcript import Segment, Word
from tests.fixtures.audio import Meeting, meeting
from tests.fixtures.conversations import create, events_of, upload
from tests.fixtures.stack import OPERATOR

pytestmark = pytest.mark.embedded


class PartlyInaudible:
    """Hears the first words of a chunk and reports the rest as speech it could not cover."""

    name = "local"

    def transcribe(self, wav_path: Path, language: str | None = None) -> TranscriptionResult:
        heard = Segment(
            start=0.5, end=1.2, text="Hello.", words=[Word(start=0.5, end=1.2, text=" Hello.")]
        )
        lost = Segment(start=2.0, end=5.5, text=coverage.INAUDIBLE, flag="inaudible")
        return TranscriptionResult(
            [heard, lost], "en", warnings=[coverage.inaudible_warning(2, 5.5)]
        )


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Meeting:
    return meeting(tmp_path_factory.mktemp("short"), minutes=0.2, chunk_seconds=30)


def test_a_chunk_warning_is_kept_and_shown_to_operators(client: Any, short: Meeting) -> None:
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, short.chunks[0])
    settings = get_settings()
    svc = Services(settings, build_storage(settings), NullDispatcher(), PartlyInaudible())
    assert run_chunk(chunk_id, svc) == "transcribed"

    detail = client.get(f"/api/operator/conversations/{cid}", headers=OPERATOR).get_json()
    [chunk] = detail["chunks"]
    assert chunk["warnings"] == [
        {
            "kind": "inaudible",
            "start": 2.0,
            "end": 5.5,
            "message": "speech at 2.0-5.5s could not be transcribed",
        }
    ]
    [event] = [e for e in events_of(cid) if e.type == "chunk_transcribed"]
    assert event.payload["warnings"] == chunk["warnings"]
    body = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    assert [s["text"] for s in body["segments"]] == ["Hello.", "[inaudible]"]
    assert body["segments"][1]["flag"] == "inaudible"
    assert body["segments"][0]["flag"] is None
