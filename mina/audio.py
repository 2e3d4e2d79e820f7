"""Audio on disk: measure, normalize, split, concat and read, all through ffmpeg children.

Audio never passes through Python except in `read_pcm`: every function hands paths to an
`ffmpeg`/`ffprobe` subprocess (list arguments, no shell, a timeout), so memory stays flat
however long the recording is. Checking an upload (sniff, decode probe) is mina.probe.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
import uuid
import wave
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from mina.errors import (
    ConfigurationError,
    PermanentError,
    TransientError,
)
from mina.probe import sniff

log = logging.getLogger(__name__)

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

SAMPLE_RATE = 16000
PROBE_TIMEOUT = 300.0
WORK_TIMEOUT = 1800.0
# split() never makes a last piece shorter than this; it joins the previous one instead.
MIN_PIECE_SECONDS = 0.05

StrPath = str | os.PathLike[str]

_MONO = ["-ac", "1", "-ar", str(SAMPLE_RATE)]
_ERROR_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")


def _codec_args(suffix: str, bitrate: str) -> list[str]:
    """Encoder and muxer arguments for an output file named with `suffix`."""
    opus = ["-c:a", "libopus", "-b:a", bitrate]
    table = {
        ".ogg": [*opus, "-f", "ogg"],
        ".opus": [*opus, "-f", "ogg"],
        ".webm": [*opus, "-f", "webm"],
        ".mp3": ["-c:a", "libmp3lame", "-b:a", bitrate, "-f", "mp3"],
        ".m4a": ["-c:a", "aac", "-b:a", bitrate, "-movflags", "+faststart", "-f", "ipod"],
        ".flac": ["-c:a", "flac", "-f", "flac"],
        ".wav": ["-c:a", "pcm_s16le", "-f", "wav"],
    }
    try:
        return table[suffix.lower()]
    except KeyError:
        raise ValueError(f"no encoder for {suffix!r}; use one of {sorted(table)}") from None


# --- running the binaries -------------------------------------------------------------------


def _run(args: Sequence[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[bytes]:
    """Run one ffmpeg/ffprobe child; a missing binary or a timeout becomes a Mina error."""
    try:
        return subprocess.run(
            list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{args[0]} is not installed (needed to {what})") from exc
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"{what} took longer than {timeout:.0f}s") from exc


def _first_error(stderr: bytes, path: Path | None = None) -> str:
    """The first line ffmpeg complained with, without addresses or our file path."""
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = _ERROR_PREFIX.sub("", raw.strip())
        if path is not None:
            line = line.replace(str(path), "input")
        if line:
            return line[:200]
    return "unknown ffmpeg error"


def _ffmpeg(args: Sequence[str], *, timeout: float, what: str) -> None:
    """Run ffmpeg for work on audio we already accepted; failure is permanent (corrupt audio)."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y", *args]
    proc = _run(cmd, timeout=timeout, what=what)
    if proc.returncode != 0:
        raise PermanentError(f"could not {what}: {_first_error(proc.stderr)}")


def _part_path(dst: Path) -> Path:
    """A hidden sibling unique to this call, so two runs at once never share a half file."""
    return dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:12]}.part")


def _replace_from_part(dst: Path, args: Sequence[str], *, timeout: float, what: str) -> None:
    """Write `dst` through a temporary sibling: a crash never leaves half a file under its name."""
    part = _part_path(dst)
    try:
        _ffmpeg([*args, str(part)], timeout=timeout, what=what)
        os.replace(part, dst)
    finally:
        part.unlink(missing_ok=True)


# --- measure --------------------------------------------------------------------------------


def duration(path: StrPath, *, timeout: float = PROBE_TIMEOUT) -> float:
    """Duration of a file we produced (ffprobe; decodes only when the container does not say)."""
    path = Path(path)
    if _is_normalized_wav(path):  # ours: the header is exact, no process needed
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate())
    cmd = [FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0"]
    cmd.append(str(path))
    proc = _run(cmd, timeout=timeout, what="measure audio")
    if proc.returncode != 0:
        raise PermanentError(f"could not measure audio: {_first_error(proc.stderr, path)}")
    text = proc.stdout.decode().strip()
    try:
        seconds = float(text)
    except ValueError:
        return _decode(path, timeout=timeout)
    return max(0.0, seconds - _opus_pre_skip(path))


def _decode(path: Path, *, timeout: float) -> float:
    """Decode the first audio stream to nowhere; the seconds decoded (a failed run is permanent)."""
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-i", str(path)]
    cmd += ["-map", "0:a:0", "-vn", "-sn", "-dn", "-f", "null", "-progress", "pipe:1"]
    cmd += ["-nostats", "-"]
    proc = _run(cmd, timeout=timeout, what="decode audio")
    if proc.returncode != 0:
        raise PermanentError(f"could not decode audio: {_first_error(proc.stderr, path)}")
    times = re.findall(rb"^out_time_us=(\d+)\s*$", proc.stdout, re.MULTILINE)
    return int(times[-1]) / 1e6 if times else 0.0


def _opus_pre_skip(path: Path) -> float:
    """Seconds of encoder priming an Ogg Opus file declares; ffprobe counts them as audio."""
    with path.open("rb") as fh:
        head = fh.read(512)
    at = head.find(b"OpusHead") if head.startswith(b"OggS") else -1
    if at < 0 or at + 12 > len(head):
        return 0.0
    return int(struct.unpack_from("<H", head, at + 10)[0]) / 48000


# --- transform ------------------------------------------------------------------------------


def normalize(src: StrPath, dst: StrPath, *, timeout: float = WORK_TIMEOUT) -> float:
    """Write `dst` as 16 kHz mono PCM s16le WAV; returns its duration.

    A source that already is one (what `segment` and `split` write) is copied, not decoded.
    """
    dst = Path(dst)
    if _is_normalized_wav(Path(src)):
        part = _part_path(dst)
        try:
            shutil.copyfile(src, part)
            os.replace(part, dst)
        finally:
            part.unlink(missing_ok=True)
        return duration(dst)
    args = ["-i", str(src), *_normalized_output(0)]
    _replace_from_part(dst, args, timeout=timeout, what="normalize audio")
    return duration(dst)


def _normalized_output(k: int) -> list[str]:
    """The options of one normalized output, from the child's input `k` (`normalize` and
    `normalize_many` both: the same bytes)."""
    return ["-map", f"{k}:a:0", "-vn", *_MONO, *_codec_args(".wav", "")]


def normalize_many(
    pairs: Sequence[tuple[StrPath, StrPath]], *, timeout: float = WORK_TIMEOUT
) -> None:
    """`normalize` of several sources by one ffmpeg child (`mina.normalizing`): each output has
    the options and filter chain `normalize` gives it, so its bytes are the same; the start of
    the child (~60 ms of CPU, most of its work on a 30 s chunk) is paid once. Any error fails
    the whole call (nothing is left under a `dst`): run them one by one to tell which."""
    parts = [_part_path(Path(dst)) for _, dst in pairs]
    # Each input is demuxed in a thread of its own; a queue holding a whole chunk's packets
    # spares the thread switches that cost more than the decode (90 -> 41 ms a chunk for 8).
    args = [a for src, _ in pairs for a in ("-thread_queue_size", "4096", "-i", str(src))]
    for k, part in enumerate(parts):
        args += [*_normalized_output(k), str(part)]
    try:
        _ffmpeg(args, timeout=timeout, what="normalize audio")
        for (_, dst), part in zip(pairs, parts, strict=True):
            os.replace(part, dst)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)


def silence(seconds: float, dst: StrPath) -> float:
    """Write `seconds` of silence as a normalized WAV (a stand-in for a chunk that failed)."""
    dst = Path(dst)
    frames = max(0, round(seconds * SAMPLE_RATE))
    part = _part_path(dst)
    block = bytes(2 * SAMPLE_RATE)
    with wave.open(str(part), "wb") as out:
        out.setparams((1, 2, SAMPLE_RATE, 0, "NONE", "not compressed"))
        for start in range(0, frames, SAMPLE_RATE):
            out.writeframes(block[: 2 * min(SAMPLE_RATE, frames - start)])
    os.replace(part, dst)
    return frames / SAMPLE_RATE


def encode(
    src: StrPath, dst: StrPath, *, bitrate: str = "32k", timeout: float = WORK_TIMEOUT
) -> float:
    """Re-encode `src` into the format `dst`'s suffix names (ogg, opus, webm, mp3, m4a, flac,
    wav); returns the result's duration."""
    dst = Path(dst)
    args = ["-i", str(src), "-map", "0:a:0", "-vn", *_codec_args(dst.suffix, bitrate)]
    _replace_from_part(dst, args, timeout=timeout, what="encode audio")
    return duration(dst)


def is_normalized(path: StrPath) -> bool:
    """Already what `normalize` writes (16 kHz mono s16 WAV): `normalize` copies it."""
    return _is_normalized_wav(Path(path))


def _is_normalized_wav(path: Path) -> bool:
    """True for a RIFF WAV of 16 kHz mono 16-bit PCM (what `normalize` writes)."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    if sniff(head) != "audio/wav":
        return False
    pos = 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt " and pos + 24 <= len(head):
            fmt, channels, rate = struct.unpack_from("<HHI", head, pos + 8)
            bits = struct.unpack_from("<H", head, pos + 22)[0]
            return fmt == 1 and channels == 1 and rate == SAMPLE_RATE and bits == 16
        pos += 8 + size + (size & 1)
    return False


def _piece_count(total: float, seconds: float) -> int:
    return max(1, math.ceil((total - MIN_PIECE_SECONDS) / seconds))


def split(
    src: StrPath,
    seconds: float,
    out_dir: StrPath,
    ext: str = "ogg",
    *,
    bitrate: str = "32k",
    timeout: float = WORK_TIMEOUT,
) -> list[Path]:
    """Cut `src` into consecutive, independently decodable pieces of `seconds` (last shorter).

    Pieces are re-encoded 16 kHz mono (opus for ogg/webm, PCM for wav) and named
    `piece-00000.<ext>`, ...; cuts are sample-exact because they are taken from a WAV.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    src, out = Path(src), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".split-") as tmp:
        wav = src if _is_normalized_wav(src) else Path(tmp) / "source.wav"
        total = duration(wav) if wav is src else normalize(src, wav, timeout=timeout)
        count = _piece_count(total, seconds)
        pieces = [out / f"piece-{i:05d}.{ext}" for i in range(count)]
        for i, piece in enumerate(pieces):
            window = ["-t", f"{seconds:.6f}"] if i < count - 1 else []
            args = ["-ss", f"{i * seconds:.6f}", "-i", str(wav), *window, *_MONO]
            args += _codec_args(f".{ext}", bitrate)
            _replace_from_part(piece, args, timeout=timeout, what="split audio")
    for stale in out.glob(f"piece-*.{ext}"):
        if stale not in pieces:
            stale.unlink()
    log.info("split %s (%.1fs) into %d pieces of %.1fs", src.name, total, count, seconds)
    return pieces


def segment(
    src: StrPath, seconds: float, out_dir: StrPath, *, timeout: float = WORK_TIMEOUT
) -> Iterator[Path]:
    """Cut `src` into 16 kHz mono WAV pieces of about `seconds`, yielding each one as soon as
    ffmpeg has closed it, so work on the first pieces starts while the rest is being cut.

    One ffmpeg child decodes the file once (its segment muxer prints every finished piece on
    stdout). Cuts fall on the resampler's frame boundaries, within a few ms of each mark; each
    piece's header has its exact length. Pieces are named `piece-00000.wav`, ... A packet that
    does not decode stops the cut (`-xerror`): PermanentError, after the pieces before it.
    """
    if seconds <= 0:
        raise ValueError("seconds must be positive")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cmd = [FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y", "-xerror", "-i", str(src)]
    cmd += ["-map", "0:a:0", "-vn", *_MONO, "-c:a", "pcm_s16le", "-f", "segment"]
    cmd += ["-segment_time", f"{seconds:.6f}", "-segment_format", "wav"]
    cmd += ["-segment_list", "pipe:1", "-segment_list_type", "flat", str(out / "piece-%05d.wav")]
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors
            )
        except FileNotFoundError as exc:
            raise ConfigurationError(f"{FFMPEG} is not installed (needed to cut audio)") from exc
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                name = line.decode("utf-8", "replace").strip()
                if name:
                    yield out / name
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TransientError(f"cutting audio took longer than {timeout:.0f}s") from exc
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            errors.seek(0)
            raise PermanentError(f"could not cut audio: {_first_error(errors.read(), Path(src))}")


def _normalized(src: Path, spare: Path, timeout: float) -> Path:
    """`src` itself when it is a normalized WAV, else its normalized copy at `spare`."""
    if _is_normalized_wav(src):
        return src
    normalize(src, spare, timeout=timeout)
    return spare


def _concat_list(paths: Sequence[Path], listing: Path) -> None:
    lines = ["ffconcat version 1.0"]
    for p in paths:
        quoted = str(p.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")


def concat(
    paths: Sequence[StrPath],
    dst: StrPath,
    bitrate: str = "32k",
    *,
    opus_complexity: int | None = None,
    timeout: float = WORK_TIMEOUT,
) -> float:
    """Join files in order into one file encoded by `dst`'s suffix (opus in ogg usually).

    Runs on disk with ffmpeg's concat demuxer, so memory does not grow with length; inputs
    that are not normalized WAVs are normalized first into a temporary directory next to
    `dst`. `opus_complexity` (0-10) trades libopus encoding time for quality, with
    constrained VBR so the size stays at `bitrate` and 120 ms packets (a file for playback, where
    latency does not matter; every Opus decoder takes them): libopus's defaults (10, 20 ms) take
    ~15 ms per second of speech here, 0 with 120 ms packets ~1.3 ms. Returns the result's
    duration as ffprobe measures it.
    """
    if not paths:
        raise ValueError("nothing to concatenate")
    dst = Path(dst)
    with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".concat-") as tmp:
        wavs = [
            _normalized(Path(p), Path(tmp) / f"{i:05d}.wav", timeout) for i, p in enumerate(paths)
        ]
        listing = Path(tmp) / "list.ffconcat"
        _concat_list(wavs, listing)
        args = ["-f", "concat", "-safe", "0", "-i", str(listing), "-map", "0:a:0"]
        args += _codec_args(dst.suffix, bitrate)
        if opus_complexity is not None and "libopus" in args:
            args += ["-compression_level", str(opus_complexity), "-vbr", "constrained"]
            args += ["-frame_duration", "120"]
        _replace_from_part(dst, args, timeout=timeout, what="concatenate audio")
    seconds = duration(dst)
    log.info("concatenated %d files into %s (%.1fs)", len(paths), dst.name, seconds)
    return seconds


def read_normalized(path: StrPath) -> np.ndarray | None:
    """The float32 samples of a normalized WAV (16 kHz mono s16, what `normalize` writes), read
    in Python without a child process; None for any other file."""
    try:
        with wave.open(str(path), "rb") as w:
            if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
                return None
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError):
        return None
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


def read_pcm(
    path: StrPath,
    sr: int = SAMPLE_RATE,
    *,
    start: float = 0.0,
    duration: float | None = None,
    tmp_dir: StrPath | None = None,
    timeout: float = WORK_TIMEOUT,
) -> np.ndarray:
    """Decode mono float32 samples at `sr`, optionally only `duration` seconds from `start`.

    ffmpeg writes raw f32le to a temporary file that numpy reads in one allocation, so the
    peak is the array itself (an hour at 16 kHz is 230 MB: prefer windows).
    """
    window = ["-t", f"{duration:.6f}"] if duration is not None else []
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="mina-pcm-") as tmp:
        raw = Path(tmp) / "samples.f32"
        args = ["-ss", f"{start:.6f}", "-i", str(path), *window, "-map", "0:a:0"]
        args += ["-ac", "1", "-ar", str(sr), "-f", "f32le", str(raw)]
        _ffmpeg(args, timeout=timeout, what="read audio samples")
        return np.fromfile(raw, dtype="<f4").astype(np.float32, copy=False)
