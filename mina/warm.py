"""Loading the local transcription model in a thread from the first moment of a command.

Light to import on purpose: `mina process` starts this before its heavy imports, so the model
(~0.3 s to import faster-whisper, ~0.3 s to load) is ready when the first chunk is.
"""

from __future__ import annotations

import logging
import threading

from mina.errors import MinaError
from mina.settings import Settings

log = logging.getLogger(__name__)


def start(settings: Settings) -> threading.Thread | None:
    """Load this process's local model in a daemon thread; None for remote transcribers."""
    if settings.transcriber != "local":
        return None
    thread = threading.Thread(target=_load, args=(settings,), name="warm-up", daemon=True)
    thread.start()
    return thread


def _load(settings: Settings) -> None:
    from mina.providers import get_transcriber

    try:
        warm_up = getattr(get_transcriber(settings), "warm_up", None)
        if warm_up is not None:
            warm_up()
    except MinaError as exc:  # the first chunk meets it again and records it
        log.warning("transcriber warm-up failed: %s", exc.message)
