"""The `openai` language provider: chat completions with a strict JSON schema.

Any OpenAI-compatible base URL works (`MINA_OPENAI_BASE_URL`, model `MINA_OPENAI_CHAT_MODEL`).
Each answer must parse and validate against the result's pydantic model
(mina.insights.schemas). An invalid answer is a transient failure once (the question is asked
again) and permanent the second time. Transport errors go through mina.resilience with one
attempt per call: the post-processing runner already retries transient errors, so retrying here
too would multiply the calls.

Refinement asks for the cleaned text of each segment in batches and keeps our own timings and
speakers, so a model can never move or drop a segment. Action items are asked for how each was
said (the speaker commits, someone is asked, someone is named, "we"), the name addressed and
the time; owners are then decided by the same rules as for the offline provider, after
diarization (mina.insights.owners). The caller falls back to the offline rules when this
provider fails (mina.providers.language.with_rules).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel

from mina import resilience
from mina.errors import PermanentError
from mina.insights.schemas import ActionItem, RefinementResult, SummaryResult, TasksResult
from mina.providers.openai_asr import make_client, openai_errors
from mina.settings import Settings
from mina.transcript import Segment

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

REFINE_BATCH = 60
_DROP = {"default", "minLength", "maxLength", "minimum", "maximum", "format", "pattern"}


class _Texts(BaseModel):
    texts: list[str]


class _Item(BaseModel):
    text: str = pydantic.Field(min_length=1)
    said_as: Literal["commitment", "request", "named", "team"]
    addressee: str | None
    due: str | None
    source_time: float | None
    confidence: float = pydantic.Field(ge=0.0, le=1.0)


class _Items(BaseModel):
    items: list[_Item]


class InvalidOutput(ValueError):
    """The model answered, but not with what the schema asks for."""


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in OpenAI's strict form: every property required, no extras.

    Optional fields stay nullable (`anyOf` with null); value constraints the strict mode may
    refuse are dropped here and enforced by pydantic on the answer.
    """

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items() if k not in _DROP}
        if out.get("type") == "object" and "properties" in out:
            out["required"] = list(out["properties"])
            out["additionalProperties"] = False
        return out

    schema: dict[str, Any] = walk(model.model_json_schema())
    return schema


def _lines(segments: Sequence[Segment]) -> str:
    def stamp(s: float) -> str:
        return f"{int(s // 60):02d}:{int(s % 60):02d}"

    return "\n".join(
        f"[{stamp(s.start)}] {s.speaker + ': ' if s.speaker else ''}{s.text.strip()}"
        for s in segments
    )


REFINE = (
    "You clean up automatic meeting transcripts. For each numbered line return its text with "
    "fillers (um, uh, you know) and stutters removed, spelling, capitalization and punctuation "
    "fixed, and nothing else changed: no new words, no summarizing. Return exactly one text per "
    "input line, in order; a line that held only fillers becomes an empty string."
)
TASKS = (
    "You extract action items from a meeting transcript: work someone committed to or was "
    "asked to do. Decisions, past events, questions and statements of fact are not action "
    "items, and neither is meeting chatter ('let's move on'). For each give the text "
    "(imperative, short), said_as: 'commitment' (the speaker says they will do it), 'request' "
    "(someone is asked to do it), 'named' (a named person will do it) or 'team' ('we', "
    "'let's'), the addressee (the person's name when one is said, else null), the due date as "
    "YYYY-MM-DD resolved against the meeting date (or null), the start time in seconds of the "
    "line it comes from (or null) and your confidence 0..1. No items is a valid answer."
)
SUMMARY = (
    "You summarize a meeting transcript. Give a short title, a summary of 2-4 sentences, the "
    "key points, the decisions taken and the questions left open, each as short sentences in "
    "the order they came up. Use only what the transcript says."
)


class OpenAILanguage:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = make_client(settings)

    def refine(self, segments: Sequence[Segment]) -> RefinementResult:
        out: list[Segment] = []
        for start in range(0, len(segments), REFINE_BATCH):
            batch = list(segments[start : start + REFINE_BATCH])
            numbered = "\n".join(f"{n + 1}. {s.text.strip()}" for n, s in enumerate(batch))
            check = functools.partial(_same_count, batch=batch)
            texts = self._ask("refinement", _Texts, REFINE, numbered, check=check)
            out += [
                s.model_copy(update={"text": t.strip()})
                for s, t in zip(batch, texts.texts, strict=True)
            ]
        return RefinementResult(segments=out)

    def extract_tasks(self, segments: Sequence[Segment], meeting_date: dt.date) -> TasksResult:
        prompt = f"Meeting date: {meeting_date.isoformat()}\n\n{_lines(segments)}"
        found = self._ask("tasks", _Items, TASKS, prompt, check=_valid_dates)
        items = [
            ActionItem(
                text=it.text,
                owner="team" if it.said_as == "team" else None,
                owner_basis=it.said_as,
                addressee=it.addressee,
                due=it.due,
                source_time=max(0.0, it.source_time) if it.source_time is not None else None,
                confidence=it.confidence,
            )
            for it in found.items
        ]
        return TasksResult(items=items)

    def summarize(self, segments: Sequence[Segment], title_hint: str | None) -> SummaryResult:
        hint = f"Title given by the organizer: {title_hint}\n\n" if title_hint else ""
        return self._ask("summary", SummaryResult, SUMMARY, hint + _lines(segments))

    def _ask(
        self,
        task: str,
        model: type[M],
        system: str,
        user: str,
        *,
        check: Callable[[M], None] | None = None,
    ) -> M:
        """Ask; an invalid answer is asked again once, then it is a permanent failure."""
        schema = {"name": task, "strict": True, "schema": strict_schema(model)}
        guard = resilience.guard("openai_chat", self._settings)
        for attempt in (1, 2):
            raw = guard.call(lambda: self._complete(system, user, schema), attempts=1)
            try:
                result = _parse(raw, model)
                if check is not None:
                    check(result)
                return result
            except InvalidOutput as exc:
                if attempt == 2:
                    raise PermanentError(f"openai {task}: invalid output twice: {exc}") from exc
                log.warning("openai %s: invalid output, asking again: %s", task, exc)
        raise AssertionError("unreachable")

    def _complete(self, system: str, user: str, schema: dict[str, Any]) -> str:
        messages: Any = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        response_format: Any = {"type": "json_schema", "json_schema": schema}
        with openai_errors("openai chat"):
            response = self._client.chat.completions.create(
                model=self._settings.openai_chat_model,
                messages=messages,
                response_format=response_format,
                temperature=0,
            )
        choice = response.choices[0] if response.choices else None
        if choice is None or choice.finish_reason == "length":
            return ""  # no answer, or a truncated one: invalid output
        return choice.message.content or ""


def _parse(raw: str, model: type[M]) -> M:
    if not raw.strip():
        raise InvalidOutput("empty or truncated answer")
    try:
        return model.model_validate(json.loads(raw))
    except (json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise InvalidOutput(str(exc)[:300]) from exc


def _same_count(result: _Texts, batch: Sequence[Segment]) -> None:
    if len(result.texts) != len(batch):
        raise InvalidOutput(f"{len(result.texts)} texts for {len(batch)} segments")


def _valid_dates(result: _Items) -> None:
    for item in result.items:
        if item.due is not None:
            try:
                dt.date.fromisoformat(item.due)
            except ValueError as exc:
                raise InvalidOutput(f"due {item.due!r} is not a YYYY-MM-DD date") from exc
