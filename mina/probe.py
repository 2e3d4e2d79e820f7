"""Is an upload whole, decodable audio, and how long is it? Sniff the container, then decode.

`probe` decodes the whole file in-process with PyAV (FFmpeg's libraries as the `av` wheel
ships them), at the same strictness as `ffmpeg -xerror -v error`: a packet the demuxer flags
corrupt, a frame the decoder flags corrupt, a decode that fails, or any message FFmpeg logs at
error level while it reads this file refuses it. A 30 s Opus chunk costs ~25 ms here, against
~150 ms for the ffprobe + ffmpeg children this replaced.

Threads: PyAV releases the GIL inside each libav call (`av_read_frame`, `avcodec_send_packet`,
`avcodec_receive_frame`), but it makes those calls once per packet: a 30 s Opus chunk is 1,500
packets of ~15 us of C each, so the GIL changes hands thousands of times per probe. Measured on
this 2-core machine (PyAV 18.1, FFmpeg 8, a 30 s Opus chunk at 32 kbit/s, 23 ms alone): 20
probes one after the other took 0.47 s; the same 20 in two threads at once 0.62 s wall and
0.83 s CPU. Two probes at once are slower than one after the other, and in the web process it
compounds: 50 clients uploading back to back got ~9 uploads/s with probes side by side, ~25/s
with one at a time (bench/ingest.py, saturation; two runs each). So a process-wide lock lets
one probe decode at a time; a waiting thread sleeps on the lock without the GIL, and other
requests run beside the one decode.

Ogg: the pages are walked in Python first (checksums, sequence, EOS; see `_walk_ogg`). For the
container-only check (`decode` off, the default upload check) a single Opus or Vorbis stream is
then timed from its last granule position and FFmpeg is not opened at all: the same seconds
FFmpeg's demuxer gives, without 1,500 packets' GIL hand-offs and the process-wide lock.

Logs: FFmpeg reports some damage only as a log line (a recorder's WebM cut short declares no
duration to compare with; its only sign is "File ended prematurely"). PyAV drops every line by
default; the first probe in a process installs PyAV's Python callback at WARNING (errors, plus
the "Estimating duration from bitrate" warning) with repeat folding off, and each probe reads
the lines of its own thread with `av.logging.Capture`. The decoder runs single-threaded so its
lines come from the probing thread. In a process that also decodes elsewhere (the workers'
faster-whisper), FFmpeg's warnings from those threads then reach the `libav` logger.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.logging

from mina.errors import TransientError, UnsupportedMedia, ValidationError

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 300.0
# A decode may end this much before the container's declared duration (encoder padding,
# rounding) before we call the file truncated; plus a small share of the duration.
TRUNCATION_TOLERANCE = 0.25

StrPath = str | os.PathLike[str]

MIME_TYPES = ("audio/webm", "audio/ogg", "audio/wav", "audio/mpeg", "audio/mp4", "audio/flac")
_DEMUXERS = {
    "audio/webm": "matroska",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "mov",
    "audio/flac": "flac",
}
_FROM_BITRATE = "Estimating duration from bitrate"

_setup_lock = threading.Lock()
_decoding = threading.Lock()  # one decode at a time per process (see Threads above)
_logs_ready = False


def _is_mpeg_frame(head: bytes) -> bool:
    """An MPEG audio (mp1/2/3) frame header; ADTS AAC (layer bits 00) is not one."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer, bitrate = (head[1] >> 3) & 3, (head[1] >> 1) & 3, head[2] >> 4
    return version != 1 and layer != 0 and bitrate != 0xF


def sniff(head: bytes) -> str | None:
    """The container named by a file's first bytes (give at least 12), or None."""
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "audio/webm"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head[4:8] == b"ftyp":
        return "audio/mp4"
    if head.startswith(b"ID3") or _is_mpeg_frame(head):
        return "audio/mpeg"
    return None


def _capture_libav_logs() -> None:
    """Route FFmpeg's errors and warnings to PyAV's callback, once per process."""
    global _logs_ready
    if _logs_ready:
        return
    with _setup_lock:
        level = av.logging.get_level()
        if level is None or level < av.logging.WARNING:
            av.logging.set_level(av.logging.WARNING)
        # Folding repeats is global across threads: a probe would miss its own error line
        # when another thread had just logged the same one.
        av.logging.set_skip_repeated(False)
        _logs_ready = True


def _first_error(logs: list[tuple[int, str, str]]) -> str | None:
    for level, _name, message in logs:
        if level <= av.logging.ERROR and message.strip():
            return message.strip()[:200]
    return None


def _corrupt(reason: str) -> UnsupportedMedia:
    return UnsupportedMedia(f"corrupt or truncated audio: {reason}")


def _decode(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    logs: list[tuple[int, str, str]],
    *,
    max_seconds: float | None,
    deadline: float,
    timeout: float,
    decode: bool = True,
) -> float:
    """Decode `stream` to nowhere; the seconds decoded. Refuses at the first sign of damage.

    With `decode` off only the container is read (every packet demuxed, flags, timestamps and
    the demuxer's errors checked) and the seconds are the packets' own durations."""
    seconds, seen = 0.0, len(logs)
    last_dts: int | None = None
    base = float(stream.time_base) if stream.time_base is not None else 0.0
    for packet in container.demux(stream):
        if packet.is_corrupt:
            raise _corrupt(f"corrupt packet at {seconds:.2f}s")
        if packet.dts is not None:
            if last_dts is not None and packet.dts < last_dts:
                raise _corrupt(f"timestamps go backwards at {seconds:.2f}s")
            last_dts = packet.dts
        if not decode:
            if packet.size:
                seconds = max(seconds, _packet_end(packet, base))
        else:
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                raise _corrupt(_first_error(logs[seen:]) or exc.strerror or str(exc)) from None
            for frame in frames:
                if frame.is_corrupt:
                    raise _corrupt(f"corrupt frame at {seconds:.2f}s")
                seconds += frame.samples / frame.sample_rate
        if len(logs) > seen:  # only the lines this packet added
            if (error := _first_error(logs[seen:])) is not None:
                raise _corrupt(error)
            seen = len(logs)
        if max_seconds is not None:
            _check_length(seconds, max_seconds)  # stop decoding as soon as it is too long
        if time.monotonic() > deadline:
            raise TransientError(f"probe audio took longer than {timeout:.0f}s")
    return seconds


def _packet_end(packet: av.packet.Packet, time_base: float) -> float:
    """Where a packet's audio ends, in seconds from the stream's start (its pts + duration)."""
    pts = packet.pts if packet.pts is not None else packet.dts
    if pts is None:
        return 0.0
    return (pts + (packet.duration or 0)) * time_base


def probe(
    path: StrPath,
    *,
    max_seconds: float | None = None,
    timeout: float = PROBE_TIMEOUT,
    decode: bool = True,
) -> float:
    """Fully decode an upload and return its duration; refuse anything that is not whole audio.

    Raises UnsupportedMedia for an empty, unknown, corrupt, truncated or silent-by-absence
    file, and ValidationError (code "too_long") past `max_seconds`. With `decode` off the
    checks stop at the container (`MINA_UPLOAD_DECODE_CHECK=worker`): the packets are read,
    not decoded, so damage inside a packet passes here and is met by the worker's decode.
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    with path.open("rb") as fh:
        head = fh.read(64)
    if not head:
        raise UnsupportedMedia("the file is empty")
    mime = sniff(head)
    if mime is None:
        raise UnsupportedMedia("not an audio container we accept (webm, ogg, wav, mp3, m4a, flac)")
    if mime == "audio/ogg":
        walk = _walk_ogg(path.read_bytes())
        if walk.damage is not None:
            raise _corrupt(walk.damage)
        if not decode and (seconds := _ogg_seconds(walk)) is not None:
            return _container_only(seconds, max_seconds)
    _capture_libav_logs()
    with _decoding, av.logging.Capture() as logs:
        try:
            container = av.open(str(path), format=_DEMUXERS[mime])
        except av.FFmpegError as exc:
            reason = _first_error(logs) or exc.strerror or str(exc)
            raise UnsupportedMedia(f"not a readable audio file: {reason}") from None
        with container:
            if not container.streams.audio:
                raise UnsupportedMedia("the file has no audio stream")
            stream = container.streams.audio[0]
            if stream.codec_context is None:
                raise UnsupportedMedia("the file's audio is in a codec we cannot decode")
            stream.codec_context.thread_count = 1  # its log lines stay on this thread
            declared = _declared_seconds(container, logs)
            if max_seconds is not None and declared is not None:
                _check_length(declared, max_seconds)
            decoded = _decode(
                container,
                stream,
                logs,
                max_seconds=max_seconds,
                deadline=deadline,
                timeout=timeout,
                decode=decode,
            )
    if decoded <= 0.0:
        raise UnsupportedMedia("the file contains no audio")
    if declared is not None and decoded < declared - _tolerance(declared):
        raise UnsupportedMedia(
            f"truncated audio: {decoded:.2f}s decode of {declared:.2f}s the file declares"
        )
    log.debug("probe %s: %s, %.2fs (declared %s)", path.name, mime, decoded, declared)
    # AAC decodes its encoder priming, MP3 declares its padding: the smaller is the audio.
    return decoded if declared is None else min(decoded, declared)


def _container_only(seconds: float, max_seconds: float | None) -> float:
    """The checks a container-only probe makes on the seconds its pages give."""
    if seconds <= 0.0:
        raise UnsupportedMedia("the file contains no audio")
    if max_seconds is not None:
        _check_length(seconds, max_seconds)
    return seconds


def _declared_seconds(
    container: av.container.InputContainer, logs: list[tuple[int, str, str]]
) -> float | None:
    """The duration the container states (None when unknown or only guessed from bitrate)."""
    if any(_FROM_BITRATE in message for _level, _name, message in logs):
        return None
    return None if container.duration is None else container.duration / av.time_base


_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, MSB first, no reflection, init 0, no final xor).

    zlib computes the reflected CRC-32 in C; Ogg's is the reflected one over bit-reversed bytes,
    bit-reversed, once zlib's init and final xor are taken back out (they contribute the CRC of
    as many zero bytes, by linearity)."""
    reflected = zlib.crc32(page.translate(_BIT_REVERSED)) ^ zlib.crc32(bytes(len(page)))
    return int(f"{reflected:032b}"[::-1], 2)


@dataclass
class _OggStream:
    """One logical stream as its pages tell it: the first packet's opening bytes (the codec's
    identification header), the last granule position, and whether the granules ever fell."""

    head: bytes = b""
    granule: int = -1
    backwards: bool = False


@dataclass
class _OggWalk:
    damage: str | None
    streams: dict[int, _OggStream] = field(default_factory=dict)


def _walk_ogg(data: bytes) -> _OggWalk:
    """The file's Ogg pages walked end to end: why they are not whole (`damage`), and what each
    logical stream's pages say.

    Every page must follow the last with no gap, carry a correct checksum, keep its stream's
    page sequence, and the file must end with a page that closes its stream (EOS). FFmpeg's
    demuxer resyncs past a damaged page silently (the first audio page's loss is one second of
    speech no error line reports), so the pages are walked here."""
    pos, expected, last_flags = 0, dict[int, int](), 0
    streams: dict[int, _OggStream] = {}
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            return _OggWalk(f"no Ogg page where one should start (byte {pos})")
        nseg = data[pos + 26]
        body = sum(data[pos + 27 : pos + 27 + nseg])
        end = pos + 27 + nseg + body
        if pos + 27 + nseg > len(data) or end > len(data):
            return _OggWalk("the Ogg stream does not end with its last page")
        page = data[pos:end]
        (crc,) = struct.unpack_from("<I", page, 22)
        if _ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != crc:
            return _OggWalk(f"Ogg page at byte {pos} fails its checksum")
        granule, serial, sequence = struct.unpack_from("<qII", page, 6)
        if serial in expected and sequence != expected[serial]:
            return _OggWalk(f"Ogg page at byte {pos} is out of sequence (a page is missing)")
        expected[serial] = sequence + 1
        stream = streams.setdefault(serial, _OggStream())
        if page[5] & 0x02:  # beginning of stream: its first packet is the codec's header
            stream.head = page[27 + nseg : 27 + nseg + 32]
        if granule != -1:  # -1: no packet ends on this page
            stream.backwards |= granule < stream.granule
            stream.granule = granule
        last_flags, pos = page[5], end
    if not last_flags & 0x04:
        return _OggWalk("the Ogg stream does not end with its last page")
    return _OggWalk(None, streams)


def _ogg_seconds(walk: _OggWalk) -> float | None:
    """The audio's length from the pages alone, for a single Opus or Vorbis stream whose header
    reads right and whose granules never fall; None when only FFmpeg can tell.

    Opus counts granules at 48 kHz from the start of its pre-skip (RFC 7845 4, 4.5); Vorbis at
    the sample rate of its identification header. The last page's granule is the end."""
    if walk.damage is not None or len(walk.streams) != 1:
        return None
    (stream,) = walk.streams.values()
    head = stream.head
    if stream.backwards or stream.granule < 0:
        return None
    if head[:8] == b"OpusHead" and len(head) >= 19 and head[8] >> 4 == 0 and head[9] > 0:
        (pre_skip,) = struct.unpack_from("<H", head, 10)
        return (stream.granule - pre_skip) / 48000
    if head[:7] == b"\x01vorbis" and len(head) >= 16:
        version, channels, rate = struct.unpack_from("<IBI", head, 7)
        if version == 0 and channels > 0 and rate > 0:
            return stream.granule / rate
    return None


def _tolerance(declared: float) -> float:
    return TRUNCATION_TOLERANCE + 0.005 * declared


def _check_length(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds + 0.05:
        raise ValidationError(
            f"audio is {seconds:.1f}s long; the limit is {max_seconds:.0f}s", code="too_long"
        )
