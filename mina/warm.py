"""Loading a process's models in a thread from its first moment, not when the first chunk
needs them.

What a chunk's transcription loads: the local Whisper model (~0.3 s to import faster-whisper,
~0.3 s to load), Silero VAD (~0.15 s) and the speaker model for the chunk's diarization
features (the ONNX session, ~0.2 s; the first time in a data directory also the checkpoint's
conversion and the graph's build, 2-3 s of CPU). Loaded on demand, under a lock, the first
chunks of a new worker process all waited for them in turn: bench/hour.py's first 24 chunks
took 10-15 s instead of 2. `mina process` and `mina dev` start this before their heavy imports,
every `dramatiq` worker process that transcribes chunks as it boots (workers.broker's
`WarmUp`). Light to import on purpose. Once per process: later calls return the first thread.
"""

from __future__ import annotations

import logging
import threading
import time

from mina.errors import MinaError
from mina.settings import Settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_thread: threading.Thread | None = None


def start(settings: Settings) -> threading.Thread:
    """Load this process's models in a daemon thread (once per process)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_load, args=(settings,), name="warm-up", daemon=True)
            _thread.start()
        return _thread


def _load(settings: Settings) -> None:
    from mina.providers import get_transcriber
    from mina.providers.base import JobProvider

    started = time.monotonic()
    try:
        transcriber = get_transcriber(settings)
        warm_up = getattr(transcriber, "warm_up", None)
        if warm_up is not None:
            warm_up()
    except MinaError as exc:  # the first chunk meets it again and records it
        log.warning("transcriber warm-up failed: %s", exc.message)
        return
    if isinstance(transcriber, JobProvider):
        return  # a webhook finishes its chunks: no features computed here
    try:
        from mina import vad
        from mina.insights import speaker_model

        vad.warm_up()
        speaker_model.load(settings.speaker_model, settings.data_dir)
    except (MinaError, OSError) as exc:  # the chunks go without features and say why
        log.warning("speaker model warm-up failed: %s", exc)
        return
    log.info("models loaded in %.2fs", time.monotonic() - started)
