"""Chunks normalized at once share ffmpeg children (mina.normalizing): the same bytes and the
same errors as one child per chunk."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from mina import audio, normalizing
from mina.errors import PermanentError


def alone(src: Path, tmp: Path) -> bytes:
    out = tmp / f"alone-{src.name}.wav"
    audio.normalize(src, out)
    return out.read_bytes()


def test_one_child_writes_the_bytes_one_child_each_writes(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    pairs = [(src, tmp_path / f"many-{fmt}.wav") for fmt, src in encoded.items()]
    audio.normalize_many(pairs)
    assert [dst.read_bytes() for _, dst in pairs] == [alone(src, tmp_path) for src, _ in pairs]
    assert not list(tmp_path.glob(".*.part"))


def test_one_bad_source_fails_the_child_and_leaves_no_file(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"OggS" + random.Random(3).randbytes(5000))
    with pytest.raises(PermanentError):
        audio.normalize_many([(encoded["ogg"], tmp_path / "a.wav"), (junk, tmp_path / "b.wav")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.ogg"]


def queued_then_released(
    n: normalizing.Normalizer, sources: list[Path], tmp_path: Path, caught: type[BaseException]
) -> dict[int, object]:
    """Each source asked for in a thread of its own while `n`'s only child is busy; once all
    wait, that child ends. Each thread's duration, or the `caught` exception it raised."""
    n._running = 1  # a child of an earlier chunk is running
    results: dict[int, object] = {}

    def one(k: int) -> None:
        try:
            results[k] = n.normalize(sources[k], tmp_path / f"out-{k}.wav")
        except caught as exc:
            results[k] = exc

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(sources))]
    for t in threads:
        t.start()
    while len(n._waiting) < len(sources):
        time.sleep(0.01)
    n._ended([])  # the earlier child ends
    for t in threads:
        t.join()
    return results


def test_chunks_waiting_for_a_child_share_the_next_and_keep_their_own_errors(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    """Ten chunks wait while the only child is busy; the next two children take eight and two.
    The child with the corrupt chunk fails, so its chunks are normalized alone: the good ones
    get their bytes, the corrupt one the error `normalize` gives it."""
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"OggS" + random.Random(3).randbytes(5000))
    with pytest.raises(PermanentError) as its_own:
        audio.normalize(junk, tmp_path / "junk.wav")
    sources = [*encoded.values(), junk, *encoded.values()][:10]
    n = normalizing.Normalizer(children=1)
    results = queued_then_released(n, sources, tmp_path, PermanentError)
    assert (n.batches, n.chunks) == (2, 10)
    for k, src in enumerate(sources):
        if src == junk:
            assert str(results[k]) == str(its_own.value)
        else:
            assert results[k] == audio.duration(tmp_path / f"out-{k}.wav")
            assert (tmp_path / f"out-{k}.wav").read_bytes() == alone(src, tmp_path)


def test_a_missing_source_fails_as_normalize_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as alone_error:
        audio.normalize(tmp_path / "gone.ogg", tmp_path / "a.wav")
    with pytest.raises(FileNotFoundError) as shared_error:
        normalizing.Normalizer().normalize(tmp_path / "gone.ogg", tmp_path / "b.wav")
    assert str(shared_error.value) == str(alone_error.value)


class Stop(Exception):
    """What an actor's time limit raises in its thread (Dramatiq raises it asynchronously)."""


def test_a_child_stopped_by_its_thread_leaves_the_others_to_normalize_alone(
    encoded: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread running a shared child is stopped before any output is in place: it raises,
    and the chunk it took for another thread is normalized by that thread alone."""
    sources = list(encoded.values())[:2]
    n = normalizing.Normalizer(children=1)

    def stopped(*_: object, **__: object) -> None:
        raise Stop("time limit")

    monkeypatch.setattr(audio, "normalize_many", stopped)
    results = queued_then_released(n, sources, tmp_path, Stop)
    raised = [k for k in results if isinstance(results[k], Stop)]
    assert len(raised) == 1
    other = 1 - raised[0]
    out = tmp_path / f"out-{other}.wav"
    assert results[other] == audio.duration(out)
    assert out.read_bytes() == alone(sources[other], tmp_path)
    assert n._running == 0 and n._waiting == []


def test_a_thread_stopped_while_waiting_takes_its_chunk_out_of_the_queue(
    encoded: dict[str, Path], tmp_path: Path
) -> None:
    import ctypes

    n = normalizing.Normalizer(children=1)
    n._running = 1
    got: list[BaseException] = []

    def one() -> None:
        try:
            n.normalize(encoded["ogg"], tmp_path / "out.wav")
        except Stop as exc:
            got.append(exc)

    thread = threading.Thread(target=one)
    thread.start()
    while not n._waiting:
        time.sleep(0.01)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(Stop))
    with n._cond:
        n._cond.notify_all()  # the exception is raised when the thread runs Python again
    thread.join(10)
    assert not thread.is_alive() and len(got) == 1
    assert n._waiting == []
