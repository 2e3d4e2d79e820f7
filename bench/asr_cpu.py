"""ASR CPU of Mina's local transcription vs plain chunked transcription, in one process.

On the same audio, one thread, model loaded before timing (CPU seconds of this process):
  plain  one faster-whisper call per 30 s chunk with the Settings' decoding options, no word
         times, no VAD check, no seams (what chunked transcription costs by itself);
  mina   `WhisperTranscriber.transcribe_samples` per chunk (word times, VAD check) and
         `seams.make` at every boundary (the real seam step, audio in local storage); a chunk's
         tail is left open for its seam where the tree does that (`open_tail`).
Audio: the espeak meeting of mina/synth.py (`--minutes`) and, with `--real`, the real-speech
meetings of bench/corpus.py. `--code DIR` measures another tree's mina (e.g. a commit exported by
bench/quality.py into $MINA_BENCH_CACHE/trees/<commit>): run it twice for before/after.
Prints `ratio=<mina / plain>` (issue #16's target: <= 1.3).
Usage: .venv/bin/python bench/asr_cpu.py [--minutes 3] [--real] [--code DIR]
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def measure(samples: np.ndarray, work: Path) -> tuple[float, float, int, int]:
    """(plain CPU, mina CPU, boundaries, seams transcribed) for `samples` cut every 30 s."""
    from mina.models import Chunk
    from mina.pipeline import seams
    from mina.pipeline.transcribe import normalized_key
    from mina.providers.whisper import FALLBACK_TEMPERATURES, WhisperTranscriber
    from mina.settings import Settings
    from mina.storage.local import LocalStorage

    settings = Settings(worker_threads=1, whisper_threads=1)
    transcriber = WhisperTranscriber(settings)
    model = transcriber.model()
    step = 30 * 16000
    pieces = [samples[i : i + step] for i in range(0, samples.size, step)]
    started = time.process_time()
    for piece in pieces:
        segments, _ = model.transcribe(
            piece,
            language="en",
            beam_size=settings.whisper_beam_size,
            temperature=FALLBACK_TEMPERATURES if settings.whisper_temperature_fallback else 0.0,
            condition_on_previous_text=settings.whisper_condition_on_previous_text,
            vad_filter=False,
        )
        list(segments)
    plain = time.process_time() - started

    storage = LocalStorage(work / "blobs")
    # As the pipeline transcribes a chunk: its tail left open for the seam where it can be
    # (trees before that have no `open_tail`).
    tails = (
        {"open_tail": True}
        if "open_tail" in inspect.signature(transcriber.transcribe_samples).parameters
        else {}
    )
    rows = []
    started = time.process_time()
    for index, piece in enumerate(pieces):
        path = _write(work / f"{index}.wav", piece)
        storage.put_file(normalized_key("c", index), path)
        result = transcriber.transcribe_samples(piece, "en", **tails)
        rows.append(
            Chunk(
                id=f"chunk{index}",
                conversation_id="c",
                index=index,
                status="transcribed",
                attempts=1,
                duration=piece.size / 16000,
                segments=[s.model_dump(exclude_none=True) for s in result.segments],
            )
        )
    made = 0
    for left, right in itertools.pairwise(rows):
        seam = seams.make(
            seams.Side.of(left),
            seams.Side.of(right),
            transcriber,
            storage,
            "c",
            settings.seam_seconds,
            "en",
        )
        made += seam["segments"] is not None
    last = seams.Side.of(rows[-1])
    if getattr(last, "tail", None) is not None:  # no seam after the last chunk: its own tail
        tail_samples = pieces[-1][int(last.tail * 16000) :]
        transcriber.transcribe_samples(tail_samples, "en")
    mina = time.process_time() - started
    return plain, mina, len(rows) - 1, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--real", action="store_true", help="also the real-speech meetings")
    parser.add_argument("--code", default=str(ROOT), help="the tree whose mina is measured")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, args.code)
    from mina import audio
    from mina.synth import default_meeting_lines, make_meeting

    print(f"measured: {args.code}")
    with tempfile.TemporaryDirectory(prefix="mina-asr-cpu-") as tmp:
        work = Path(tmp)
        make_meeting(default_meeting_lines(args.minutes), work / "espeak.wav")
        inputs = {f"espeak-{args.minutes:g}": audio.read_pcm(work / "espeak.wav")}
        if args.real:
            from bench.corpus import real_meeting

            for name, n, minutes, seed in (("real-4", 4, 4.0, 0), ("real-2", 2, 3.0, 1)):
                m = real_meeting(n, minutes, seed, lead_in=3.0, long_pause=(12, 7.0))
                inputs[name] = audio.read_pcm(m.wav)
        total_plain = total_mina = 0.0
        for name, samples in inputs.items():
            (work / name).mkdir()
            plain, mina, cuts, made = measure(samples, work / name)
            total_plain, total_mina = total_plain + plain, total_mina + mina
            print(
                f"{name}: plain {plain:6.2f}s  mina {mina:6.2f}s  ({made} of {cuts} seams "
                f"transcribed)  mina/plain {mina / plain:.2f}"
            )
        print(f"ratio={total_mina / total_plain:.2f}")


if __name__ == "__main__":
    main()
