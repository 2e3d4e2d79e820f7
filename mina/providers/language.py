"""The language interface (refinement, action items, summary) and the configured provider."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Protocol

from mina.errors import ConfigurationError
from mina.insights import refine as refine_mod
from mina.insights import summary as summary_mod
from mina.insights import tasks as tasks_mod
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult
from mina.settings import Settings
from mina.transcript import Segment


class LanguageProvider(Protocol):
    name: str

    def refine(self, segments: Sequence[Segment]) -> RefinementResult: ...

    def extract_tasks(self, segments: Sequence[Segment], meeting_date: dt.date) -> TasksResult: ...

    def summarize(self, segments: Sequence[Segment], title_hint: str | None) -> SummaryResult: ...


class LocalLanguage:
    """Offline and key-free: honest rule-based work from `mina.insights`."""

    name = "local"

    def refine(self, segments: Sequence[Segment]) -> RefinementResult:
        return refine_mod.refine(segments)

    def extract_tasks(self, segments: Sequence[Segment], meeting_date: dt.date) -> TasksResult:
        return tasks_mod.extract_tasks(segments, meeting_date)

    def summarize(self, segments: Sequence[Segment], title_hint: str | None) -> SummaryResult:
        return summary_mod.summarize(segments, title_hint)


def get_language(settings: Settings) -> LanguageProvider:
    name = settings.language_provider
    if name in ("local", "simulated"):
        # `simulated` is the local provider with the latency and faults of MINA_SIM_TASK_*
        # injected around every task by mina.pipeline.work.
        return LocalLanguage()
    if name == "openai":
        from mina.providers.openai_chat import OpenAILanguage

        return OpenAILanguage(settings)
    raise ConfigurationError(f"unknown language provider {name!r}")
