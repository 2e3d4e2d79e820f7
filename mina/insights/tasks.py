"""Action items by pattern: the `local` language provider's task extraction.

Each sentence (fillers removed) is matched against commitment patterns, strongest first:

| pattern                                        | owner                         | confidence |
|------------------------------------------------|-------------------------------|------------|
| "action item: ...", "to-do: ..."               | the speaker                   | 0.85       |
| "Bob, can/could/would/will you ...", "Bob, please ..." | Bob                   | 0.8        |
| "I'll / I will / Ill / I shall ..."            | the speaker                   | 0.75       |
| "I'm going to / I'm gonna ..."                 | the speaker                   | 0.7        |
| "I need to / I have to / let me ..."           | the speaker                   | 0.6        |
| "Bob will / Bob is going to ..."               | Bob                           | 0.6        |
| "can/could/would you ...", "please ..."        | whoever answers yes, or None  | 0.55       |
| "I can ..."                                    | the speaker                   | 0.5        |
| "we need to / have to / must / will ..."       | "team"                        | 0.5        |
| "let's ...", "we should ..."                   | "team"                        | 0.45       |

Adjustments: +0.1 with a due date, +0.1 when the addressee answers yes ("sure", "will do", ...)
within the next two segments, -0.2 for hedges (maybe, might, probably, try to, if). Actions
that are meeting talk rather than work ("can you hear me", "let's move on", "I'll be honest")
are skipped by their first words. Due dates: `mina.insights.dates`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mina.insights import dates, lexicon
from mina.insights import text as textrules
from mina.insights.refine import clean_text
from mina.insights.schemas import ActionItem, TasksResult
from mina.transcript import Segment

log = logging.getLogger(__name__)

_NAME = r"(?P<name>[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)"
_ACT = r"(?:please\s+)?(?P<action>.+)"
_PATTERNS: list[tuple[str, float, re.Pattern[str]]] = [
    ("self", 0.85, re.compile(r"\b(?:action item|to-?do)\s*(?:is|:|-)?\s*(?P<action>.+)", re.I)),
    (
        "name",
        0.8,
        re.compile(
            rf"^(?i:(?:hey|hi|ok|okay|so|and|also|then)[, ]+)?{_NAME},?\s+"
            rf"(?:can|could|would|will)\s+you\s+{_ACT}"
        ),
    ),
    (
        "name",
        0.8,
        re.compile(
            rf"^(?i:(?:hey|hi|ok|okay|so|and|also|then)[, ]+)?{_NAME},\s+"
            r"please\s+(?P<action>.+)"
        ),
    ),
    ("self", 0.75, re.compile(r"\b(?:i'll|i will|i shall)\s+(?P<action>.+)", re.I)),
    ("self", 0.7, re.compile(r"\b(?:i'm|i am)\s+(?:going to|gonna)\s+(?P<action>.+)", re.I)),
    (
        "self",
        0.6,
        re.compile(r"\b(?:i need to|i have to|i've got to|let me)\s+(?P<action>.+)", re.I),
    ),
    (
        "name",
        0.6,
        re.compile(
            rf"^(?i:(?:so|and|then|okay)[, ]+)?{_NAME}\s+"
            r"(?:will|is going to|'ll)\s+(?P<action>.+)"
        ),
    ),
    ("other", 0.55, re.compile(rf"\b(?:can|could|would|will)\s+you\s+{_ACT}", re.I)),
    ("other", 0.55, re.compile(r"^(?:\w+,\s+)?please\s+(?P<action>.+)", re.I)),
    ("self", 0.5, re.compile(r"\bi can\s+(?P<action>.+)", re.I)),
    (
        "team",
        0.5,
        re.compile(
            r"\bwe\s*(?:need to|have to|must|will|'ll|'ve got to|are going to|'re going to)\s+"
            r"(?P<action>.+)",
            re.I,
        ),
    ),
    ("team", 0.45, re.compile(r"\b(?:let'?s|let us|we should)\s+(?P<action>.+)", re.I)),
]
_LEADING = re.compile(
    r"^(?:just|also|quickly|definitely|then|go ahead and|make sure to|make sure|be sure to|"
    r"please|take care of)\s+",
    re.I,
)
_NON_ACTION_PREFIXES = tuple(f"{p} " for p in lexicon.NON_ACTIONS)
_AFFIRM = re.compile(
    r"^(?:sure|yes|yeah|yep|yup|ok|okay|will do|absolutely|of course|no problem|on it|"
    r"happy to|definitely|sounds good|i can|i will|i'll|got it)\b",
    re.I,
)
_HEDGE = re.compile(r"\b(?:maybe|might|probably|perhaps|try to|if)\b", re.I)
_TERMINATED = re.compile(r"[.!?…][\"')\]]*\s*$")
_JOIN_GAP = 1.5  # seconds of pause across which an unfinished sentence still goes on


@dataclass
class _Sentence:
    text: str
    speaker: str | None
    start: float
    index: int
    #: seconds per character of the segment it starts in, and that segment's end: a position
    #: in the text maps to a time (whisper's segments carry no word times)
    rate: float = 0.0
    end: float = 0.0

    def time_at(self, offset: int) -> float:
        return round(min(self.end, self.start + offset * self.rate), 2)


def _sentences(segments: Sequence[Segment]) -> list[_Sentence]:
    """The sentences of the transcript. A segment that ends without terminal punctuation goes
    on in the next one of the same speaker (whisper breaks segments mid-sentence, and a chunk
    boundary cuts one): "I'll send the report" + "by Friday." is one commitment with its due
    date. A joined sentence keeps its first segment's start and its last segment's index.
    A sentence's start is placed by its position in its segment's text."""
    out: list[_Sentence] = []
    unfinished: _Sentence | None = None
    previous_end = 0.0
    for i, seg in enumerate(segments):
        goes_on = (
            unfinished is not None
            and seg.speaker == unfinished.speaker
            and seg.start - previous_end <= _JOIN_GAP
        )
        cleaned, _ = clean_text(seg.text, sentence_start=not goes_on)
        parts = textrules.split_sentences(cleaned)
        if unfinished is not None and not (goes_on and parts):
            out.append(unfinished)
            unfinished = None
        rate = (seg.end - seg.start) / max(1, len(cleaned))
        at = 0
        for k, text in enumerate(parts):
            at = max(at, cleaned.find(text, at))
            if unfinished is not None:  # k == 0: the unfinished sentence goes on here
                sentence = replace(unfinished, text=f"{unfinished.text} {text}", index=i)
                unfinished = None
            else:
                sentence = _Sentence(text, seg.speaker, seg.start + at * rate, i, rate, seg.end)
            if k == len(parts) - 1 and not _TERMINATED.search(seg.text):
                # clean_text closed it with a full stop it did not have
                sentence.text = sentence.text.rstrip(".?!") if text[-1:] in ".?!" else sentence.text
                unfinished = sentence
            else:
                out.append(sentence)
        previous_end = seg.end
    if unfinished is not None:
        out.append(unfinished)
    return out


def _action(raw: str) -> str | None:
    action = raw.strip().rstrip(".!?,;: ")
    action = re.sub(r",?\s+(?:okay|ok|right|please|alright)$", "", action, flags=re.I)
    while (stripped := _LEADING.sub("", action)) != action:
        action = stripped
    lowered = action.lower() + " "
    if len(textrules.words(action)) < 2 or lowered.startswith(_NON_ACTION_PREFIXES):
        return None
    return action[0].upper() + action[1:]


def _responder(segments: Sequence[Segment], sentence: _Sentence) -> str | None:
    """The other speaker who says yes to a request in the next two segments, if any."""
    for seg in segments[sentence.index + 1 : sentence.index + 3]:
        if seg.start - sentence.start > 30:
            break
        if seg.speaker and seg.speaker != sentence.speaker:
            return seg.speaker if _AFFIRM.match(clean_text(seg.text)[0]) else None
    return None


def _match(sentence: _Sentence, segments: Sequence[Segment]) -> tuple[float, ActionItem] | None:
    for kind, base, pattern in _PATTERNS:
        m = pattern.search(sentence.text)
        if m is None:
            continue
        if kind == "name" and m["name"].split()[0] in lexicon.NOT_NAMES:
            continue
        action = _action(m["action"])
        if action is None:
            continue
        confidence = base
        owner: str | None
        if kind == "self":
            owner = sentence.speaker
        elif kind == "name":
            owner = m["name"]
        elif kind == "team":
            owner = "team"
        else:
            owner = _responder(segments, sentence)
        if kind in {"name", "other"} and _responder(segments, sentence):
            confidence += 0.1
        return confidence, ActionItem(
            text=action,
            owner=owner,
            due=None,
            source_time=sentence.time_at(m.start()),
            confidence=0.0,
        )
    return None


def extract_tasks(segments: Sequence[Segment], meeting_date: dt.date) -> TasksResult:
    """Action items in `segments`, due dates resolved against `meeting_date`."""
    found: dict[str, ActionItem] = {}
    for sentence in _sentences(segments):
        hit = _match(sentence, segments)
        if hit is None:
            continue
        confidence, item = hit
        due = dates.find_due(sentence.text, meeting_date)
        if due is not None:
            confidence += 0.1
        if _HEDGE.search(sentence.text):
            confidence -= 0.2
        item = item.model_copy(
            update={
                "due": due[0].isoformat() if due else None,
                "confidence": round(min(0.95, max(0.05, confidence)), 2),
            }
        )
        key = " ".join(textrules.norm(w) for w in textrules.words(item.text)[:8])
        if key not in found or found[key].confidence < item.confidence:
            found[key] = item
    items = sorted(found.values(), key=lambda it: it.source_time or 0.0)
    log.debug("found %d action items in %d segments", len(items), len(segments))
    return TasksResult(items=items)
