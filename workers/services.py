"""What every actor of this process shares: settings, storage, dispatcher, providers."""

from __future__ import annotations

import functools

from mina.pipeline.transcribe import Services
from mina.providers.transcription import get_transcriber
from mina.settings import get_settings
from mina.storage import build_storage
from workers.dispatch import DramatiqDispatcher


@functools.lru_cache(maxsize=1)
def services() -> Services:
    settings = get_settings()
    return Services(
        settings=settings,
        storage=build_storage(settings),
        dispatcher=DramatiqDispatcher(),
        transcriber=get_transcriber(settings),
    )
