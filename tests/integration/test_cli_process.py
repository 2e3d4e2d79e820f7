"""`mina process` as a newcomer runs it: real files in, one JSON document or readable text out."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mina import audio
from mina.synth import default_meeting_lines, make_meeting
from tests.fixtures.audio import wer

ROOT = Path(__file__).resolve().parents[2]
MINA = [sys.executable, "-m", "mina_cli"]


def run_mina(
    args: list[str], data_dir: Path, timeout: float = 600, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MINA_")}
    env["MINA_DATA_DIR"] = str(data_dir)
    env.update({f"MINA_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [*MINA, *args],
        cwd=data_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def wav_meeting(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("cli")
    script = make_meeting(default_meeting_lines(0.75), work / "meeting.wav")
    return work / "meeting.wav", script.text


@pytest.mark.parametrize("fmt", ["wav", "mp3", "m4a", "ogg", "webm", "flac"])
def test_every_common_format_gives_an_accurate_transcript(
    fmt: str, wav_meeting: tuple[Path, str], tmp_path: Path
) -> None:
    src, reference = wav_meeting
    path = tmp_path / f"meeting.{fmt}"
    if fmt == "wav":
        path.write_bytes(src.read_bytes())
    else:
        audio.encode(src, path)
    out = run_mina(["process", str(path), "--json"], tmp_path / "data")
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)  # exactly one JSON document on stdout
    assert set(doc) >= {"conversation_id", "transcript", "analytics", "tasks", "summary"}
    text = " ".join(s["text"] for s in doc["transcript"]["segments"])
    assert wer(reference, text) <= 0.15
    assert doc["processing_status"] == "ready"
    assert doc["summary"]["summary"] and doc["analytics"]["speakers"]


def test_readable_output_and_out_dir(wav_meeting: tuple[Path, str], tmp_path: Path) -> None:
    src, _ = wav_meeting
    out = run_mina(
        ["process", str(src), "--out", str(tmp_path / "res"), "--format", "srt"], tmp_path / "data"
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Transcript" in out.stdout and "Action items" in out.stdout
    assert "chunks transcribed" in out.stderr  # the progress bar goes to stderr
    srt = (tmp_path / "res" / "meeting.transcript.srt").read_text()
    assert "-->" in srt
    assert [p.name for p in (tmp_path / "res").iterdir()] == ["meeting.transcript.srt"]


def test_format_md_writes_meeting_notes_a_person_reads(
    wav_meeting: tuple[Path, str], tmp_path: Path
) -> None:
    src, _ = wav_meeting
    res = tmp_path / "res"
    out = run_mina(["process", str(src), "--out", str(res), "--format", "md"], tmp_path / "data")
    assert out.returncode == 0, out.stderr[-2000:]
    assert [p.name for p in res.iterdir()] == ["meeting.md"]  # no JSON files
    md = (res / "meeting.md").read_text()
    assert md.startswith("# meeting\n")
    assert re.search(r"^- \*\*Date:\*\* \d{4}-\d\d-\d\d \d\d:\d\d UTC$", md, flags=re.M)
    assert re.search(r"^- \*\*Duration:\*\* 00:[34]\d$", md, flags=re.M), md[:300]
    for heading in ("Summary", "Decisions", "Action items", "Speakers", "Transcript"):
        assert f"\n## {heading}\n" in md, md
    items = md.split("## Action items", 1)[1].split("##", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.*?) \| (.*?) \| (\d\d:\d\d) \|$", items, flags=re.M)
    assert rows and all(owner for _, owner, _, _ in rows), items
    assert any(re.fullmatch(r"\d{4}-\d\d-\d\d", due) for _, _, due, _ in rows), items
    turns = re.findall(r"^\*\*(\d\d:\d\d) (\S+):\*\* \S", md, flags=re.M)
    assert len(turns) >= 4 and turns[0][0] == "00:00"
    assert len({who for _, who in turns}) >= 2
    assert not re.search(r"\d+\.\ds", md)  # no 136.3s times


def _corrupt(tmp: Path) -> Path:
    good = tmp / "good.ogg"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=duration=4",
            "-c:a",
            "libopus",
            str(good),
        ],
        check=True,
    )
    data = good.read_bytes()
    bad = tmp / "cut.ogg"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _damaged(tmp: Path) -> Path:
    """An MP3 whole in length whose frames in the middle are garbage: only decoding finds it."""
    good = tmp / "good.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=duration=40", str(good)], check=True
    )
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 3000] = bytes((i * 131 + 7) % 256 for i in range(3000))
    bad = tmp / "damaged.mp3"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("text", "not an audio file"),
        ("corrupt", ""),
        ("damaged", "could not cut audio"),
    ],
)
def test_bad_files_exit_non_zero_with_one_line(case: str, message: str, tmp_path: Path) -> None:
    if case == "missing":
        path = tmp_path / "nope.wav"
    elif case == "empty":
        path = tmp_path / "empty.wav"
        path.write_bytes(b"")
    elif case == "text":
        path = tmp_path / "notes.mp3"
        path.write_text("hello\n" * 50)
    elif case == "corrupt":
        path = _corrupt(tmp_path)
    else:
        path = _damaged(tmp_path)
    out = run_mina(["process", str(path)], tmp_path / "data", timeout=120)
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), out.stderr
    assert message in lines[0]
    assert out.stdout == ""
    # Refused before any work: no conversation was created for it.
    db = tmp_path / "data" / "mina.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM conversation").fetchone() == (0,)


def test_a_language_the_model_cannot_transcribe_is_refused_before_any_work(
    wav_meeting: tuple[Path, str], tmp_path: Path
) -> None:
    src, _ = wav_meeting
    english = {"whisper_model": "tiny.en"}
    out = run_mina(["process", str(src), "--language", "es"], tmp_path / "data", **english)
    assert out.returncode != 0
    assert "English only" in out.stderr and "MINA_WHISPER_MODEL=base" in out.stderr
    out = run_mina(["process", str(src), "--language", "klingon"], tmp_path / "data")
    assert out.returncode != 0 and "not a language code" in out.stderr
    assert not (tmp_path / "data" / "mina.db").exists()  # nothing was created
