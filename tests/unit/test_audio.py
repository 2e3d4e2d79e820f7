"""mina.audio against real files made by ffmpeg and espeak-ng (no mocks).

Sniffing and the upload probe are mina.probe, tested in test_probe.py.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from mina import audio, probe
from mina.errors import PermanentError


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# --- normalize, duration, read_pcm ----------------------------------------------------------


def test_normalize_writes_16k_mono_pcm(encoded: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / "normalized.wav"
    seconds = audio.normalize(encoded["webm"], dst)
    with wave.open(str(dst), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() / 16000 == pytest.approx(seconds, abs=0.01)
    assert seconds == pytest.approx(probe.probe(encoded["webm"]), abs=0.05)
    assert not list(tmp_path.glob(".*.part"))


def test_normalize_of_garbage_is_permanent_and_leaves_no_file(tmp_path: Path) -> None:
    src = tmp_path / "junk.ogg"
    src.write_bytes(b"OggS" + random.Random(3).randbytes(5000))
    with pytest.raises(PermanentError):
        audio.normalize(src, tmp_path / "out.wav")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.ogg"]


def test_duration_of_our_ogg_excludes_opus_priming(
    encoded: dict[str, Path], meeting_wav: Path
) -> None:
    assert audio.duration(encoded["ogg"]) == pytest.approx(wav_seconds(meeting_wav), abs=0.01)


def test_read_pcm_whole_file_and_window(encoded: dict[str, Path], meeting_wav: Path) -> None:
    whole = audio.read_pcm(encoded["flac"])
    assert whole.dtype == np.float32 and whole.ndim == 1
    assert len(whole) / 16000 == pytest.approx(wav_seconds(meeting_wav), abs=0.01)
    assert 0.05 < float(np.abs(whole).max()) <= 1.0
    window = audio.read_pcm(encoded["flac"], sr=8000, start=1.0, duration=2.0)
    assert len(window) == 16000
    np.testing.assert_allclose(
        window[:100], audio.read_pcm(meeting_wav, sr=8000, start=1.0, duration=0.1)[:100], atol=1e-3
    )


def test_silence_is_a_normalized_wav_of_that_length(tmp_path: Path) -> None:
    dst = tmp_path / "gap.wav"
    assert audio.silence(2.345, dst) == pytest.approx(2.345, abs=1e-4)
    with wave.open(str(dst), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert not any(w.readframes(w.getnframes()))
    assert audio.duration(dst) == pytest.approx(2.345, abs=1e-3)


# --- split and concat -----------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["ogg", "wav"])
def test_split_makes_decodable_pieces_that_add_up(
    encoded: dict[str, Path], meeting_wav: Path, tmp_path: Path, ext: str
) -> None:
    total = wav_seconds(meeting_wav)
    pieces = audio.split(encoded["mp3"], 2.5, tmp_path / "pieces", ext=ext)
    assert [p.name for p in pieces] == [f"piece-{i:05d}.{ext}" for i in range(3)]
    lengths = [probe.probe(p) for p in pieces]
    assert lengths[0] == pytest.approx(2.5, abs=0.02)
    assert lengths[1] == pytest.approx(2.5, abs=0.02)
    assert lengths[2] < 2.5
    assert sum(lengths) == pytest.approx(total, abs=0.2)


def test_segment_yields_each_piece_whole_as_it_is_cut(
    encoded: dict[str, Path], meeting_wav: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pieces"
    seen: list[tuple[Path, float]] = []
    for piece in audio.segment(encoded["ogg"], 2.5, out):
        # Whole when yielded (the header says its length), while later ones may not exist yet.
        with wave.open(str(piece), "rb") as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        seen.append((piece, probe.probe(piece)))
    assert [p.name for p, _ in seen] == [f"piece-{i:05d}.wav" for i in range(len(seen))]
    assert len(seen) == 3
    assert all(abs(seconds - 2.5) < 0.05 for _, seconds in seen[:-1])
    assert sum(seconds for _, seconds in seen) == pytest.approx(wav_seconds(meeting_wav), abs=0.1)


def test_segment_of_garbage_is_permanent(tmp_path: Path) -> None:
    src = tmp_path / "junk.ogg"
    src.write_bytes(b"OggS" + random.Random(5).randbytes(5000))
    with pytest.raises(PermanentError, match="could not cut audio"):
        list(audio.segment(src, 30, tmp_path / "pieces"))


def test_normalize_copies_what_is_already_normalized(tmp_path: Path) -> None:
    src = tmp_path / "src.wav"
    audio.silence(1.5, src)
    dst = tmp_path / "dst.wav"
    assert audio.normalize(src, dst) == pytest.approx(1.5)
    assert dst.read_bytes() == src.read_bytes()


def test_split_again_replaces_stale_pieces(
    encoded: dict[str, Path], meeting_wav: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pieces"
    total = wav_seconds(meeting_wav)
    assert len(audio.split(encoded["wav"], 1.0, out)) == math.ceil(total)
    pieces = audio.split(encoded["wav"], 4.0, out)
    assert sorted(out.glob("piece-*")) == pieces
    assert len(pieces) == math.ceil(total / 4.0)


def test_concat_duration_is_the_sum(encoded: dict[str, Path], tmp_path: Path) -> None:
    gap = tmp_path / "gap.wav"
    audio.silence(1.25, gap)
    parts = [encoded["ogg"], encoded["mp3"], encoded["wav"], gap, encoded["m4a"]]
    expected = sum(probe.probe(p) for p in parts)
    merged = tmp_path / "merged.ogg"
    assert audio.concat(parts, merged) == pytest.approx(expected, abs=0.1)
    assert probe.probe(merged) == pytest.approx(expected, abs=0.1)
    assert probe.sniff(merged.read_bytes()[:64]) == "audio/ogg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gap.wav", "merged.ogg"]


def test_concat_of_split_pieces_restores_the_length(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    normalized = tmp_path / "n.wav"
    total = audio.normalize(encoded["webm"], normalized)
    pieces = audio.split(normalized, 2.0, tmp_path / "pieces", ext="wav")
    assert audio.concat(pieces, tmp_path / "again.ogg") == pytest.approx(total, abs=0.05)


class ChildPeakRss:
    """Polls the peak RSS (VmHWM) of this process's children while the block runs.

    `RUSAGE_CHILDREN` cannot tell us this: Linux counts a child's pre-exec image, which is a
    copy of the (large) pytest process, so it reports pytest's size rather than ffmpeg's.
    """

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self.samples = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ChildPeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        me = str(os.getpid())
        while not self._done.wait(0.05):
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    if stat.read_text().rsplit(")", 1)[1].split()[1] != me:
                        continue
                    # only after exec: a child just forked still carries pytest's image
                    if (stat.parent / "comm").read_text().strip() != "ffmpeg":
                        continue
                    status = (stat.parent / "status").read_text()
                except (OSError, IndexError):
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_mb = max(self.peak_mb, int(line.split()[1]) / 1024)
                        self.samples += 1


@pytest.mark.slow
def test_concat_of_an_hour_runs_in_the_ffmpeg_child_with_flat_memory(tmp_path: Path) -> None:
    hour = tmp_path / "hour.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i",
         "anoisesrc=r=16000:d=3600:a=0.05", "-ac", "1", "-c:a", "pcm_s16le", str(hour)],
        check=True, timeout=120,
    )  # fmt: skip
    before = rss_mb()
    with ChildPeakRss() as child:
        seconds = audio.concat([hour], tmp_path / "hour.ogg")
    after = rss_mb()
    print(f"concat 60 min: ffmpeg peak RSS {child.peak_mb:.0f} MB, ours {before:.0f}->{after:.0f}")
    assert seconds == pytest.approx(3600, abs=0.1)
    assert child.samples > 0
    assert child.peak_mb < 200
    assert after - before < 20
