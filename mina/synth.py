"""Synthetic meetings for tests and demos: espeak-ng voices, one WAV, then any format.

`python -m mina.synth samples/meeting.ogg --minutes 1.25` writes the audio and, next to it,
the script with speakers and times (`meeting.txt`).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mina import audio
from mina.errors import ConfigurationError, PermanentError

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"
SPEAK_TIMEOUT = 60.0
# Measured speaking rate of the default voices (espeak's own pauses included), to size a
# dialogue before synthesizing it.
WORDS_PER_SECOND = 2.4


@dataclass(frozen=True)
class Line:
    speaker: str
    text: str


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (language+variant), pitch 0-99 and speed in words per minute."""

    name: str
    pitch: int = 50
    speed: int = 150


DEFAULT_VOICES: dict[str, Voice] = {
    "Alice": Voice("en-us+f3", pitch=55, speed=140),
    "Bob": Voice("en-us+m3", pitch=35, speed=145),
}


@dataclass(frozen=True)
class ScriptLine:
    speaker: str
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Script:
    lines: tuple[ScriptLine, ...]
    duration: float

    @property
    def text(self) -> str:
        """Every word spoken, in order, as one string."""
        return " ".join(line.text for line in self.lines)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(line.speaker for line in self.lines))

    def to_text(self) -> str:
        """One line per turn: `[00:01.20 - 00:04.85] Alice: text`."""
        rows = [
            f"[{_clock(ln.start)} - {_clock(ln.end)}] {ln.speaker}: {ln.text}" for ln in self.lines
        ]
        return "\n".join(rows) + "\n"


def _clock(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes):02d}:{rest:05.2f}"


# --- the dialogue ---------------------------------------------------------------------------

_OPENING = (
    Line("Alice", "Good morning, Bob. Thanks for joining the weekly product meeting."),
    Line("Bob", "Morning, Alice. Um, happy to be here. What is on the agenda today?"),
    Line("Alice", "Three things. The release plan, the customer report, and the roadmap."),
)

# Ordered so that a one-minute meeting already holds the decision and the commitments.
_BODY = (
    Line("Bob", "Okay. Let's start with the release plan, you know, since it is the most urgent."),
    Line("Alice", "We decided to ship version two in March."),
    Line("Bob", "That sounds good to me. Are the tests ready for the new login page?"),
    Line("Alice", "Most of them are. I'll send the report by Friday."),
    Line("Alice", "Bob, can you update the roadmap by next Monday?"),
    Line("Bob", "Yes, I can do that. Um, I will add the new search feature as well."),
    Line("Alice", "Thanks. Let's schedule a review on Thursday."),
    Line("Bob", "Thursday works for me. What time do you want to meet?"),
    Line("Alice", "How about ten in the morning?"),
    Line("Bob", "Perfect. I'll book the meeting room."),
    Line("Alice", "Next topic. Our customers asked for a faster mobile app."),
    Line("Bob", "You know, we could fix the slow pages first. That would help a lot."),
    Line("Alice", "Good idea. How many pages are slow right now?"),
    Line("Bob", "About five pages. Um, the checkout page is the worst one."),
    Line("Alice", "Then let's fix the checkout page in this sprint."),
    Line("Bob", "Agreed. I'll ask the design team for new pictures by Tuesday."),
    Line("Alice", "Do we need more people for this work?"),
    Line("Bob", "No, I think the current team can handle it."),
    Line("Alice", "Okay. Is there anything else we should talk about?"),
    Line("Bob", "Just one thing. The budget review is next week, you know."),
    Line("Alice", "Right. I'll prepare the numbers before Wednesday."),
)

_RECAP = Line("Alice", "Let me go over the plan one more time, so we all agree.")


def _closing(last_speaker: str) -> tuple[Line, Line]:
    """Goodbyes, begun by whoever did not speak last."""
    first, second = ("Alice", "Bob") if last_speaker == "Bob" else ("Bob", "Alice")
    return (
        Line(first, f"We are out of time, so let's stop here. Thanks, {second}."),
        Line(second, f"Thank you, {first}. See you on Thursday."),
    )


def estimate_seconds(lines: Iterable[Line], gap_seconds: float = 0.6) -> float:
    """About how long `lines` take when spoken by the default voices."""
    total = 0.0
    for line in lines:
        total += len(line.text.split()) / WORDS_PER_SECOND + gap_seconds
    return total


def _body_lines() -> Iterable[Line]:
    """The body, then a recap and the body again, forever (deterministic)."""
    yield from _BODY
    while True:
        yield _RECAP
        yield from _BODY


def default_meeting_lines(minutes: float = 1.0) -> list[Line]:
    """A product-team meeting between Alice and Bob, long enough for about `minutes`."""
    target = minutes * 60.0
    lines = list(_OPENING)
    budget = target - estimate_seconds(_OPENING) - estimate_seconds(_closing("Bob"))
    for line in _body_lines():
        if budget <= 0:
            break
        lines.append(line)
        budget -= estimate_seconds([line])
    return [*lines, *_closing(lines[-1].speaker)]


# --- synthesis ------------------------------------------------------------------------------


def _speak(text: str, voice: Voice, dst: Path) -> None:
    """One utterance to a WAV with espeak-ng (text on stdin, never parsed as options)."""
    cmd = [ESPEAK, "-v", voice.name, "-p", str(voice.pitch), "-s", str(voice.speed)]
    cmd += ["-w", str(dst), "--stdin"]
    try:
        proc = subprocess.run(
            cmd, input=text.encode(), capture_output=True, timeout=SPEAK_TIMEOUT, check=False
        )
    except FileNotFoundError as exc:
        raise ConfigurationError(f"{ESPEAK} is not installed") from exc
    if proc.returncode != 0 or not dst.exists():
        err = proc.stderr.decode("utf-8", "replace").strip()[:200]
        raise PermanentError(f"espeak-ng failed for voice {voice.name}: {err}")


def _voices(lines: Sequence[Line], voices: Mapping[str, Voice | str] | None) -> dict[str, Voice]:
    given = DEFAULT_VOICES if voices is None else voices
    chosen = {k: v if isinstance(v, Voice) else Voice(v) for k, v in given.items()}
    missing = sorted({line.speaker for line in lines} - chosen.keys())
    if missing:
        raise ValueError(f"no voice for speaker(s): {', '.join(missing)}")
    return chosen


def _assemble(parts: Sequence[Path], lines: Sequence[Line], gap: float, dst: Path) -> Script:
    """Join the utterance WAVs with `gap` seconds of silence; the timed script."""
    with wave.open(str(parts[0]), "rb") as first:
        params = first.getparams()
    silence = b"\0" * params.sampwidth * params.nchannels * round(gap * params.framerate)
    timed: list[ScriptLine] = []
    frames = 0
    with wave.open(str(dst), "wb") as out:
        out.setparams(params)
        for part, line in zip(parts, lines, strict=True):
            if timed:
                out.writeframes(silence)
                frames += round(gap * params.framerate)
            with wave.open(str(part), "rb") as src:
                if src.getparams()[:3] != params[:3]:
                    raise PermanentError("espeak-ng voices gave different sample formats")
                count = src.getnframes()
                out.writeframes(src.readframes(count))
            start, end = frames / params.framerate, (frames + count) / params.framerate
            timed.append(ScriptLine(line.speaker, line.text, start, end))
            frames += count
    return Script(tuple(timed), frames / params.framerate)


def make_meeting(
    lines: Sequence[Line],
    out_path: str | Path,
    voices: Mapping[str, Voice | str] | None = None,
    gap_seconds: float = 0.6,
    *,
    bitrate: str = "32k",
) -> Script:
    """Speak `lines` turn by turn into `out_path` (format from its suffix: wav, ogg, mp3, m4a,
    webm, flac); returns the script with each turn's start and end in seconds."""
    if not lines:
        raise ValueError("a meeting needs at least one line")
    out = Path(out_path)
    chosen = _voices(lines, voices)
    with tempfile.TemporaryDirectory(prefix="mina-synth-") as tmp:
        parts = [Path(tmp) / f"line-{i:04d}.wav" for i in range(len(lines))]
        for line, part in zip(lines, parts, strict=True):
            _speak(line.text, chosen[line.speaker], part)
        mixed = Path(tmp) / "meeting.wav"
        script = _assemble(parts, lines, gap_seconds, mixed)
        if out.suffix.lower() == ".wav":
            shutil.copyfile(mixed, out)
        else:
            audio.encode(mixed, out, bitrate=bitrate)
    log.info("synthesized %d lines, %.1fs, into %s", len(lines), script.duration, out.name)
    return script


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Synthesize a two-voice demo meeting.")
    parser.add_argument("out", type=Path, help="audio file to write (.ogg, .wav, .mp3, ...)")
    parser.add_argument("--minutes", type=float, default=1.0, help="about how long")
    parser.add_argument("--gap", type=float, default=0.6, help="silence between turns (s)")
    parser.add_argument("--bitrate", default="24k", help="for compressed formats")
    parser.add_argument("--script", type=Path, help="where to write the script (default: .txt)")
    args = parser.parse_args(argv)
    lines = default_meeting_lines(args.minutes)
    script = make_meeting(lines, args.out, gap_seconds=args.gap, bitrate=args.bitrate)
    text_path = args.script or args.out.with_suffix(".txt")
    text_path.write_text(script.to_text(), encoding="utf-8")
    print(f"{args.out}: {script.duration:.1f}s, {len(script.lines)} turns; script in {text_path}")


if __name__ == "__main__":
    main()
