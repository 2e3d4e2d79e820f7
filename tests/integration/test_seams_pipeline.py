"""Seams in the running pipeline: real workers transcribe two chunks cut inside a word, the
second to finish repairs the boundary, and the transcript has the word once and right. Making
the seam again (a duplicate, or two workers at once) changes nothing."""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mina import synth
from mina.db import session_scope
from mina.models import Chunk
from mina.pipeline import seams
from mina.providers import get_transcriber
from mina.providers.whisper import samples_of
from mina.settings import get_settings
from mina.storage import build_storage
from tests.fixtures.audio import normalize_words, wer
from tests.fixtures.conversations import chunk_row, create, status, upload
from tests.fixtures.stack import wait_for

pytestmark = pytest.mark.embedded

TEXT = (
    "Our quarterly planning meeting moves to the small conference room on Wednesday. "
    "Please bring the updated hiring numbers and the travel budget."
)


@pytest.fixture(scope="module")
def two_chunks(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The sentence cut inside "planning" (2 s in, where espeak-ng speaks it at this rate)."""
    d = tmp_path_factory.mktemp("cut")
    synth.make_meeting([synth.Line("Bob", TEXT)], d / "raw.wav")
    subprocess.run(
        ["sox", str(d / "raw.wav"), "-r", "16000", "-c", "1", "-b", "16", str(d / "all.wav")],
        check=True,
        timeout=60,
    )
    samples = samples_of(d / "all.wav")
    cut = int(1.5 * 16000)
    paths = []
    for index, part in enumerate([samples[:cut], samples[cut:]]):
        path = d / f"{index}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((np.clip(part, -1, 1) * 32767).astype("<i2").tobytes())
        paths.append(path)
    return paths


def test_the_second_chunk_to_finish_repairs_the_boundary(
    client: Any, workers: Any, two_chunks: list[Path]
) -> None:
    workers()
    cid, auth = create(client)
    ids = [upload(client, cid, auth, i, p) for i, p in enumerate(two_chunks)]
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    wait_for(lambda: status(client, cid, auth)["is_all_chunks_transcribed"], timeout=180)

    left, right = chunk_row(ids[0]), chunk_row(ids[1])
    assert right.seam is not None and right.seam["segments"]
    assert (right.seam["left_attempts"], right.seam["right_attempts"]) == (
        left.attempts,
        right.attempts,
    )
    body = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    said = " ".join(s["text"] for s in body["segments"])
    assert wer(TEXT, said) <= 0.1
    assert normalize_words(said).split().count("quarterly") == 1

    # Again, as a duplicate message or a second worker would: nothing is made or changed.
    settings = get_settings()
    transcriber, storage = get_transcriber(settings), build_storage(settings)
    assert seams.repair(cid, None, transcriber, storage, settings.seam_seconds) == 0
    again = seams.make(
        seams.Side.of(left), seams.Side.of(right), transcriber, storage, cid, 4.0, "en"
    )
    assert seams.store(seams.Side.of(left), seams.Side.of(right), again) is False
    assert chunk_row(ids[1]).seam == right.seam

    # The left chunk transcribed again (an operator's retry): the seam is stale until remade.
    with session_scope() as s:
        row = s.get(Chunk, ids[0])
        assert row is not None
        row.attempts += 1
    assert seams.repair(cid, None, transcriber, storage, settings.seam_seconds) == 1
    assert chunk_row(ids[1]).seam["left_attempts"] == left.attempts + 1  # type: ignore[index]


def test_the_barrier_waits_for_a_boundary_left_without_its_seam(
    client: Any, workers: Any, two_chunks: list[Path]
) -> None:
    """A worker stopped between a chunk's transcription and its seam, then `/finish`: the web
    does not pass the barrier on a transcript missing the seam; a worker makes it first."""
    workers()
    cid, auth = create(client)
    ids = [upload(client, cid, auth, i, p) for i, p in enumerate(two_chunks)]
    wait_for(lambda: all(chunk_row(i).status == "transcribed" for i in ids), timeout=180)
    wait_for(lambda: chunk_row(ids[1]).seam is not None, timeout=60)
    with session_scope() as s:  # as if the eager seam had never been made
        row = s.get(Chunk, ids[1])
        assert row is not None
        row.seam = None

    class Recorder:
        def __init__(self) -> None:
            self.seams: list[str] = []

        def seam_and_settle(self, conversation_id: str) -> None:
            self.seams.append(conversation_id)

    recorder = Recorder()
    from mina.pipeline import barrier

    # The finish path runs this barrier in the web; it must defer, not pass.
    with session_scope() as s:
        from mina.models import Conversation

        conv = s.get(Conversation, cid)
        assert conv is not None
        conv.is_finished = True
    assert barrier.settle(cid, recorder) is False  # type: ignore[arg-type]
    assert recorder.seams == [cid]
    assert not status(client, cid, auth)["is_all_chunks_transcribed"]
    with session_scope() as s:
        conv = s.get(Conversation, cid)
        assert conv is not None
        conv.is_finished = False

    # The real path: /finish queues seam_and_settle to a worker, which makes the seam first.
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    wait_for(lambda: status(client, cid, auth)["is_all_chunks_transcribed"], timeout=180)
    assert chunk_row(ids[1]).seam is not None
