"""The one place that builds what a process needs: settings, storage, the dispatcher and the
transcription provider (`build_services`). The web app, the workers, the scheduler's repair
jobs and the CLI each call it once with their own dispatcher; tests build one with theirs.

The provider is built on first use (`Services.transcriber`), so a process that never
transcribes (the web) never loads a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from mina.dispatch import Dispatcher
from mina.providers import get_transcriber
from mina.providers.base import Transcriber
from mina.settings import Settings
from mina.storage import Storage, build_storage


@dataclass
class Services:
    """What the pipeline needs from the process: passed in by actors, views, tests and the CLI."""

    settings: Settings
    storage: Storage
    dispatcher: Dispatcher
    given_transcriber: Transcriber | None = None

    @property
    def transcriber(self) -> Transcriber:
        if self.given_transcriber is None:
            self.given_transcriber = get_transcriber(self.settings)
        return self.given_transcriber


def build_services(settings: Settings, dispatcher: Dispatcher) -> Services:
    return Services(settings=settings, storage=build_storage(settings), dispatcher=dispatcher)
