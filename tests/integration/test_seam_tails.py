"""A chunk cut inside speech is decoded in one Whisper window, its open tail left to the seam
(docs/transcription.md): real workers, real espeak-ng speech cut 30 s in, mid-sentence.

With a right neighbour the seam gives the tail's words; with none (the last chunk) they are
transcribed on their own before the barrier passes. Either way no word at the cut is lost, and
none is doubled.
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mina import coverage, synth
from mina.providers.whisper import samples_of
from tests.fixtures.audio import normalize_words, wer
from tests.fixtures.conversations import chunk_row, create, status, upload
from tests.fixtures.stack import wait_for

pytestmark = pytest.mark.embedded

TEXT = (
    "The quarterly marketing presentation is scheduled for tomorrow afternoon in the big "
    "conference room. Everyone should bring the updated customer numbers and the travel budget "
    "for next year. After the presentation we will discuss the hiring plan for the support team "
    "and the new office in Berlin. Please send your questions to Maria before Thursday so that "
    "she can prepare the answers. The budget review moves to the second week of March because "
    "the finance team is still closing the books for the last quarter and needs more time."
)
#: Spoken between ~25 s and the cut at 30 s: the tail Whisper leaves open in the first window.
TAIL = ("budget", "second", "week", "march")
CUT = 30.0


def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def cut_at_30(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """One speaker talking for ~35 s without a pause, cut 30 s in (inside "because")."""
    d = tmp_path_factory.mktemp("tail")
    synth.make_meeting([synth.Line("Alice", TEXT)], d / "raw.wav")
    subprocess.run(
        ["sox", str(d / "raw.wav"), "-r", "16000", "-c", "1", "-b", "16", str(d / "all.wav")],
        check=True,
        timeout=60,
    )
    samples = samples_of(d / "all.wav")
    cut = int(CUT * 16000)
    assert samples.size > cut + 3 * 16000, "espeak-ng spoke the text faster than expected"
    return [_write(d / "0.wav", samples[:cut]), _write(d / "1.wav", samples[cut:])]


def _transcript(client: Any, cid: str, auth: dict[str, str]) -> str:
    body = client.get(f"/api/conversations/{cid}/transcript", headers=auth).get_json()
    assert not [s for s in body["segments"] if s["flag"] == coverage.OPEN], "a marker leaked"
    return normalize_words(" ".join(s["text"] for s in body["segments"]))


def _open_tail(chunk_id: str) -> float:
    marks = [s for s in chunk_row(chunk_id).segments or [] if s.get("flag") == coverage.OPEN]
    assert len(marks) == 1, "the first chunk ends inside speech: its tail is left to the seam"
    assert marks[0].get("words") is None and marks[0]["text"] == ""
    return float(marks[0]["start"])


def test_the_seam_gives_the_words_of_the_open_tail(
    client: Any, workers: Any, cut_at_30: list[Path]
) -> None:
    workers()
    cid, auth = create(client)
    ids = [upload(client, cid, auth, i, p) for i, p in enumerate(cut_at_30)]
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    wait_for(lambda: status(client, cid, auth)["is_all_chunks_transcribed"], timeout=240)

    tail = _open_tail(ids[0])
    own = normalize_words(chunk_row(ids[0]).text or "").split()
    assert "march" not in own, "the first chunk's own words stop where its tail opens"
    seam = chunk_row(ids[1]).seam
    assert seam is not None and seam["segments"], "the cut is inside speech: a seam is made"
    assert seam["from"] <= tail - CUT, "the seam's window covers the whole open tail"
    said = _transcript(client, cid, auth)
    words = said.split()
    for word in TAIL:
        assert words.count(word) == (2 if word == "budget" else 1), (word, said)
    assert wer(TEXT, said) <= 0.1


def test_a_last_chunk_gets_its_open_tail_transcribed_without_a_seam(
    client: Any, workers: Any, cut_at_30: list[Path]
) -> None:
    """The chunk cut inside speech is the conversation's last: no seam will come, so its tail
    is transcribed on its own before the barrier passes (else its last words would be lost)."""
    workers()
    cid, auth = create(client)
    chunk_id = upload(client, cid, auth, 0, cut_at_30[0])
    assert client.post(f"/api/conversations/{cid}/finish", json={}, headers=auth).status_code == 202
    wait_for(lambda: status(client, cid, auth)["is_all_chunks_transcribed"], timeout=240)

    _open_tail(chunk_id)
    words = _transcript(client, cid, auth).split()
    for word in TAIL:
        assert words.count(word) == (2 if word == "budget" else 1), (word, words)
    row = chunk_row(chunk_id)
    assert row.seam is not None and row.seam["tail"]["attempts"] == row.attempts
