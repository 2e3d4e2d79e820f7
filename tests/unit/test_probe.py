"""mina.probe against real files made by ffmpeg and espeak-ng (no mocks): what an upload must be."""

from __future__ import annotations

import random
import struct
import subprocess
import threading
import wave
from pathlib import Path

import pytest

from api.errors import status_of
from mina import probe
from mina.errors import UnsupportedMedia, ValidationError

EXPECTED_MIME = {
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "webm": "audio/webm",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "flac": "audio/flac",
}
FORMATS = tuple(EXPECTED_MIME)  # the containers the `encoded` fixture makes


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=60)


@pytest.fixture(scope="module")
def streamed_webm(meeting_wav: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The meeting as a browser's MediaRecorder writes it: WebM/Opus to a pipe, so the file
    declares no duration and has no cues; only the decode can tell it is whole."""
    path = tmp_path_factory.mktemp("streamed") / "recorder.webm"
    with path.open("wb") as out:
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(meeting_wav), "-c:a", "libopus",
             "-b:a", "32k", "-f", "webm", "-"],
            stdout=out, check=True, timeout=60,
        )  # fmt: skip
    return path


# --- sniff ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_names_each_container(encoded: dict[str, Path], fmt: str) -> None:
    head = encoded[fmt].read_bytes()[:64]
    assert probe.sniff(head) == EXPECTED_MIME[fmt]


@pytest.mark.parametrize(
    "head",
    [b"", b"hello world, this is text", b"\xff\xf1\x50\x80\x02\x1f\xfc", b'{"a": 1}'],
    ids=["empty", "text", "adts-aac", "json"],
)
def test_sniff_refuses_what_is_not_an_accepted_container(head: bytes) -> None:
    assert probe.sniff(head) is None


def test_sniff_knows_mp3_without_id3_tag() -> None:
    assert probe.sniff(b"\xff\xfb\x90\x64" + bytes(60)) == "audio/mpeg"


# --- probe ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_probe_accepts_each_container_with_its_duration(
    encoded: dict[str, Path], meeting_wav: Path, fmt: str
) -> None:
    assert probe.probe(encoded[fmt]) == pytest.approx(wav_seconds(meeting_wav), abs=0.1)


@pytest.mark.parametrize("fmt", FORMATS)
def test_container_check_alone_gives_the_same_duration(
    encoded: dict[str, Path], meeting_wav: Path, fmt: str
) -> None:
    # MINA_UPLOAD_DECODE_CHECK=worker: packets read, not decoded
    seconds = probe.probe(encoded[fmt], decode=False)
    assert seconds == pytest.approx(wav_seconds(meeting_wav), abs=0.1)


def test_probe_refuses_text_file_renamed_webm(tmp_path: Path) -> None:
    fake = tmp_path / "chunk.webm"
    fake.write_text("this is not audio\n" * 200)
    with pytest.raises(UnsupportedMedia) as err:
        probe.probe(fake)
    assert status_of(err.value) == 415
    assert "not an audio container" in err.value.message


def test_probe_refuses_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "chunk.ogg"
    empty.touch()
    with pytest.raises(UnsupportedMedia, match="empty"):
        probe.probe(empty)


def test_probe_refuses_wav_without_samples(tmp_path: Path) -> None:
    silent = tmp_path / "none.wav"
    with wave.open(str(silent), "wb") as w:
        w.setparams((1, 2, 16000, 0, "NONE", "not compressed"))
    with pytest.raises(UnsupportedMedia, match="no audio"):
        probe.probe(silent)


@pytest.mark.parametrize("decode", [True, False], ids=["decoded", "container-only"])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.9])
@pytest.mark.parametrize("fmt", ["webm", "ogg", "wav", "mp3", "m4a", "flac"])
def test_probe_refuses_truncated_file(
    encoded: dict[str, Path], tmp_path: Path, fmt: str, fraction: float, decode: bool
) -> None:
    truncated = cut(encoded[fmt], tmp_path / f"cut.{fmt}", fraction)
    with pytest.raises(UnsupportedMedia):
        probe.probe(truncated, decode=decode)


def test_probe_refuses_ogg_cut_exactly_between_pages(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    data = encoded["ogg"].read_bytes()
    pages = [i for i in range(len(data)) if data.startswith(b"OggS", i)]
    boundary = pages[len(pages) // 2]
    truncated = tmp_path / "pages.ogg"
    truncated.write_bytes(data[:boundary])
    with pytest.raises(UnsupportedMedia, match="truncated"):
        probe.probe(truncated)


def _ogg_pages(data: bytes) -> list[int]:
    """The offset of every Ogg page, walked by the page headers (not by searching "OggS")."""
    pages, pos = [], 0
    while pos < len(data):
        pages.append(pos)
        nseg = data[pos + 26]
        pos += 27 + nseg + sum(data[pos + 27 : pos + 27 + nseg])
    return pages


def test_ogg_checksum_is_oggs_crc32() -> None:
    # CRC-32/POSIX's check value is 0x765E7680; Ogg's is the same CRC without the final xor.
    assert probe._ogg_crc(b"123456789") == 0x765E7680 ^ 0xFFFFFFFF


@pytest.mark.parametrize("decode", [True, False])
def test_probe_refuses_ogg_with_its_first_audio_page_zeroed(
    encoded: dict[str, Path], tmp_path: Path, decode: bool
) -> None:
    # FFmpeg's demuxer resyncs past a damaged page without an error line: the walk refuses it.
    data = encoded["ogg"].read_bytes()
    first_audio = _ogg_pages(data)[2]  # after OpusHead and OpusTags
    damaged = tmp_path / "first-page.ogg"
    damaged.write_bytes(data[: first_audio + 60] + bytes(40) + data[first_audio + 100 :])
    with pytest.raises(UnsupportedMedia, match="checksum"):
        probe.probe(damaged, decode=decode)


def test_probe_refuses_ogg_missing_a_whole_page(encoded: dict[str, Path], tmp_path: Path) -> None:
    data = encoded["ogg"].read_bytes()
    pages = _ogg_pages(data)
    k = len(pages) // 2
    gap = tmp_path / "gap.ogg"
    gap.write_bytes(data[: pages[k]] + data[pages[k + 1] :])  # every page left is intact
    with pytest.raises(UnsupportedMedia, match="out of sequence"):
        probe.probe(gap, decode=False)


def test_probe_refuses_mp3_with_garbage_inside(encoded: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(encoded["mp3"].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = random.Random(7).randbytes(3000)
    broken = tmp_path / "garbage.mp3"
    broken.write_bytes(bytes(data))
    with pytest.raises(UnsupportedMedia):
        probe.probe(broken)


def test_probe_refuses_audio_longer_than_the_limit(encoded: dict[str, Path]) -> None:
    with pytest.raises(ValidationError) as err:
        probe.probe(encoded["webm"], max_seconds=3)
    assert err.value.code == "too_long"


def test_probe_accepts_audio_within_the_limit(encoded: dict[str, Path]) -> None:
    assert probe.probe(encoded["ogg"], max_seconds=30) > 5


# --- cases beyond the originals: what the ffmpeg-children probe caught, this one must too ------


def test_probe_refuses_a_recorder_webm_cut_short(
    streamed_webm: Path, meeting_wav: Path, tmp_path: Path
) -> None:
    # No declared duration to compare with: only FFmpeg's error line says the file ended early.
    assert probe.probe(streamed_webm) == pytest.approx(wav_seconds(meeting_wav), abs=0.1)
    truncated = cut(streamed_webm, tmp_path / "cut.webm", 0.6)
    with pytest.raises(UnsupportedMedia, match="corrupt or truncated"):
        probe.probe(truncated)


def test_probe_stops_decoding_past_the_limit_when_nothing_is_declared(
    streamed_webm: Path,
) -> None:
    with pytest.raises(ValidationError) as err:
        probe.probe(streamed_webm, max_seconds=3)
    assert err.value.code == "too_long"


def test_probe_refuses_a_file_without_an_audio_stream(tmp_path: Path) -> None:
    video = tmp_path / "video.webm"
    ffmpeg("-f", "lavfi", "-i", "testsrc=d=1:s=64x64:r=5", "-c:v", "libvpx", str(video))
    with pytest.raises(UnsupportedMedia, match="no audio stream"):
        probe.probe(video)


def test_probe_measures_vbr_mp3_without_xing_header_by_decoding(
    meeting_wav: Path, tmp_path: Path
) -> None:
    # Without a Xing/Info header FFmpeg guesses the duration from the bitrate (here ~15 % short
    # for VBR); the probe must not take that guess as the audio's length.
    vbr = tmp_path / "vbr.mp3"
    ffmpeg("-i", str(meeting_wav), "-c:a", "libmp3lame", "-q:a", "5", "-write_xing", "0", str(vbr))
    assert probe.probe(vbr) == pytest.approx(wav_seconds(meeting_wav), abs=0.1)


def _vint(data: bytes, pos: int, *, marker: bool) -> tuple[int, int]:
    """An EBML variable-size integer at `pos`: (value, length); IDs keep their marker bit."""
    length = 9 - data[pos].bit_length()
    value = data[pos] if marker else data[pos] & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = value << 8 | byte
    return value, length


def _simple_blocks(data: bytes, start: int = 0, end: int | None = None) -> list[int]:
    """Offsets of every SimpleBlock's payload, walking Segment > Cluster > SimpleBlock."""
    found, pos, end = [], start, len(data) if end is None else end
    while pos < end:
        element, n = _vint(data, pos, marker=True)
        size, m = _vint(data, pos + n, marker=False)
        pos += n + m
        if element in (0x18538067, 0x1F43B675):  # Segment, Cluster
            found += _simple_blocks(data, pos, min(end, pos + size))
        elif element == 0xA3:  # SimpleBlock
            found.append(pos)
        pos += size
    return found


def test_probe_refuses_webm_whose_timestamps_go_backwards(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    # One damaged block timestamp: the audio decodes, but the blocks after it jump back 30 s.
    data = bytearray(encoded["webm"].read_bytes())
    blocks = _simple_blocks(bytes(data))
    at = blocks[len(blocks) // 2]
    _track, n = _vint(data, at, marker=False)
    data[at + n : at + n + 2] = (30000).to_bytes(2, "big")
    broken = tmp_path / "backwards.webm"
    broken.write_bytes(bytes(data))
    with pytest.raises(UnsupportedMedia, match="backwards"):
        probe.probe(broken)


def test_concurrent_probes_each_see_their_own_errors(
    streamed_webm: Path, encoded: dict[str, Path], tmp_path: Path
) -> None:
    # FFmpeg's error lines are read per thread: a good file probed beside a broken one passes,
    # and the broken one is refused even while other threads log the very same line.
    broken = cut(streamed_webm, tmp_path / "cut.webm", 0.6)
    files = [broken, encoded["ogg"], broken, encoded["webm"]] * 2
    outcomes: list[str] = [""] * len(files)
    start = threading.Barrier(len(files))

    def run(i: int) -> None:
        start.wait()
        for _ in range(5):
            try:
                probe.probe(files[i])
                outcomes[i] += "a"
            except UnsupportedMedia:
                outcomes[i] += "r"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == ["rrrrr" if f == broken else "aaaaa" for f in files]


# --- Ogg from its pages alone (container-only check) -----------------------------------------


def _ogg(tmp_path: Path, name: str, *codec: str) -> Path:
    path = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:d=7.3", *codec, str(path))
    return path


def _reseal(data: bytes, pos: int, granule: int) -> bytes:
    """The page at `pos` with another granule position and its checksum made right again."""
    page = bytearray(data[pos:])
    struct.pack_into("<q", page, 6, granule)
    nseg = page[26]
    end = 27 + nseg + sum(page[27 : 27 + nseg])
    page[22:26] = bytes(4)
    struct.pack_into("<I", page, 22, probe._ogg_crc(bytes(page[:end])))
    return data[:pos] + bytes(page)


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("opus48.ogg", ("-c:a", "libopus", "-b:a", "24k")),
        ("opus16.ogg", ("-ar", "16000", "-c:a", "libopus")),
        ("vorbis.ogg", ("-ar", "44100", "-c:a", "libvorbis")),
    ],
)
def test_ogg_opus_and_vorbis_are_timed_from_their_pages_without_ffmpeg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, codec: tuple[str, ...]
) -> None:
    path = _ogg(tmp_path, name, *codec)
    by_ffmpeg = probe.probe(path, decode=True)

    def no_libav(*args: object, **kwargs: object) -> None:
        raise AssertionError("libav opened the file")

    monkeypatch.setattr(probe.av, "open", no_libav)
    assert probe.probe(path, decode=False) == pytest.approx(by_ffmpeg, abs=0.01)
    with pytest.raises(ValidationError) as err:
        probe.probe(path, decode=False, max_seconds=5)
    assert err.value.code == "too_long"


def test_ogg_pages_that_cannot_tell_the_length_leave_it_to_ffmpeg(tmp_path: Path) -> None:
    flac = _ogg(tmp_path, "flac.ogg", "-c:a", "flac")  # Ogg FLAC: not read from the pages
    assert probe._ogg_seconds(probe._walk_ogg(flac.read_bytes())) is None
    assert probe.probe(flac, decode=False) == pytest.approx(7.3, abs=0.01)
    opus = _ogg(tmp_path, "back.ogg", "-c:a", "libopus")
    data = opus.read_bytes()
    pages = _ogg_pages(data)
    walk = probe._walk_ogg(_reseal(data, pages[-2], 10**9))  # a granule past the last one
    assert walk.damage is None and probe._ogg_seconds(walk) is None
