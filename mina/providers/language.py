"""The language interface (refinement, action items, summary) and the configured provider.

A model provider (`openai`: any OpenAI-compatible endpoint, a local Ollama or llama.cpp server
included) is used through `with_rules`: when it fails in any way (unreachable, an error status,
invalid output twice) the offline rules answer instead, and the caller records why.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from mina.errors import ConfigurationError, MinaError
from mina.insights import refine as refine_mod
from mina.insights import summary as summary_mod
from mina.insights import tasks as tasks_mod
from mina.insights.schemas import RefinementResult, SummaryResult, TasksResult
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)

T = TypeVar("T")


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


def rules_only(settings: Settings) -> bool:
    """Whether the configured language provider is the offline rules (no model to call)."""
    return settings.language_provider in ("local", "simulated")


def get_language(settings: Settings) -> LanguageProvider:
    name = settings.language_provider
    if rules_only(settings):
        # `simulated` is the local provider with the latency and faults of MINA_SIM_TASK_*
        # injected around every task by mina.pipeline.work.
        return LocalLanguage()
    if name == "openai":
        from mina.providers.openai_chat import OpenAILanguage

        return OpenAILanguage(settings)
    raise ConfigurationError(f"unknown language provider {name!r}")


def with_rules(
    settings: Settings, task: str, call: Callable[[LanguageProvider], T]
) -> tuple[T, str | None]:
    """`call` on the configured provider; on any failure of a model provider, on the offline
    rules. Returns the answer and, when the rules stood in, the provider's error."""
    provider = get_language(settings)
    if isinstance(provider, LocalLanguage):
        return call(provider), None
    try:
        return call(provider), None
    except MinaError as exc:
        log.warning("%s: language provider %s failed (%s); rules used", task, provider.name, exc)
        return call(LocalLanguage()), f"{provider.name}: {exc.message}"
