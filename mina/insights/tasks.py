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
are skipped by their first words. Due dates: `mina.insights.dates`; an unsure "to May" closing a
sentence is read as "today" (how speech recognition hears it), unless a verb of moving precedes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from mina.insights import dates, lexicon, owners
from mina.insights import names as names_mod
from mina.insights import text as textrules
from mina.insights.refine import clean_text
from mina.insights.schemas import ActionItem, OwnerBasis, TasksResult
from mina.insights.stopwords import STOPWORDS
from mina.transcript import Segment, Word

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
            rf"(?i:can|could|would|will)\s+you\s+{_ACT}"
        ),
    ),
    (
        "name",
        0.8,
        re.compile(
            rf"^(?i:(?:hey|hi|ok|okay|so|and|also|then)[, ]+)?{_NAME},\s+"
            r"(?i:please)\s+(?P<action>.+)"
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
        "named",
        0.6,
        re.compile(
            rf"^(?i:(?:so|and|then|okay)[, ]+)?{_NAME}\s+"
            r"(?:will|is going to|'ll)\s+(?P<action>.+)"
        ),
    ),
    ("other", 0.55, re.compile(rf"\b(?:can|could|would|will)\s+you\s+{_ACT}", re.I)),
    # "please ..." after at most two short lead-ins: "Okay, no, please ..." and "May the,
    # please ..." are how a misheard name in address comes out
    (
        "other",
        0.55,
        re.compile(r"^(?:(?:[\w']+\s){0,2}[\w']+,\s+){0,2}please\s+(?P<action>.+)", re.I),
    ),
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
    r"please|take care of|need to|have to)\s+",
    re.I,
)
_NON_ACTION_PREFIXES = tuple(f"{p} " for p in lexicon.NON_ACTIONS)
_HEDGE = re.compile(r"\b(?:maybe|might|probably|perhaps|try to|if)\b", re.I)
_TERMINATED = re.compile(r"[.!?…][\"')\]]*\s*$")
_JOIN_GAP = 1.5  # seconds of pause across which an unfinished sentence still goes on
_ANY_DAY = dt.date(2000, 1, 3)  # to find a due phrase's words; the date itself is not used
_BASIS: dict[str, OwnerBasis] = {
    "self": "commitment",
    "name": "request",
    "other": "request",
    "named": "named",
    "team": "team",
}
# "could you send it by Friday, Omar?": the name addressed at the end
_TRAILING_NAME = re.compile(r",\s+(?P<name>[A-Z][a-z]+)\s*[?.!]?$")


@dataclass
class _Sentence:
    text: str
    speaker: str | None
    start: float
    index: int
    #: seconds per character of the segment it starts in, and that segment's end: a position
    #: in the text maps to a time when the transcript has no word times
    rate: float = 0.0
    end: float = 0.0
    words: list[Word] = field(default_factory=list)

    def time_at(self, offset: int) -> float:
        """The time of the word at `offset`: its own time when the transcript has word times
        (the nearest word with that spelling), else by its position in the segment's text."""
        guess = round(min(self.end, self.start + offset * self.rate), 2)
        token = textrules.words(self.text[offset:])[:1]
        if token and self.words:
            want = textrules.norm(token[0])
            same = [w for w in self.words if textrules.norm(w.text.strip()) == want]
            if same:
                return round(min(same, key=lambda w: abs(w.start - guess)).start, 2)
        return guess


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
                sentence = replace(
                    unfinished,
                    text=f"{unfinished.text} {text}",
                    index=i,
                    words=unfinished.words + list(seg.words or []),
                )
                unfinished = None
            else:
                sentence = _Sentence(
                    text,
                    seg.speaker,
                    seg.start + at * rate,
                    i,
                    rate,
                    seg.end,
                    list(seg.words or []),
                )
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
    if _vague(action):
        return None
    return action[0].upper() + action[1:]


def _vague(action: str) -> bool:
    """Not work anyone could do: it starts with no verb ("the budget ...", "ready by ..."), or
    nothing but a time and pronouns follows its verb ("work it this afternoon", "decide
    today")."""
    due = dates.find_due(action, _ANY_DAY)
    rest = action.replace(due[1], " ") if due else action
    tokens = [textrules.norm(w) for w in textrules.words(rest)]
    if not tokens or tokens[0] in lexicon.NOT_VERBS:
        return True
    objects = [t for t in tokens[1:] if t not in STOPWORDS and t not in lexicon.TIME_WORDS]
    return not objects


def _not_an_item(kind: str, sentence: str, before: str, action: str) -> bool:
    """Decisions, past events and questions are not action items: a question can only be a
    request ("can you ...?"); a reported decision ("we decided to ...", "we're going with")
    and anything said of the past ("I already ...", "... last week") are not work to do."""
    if kind not in {"name", "other"} and textrules.is_question(sentence):
        return True
    if kind != "name" and kind != "other" and textrules.DECISION.search(sentence):
        return True
    return bool(textrules.PAST.search(before) or textrules.PAST.search(action))


# "... the migration plan to May.": an unsure "to May" closing a sentence, with no day after
# it, is speech recognition's hearing of "today" (one letter apart); a sure one, or one after a
# verb of moving ("push it to May"), is the month
_TO_MAY = re.compile(r"\bto May(?=[.!?]*$)")
_MOVED = re.compile(r"\b(?:move|moved|push|pushed|postpone|delay|shift|reschedule|bump)\b", re.I)
_UNSURE = 0.8


def _heard_today(sentence: _Sentence) -> _Sentence:
    m = _TO_MAY.search(sentence.text)
    if m is None or _MOVED.search(sentence.text[: m.start()]):
        return sentence
    said = [w for w in sentence.words if textrules.norm(w.text.strip()) == "may"]
    if not said or said[-1].probability is None or said[-1].probability >= _UNSURE:
        return sentence
    return replace(sentence, text=f"{sentence.text[: m.start()]}today{sentence.text[m.end() :]}")


def _match(sentence: _Sentence) -> tuple[float, ActionItem] | None:
    for kind, base, pattern in _PATTERNS:
        m = pattern.search(sentence.text)
        if m is None:
            continue
        addressee: str | None = None
        if kind in {"name", "named"}:
            if not names_mod.is_name(m["name"].split()[0]):
                continue
            addressee = m["name"].split()[0]
        raw = m["action"]
        trailing = _TRAILING_NAME.search(raw) if kind == "other" else None
        if trailing is not None and names_mod.is_name(trailing["name"]):
            addressee = trailing["name"]
            raw = raw[: trailing.start()]
        if _not_an_item(kind, sentence.text, sentence.text[: m.start()], raw):
            return None
        action = _action(raw)
        if action is None:
            continue
        return base, ActionItem(
            text=action,
            owner="team" if kind == "team" else None,
            owner_basis=_BASIS[kind],
            addressee=addressee,
            due=None,
            source_time=sentence.time_at(m.start()),
            confidence=0.0,
        )
    return None


def _accepted(item: ActionItem) -> ActionItem:
    """A request someone accepted is surer."""
    if item.owner_basis == "request" and item.owner_speaker is not None:
        return item.model_copy(update={"confidence": round(min(0.95, item.confidence + 0.1), 2)})
    return item


def extract_tasks(segments: Sequence[Segment], meeting_date: dt.date) -> TasksResult:
    """Action items in `segments`, due dates resolved against `meeting_date`."""
    found: dict[str, ActionItem] = {}
    for sentence in map(_heard_today, _sentences(segments)):
        hit = _match(sentence)
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
    known = {
        n.speaker: n.name for n in names_mod.learn(segments) if n.confidence >= names_mod.SHOWN
    }
    items = owners.settle(items, segments, known)
    items = [_accepted(it) for it in items]
    log.debug("found %d action items in %d segments", len(items), len(segments))
    return TasksResult(items=items)
