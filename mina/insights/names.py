"""People's names from the conversation, mapped to speaker labels with a confidence.

Evidence, per (speaker, name), from the diarized transcript:
- a self-introduction ("I'm Dana", "my name is Dana", "this is Dana", "Dana here") belongs to
  the speaker who says it (weight 2);
- a name in address ("Omar, can you ...", "Thanks, Priya", "Could you ..., Omar?", "Good
  morning, Bob") belongs to the next other speaker (weight 1); a thank-you also points back to
  the previous other speaker (weight 0.5): people thank whoever just spoke;
- a speaker never addresses themselves: a name that speaker says in address counts against
  them.
Spellings of one name as speech recognition hears it ("Sophia", "Sofia"; `same_name`) pool
their evidence under the most frequent one.
A name is a capitalized word that is not a sentence word (`lexicon.NOT_NAMES`), a number word,
a weekday or a month. Names and speakers are then paired one to one, strongest first. A pair's
confidence is its share of the evidence for that name, scaled by how much evidence there is (one
address: 0.5; an introduction or two addresses: 1.0). Names at or above `SHOWN` replace the
speaker's label wherever results are shown (`mina.results`); a name given through the API always
does.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from mina.insights import lexicon
from mina.insights import text as textrules
from mina.transcript import Segment

#: confidence from which a learned name is shown instead of the speaker's label
SHOWN = 0.5
_ANSWER_WINDOW = 30.0  # seconds within which the next speaker is the one addressed

_NAME = r"([A-Z][a-z]+(?:-[A-Z][a-z]+)?)"
_INTRO = [
    re.compile(
        rf"\b(?:[Ii]'m|I am|[Mm]y name is|[Tt]his is|[Ii]t's)\s+{_NAME}\b(?!\s+[a-z]+ing\b)"
    ),
    re.compile(rf"(?:^|[,.!?]\s+|(?:[Hh]i|[Hh]ello|[Hh]ey),?\s+){_NAME}\s+here\b"),
]
_GREETING = (
    r"(?:[Tt]hanks|[Tt]hank you|[Gg]ood (?:morning|afternoon|evening)|[Mm]orning|[Hh]i|[Hh]ello"
    r"|[Hh]ey|[Ww]elcome|[Cc]heers)"
)
_THANKS = re.compile(rf"\b(?:[Tt]hanks|[Tt]hank you|[Cc]heers),?\s+{_NAME}\b")
_ADDRESS = [
    re.compile(rf"(?:^|[.!?]\s+|(?:[Oo]kay|[Ss]o|[Aa]nd|[Aa]lso|[Tt]hen|[Ww]ell),?\s+){_NAME},"),
    re.compile(rf"\b{_GREETING},?\s+{_NAME}\b"),
    re.compile(rf",\s+{_NAME}\s*[?.!]"),
]
_NOT = (
    lexicon.NOT_NAMES
    | lexicon.NUMBER_WORDS
    | {w.capitalize() for w in lexicon.PROPER}
    | {
        "March",
        "May",
        "Everyone",
        "All",
        "Team",
        "Guys",
        "Here",
    }
    | {w.capitalize() for w in textrules.FILLER_WORDS}
)


@dataclass(frozen=True)
class Learned:
    speaker: str
    name: str
    confidence: float


def sound(name: str) -> str:
    """A spelling-blind key of a name: "Sophia" and "Sofia", "Thomas" and "Tomas", "Jon" and
    "John" share it."""
    key = name.lower()
    for a, b in (("ph", "f"), ("th", "t"), ("ck", "k"), ("y", "i"), ("z", "s"), ("w", "v")):
        key = key.replace(a, b)
    key = re.sub(r"c(?=[aou]|$)", "k", key)
    key = re.sub(r"(.)\1+", r"\1", key)
    key = re.sub(r"(?<=[aeiou])h|h(?=$)", "", key)
    return key


def same_name(a: str, b: str) -> bool:
    """Whether `a` and `b` are one name as speech recognition may spell it: the same key, or
    keys of four letters or more one edit apart with the same first letter ("Kanji", "Kenji")."""
    ka, kb = sound(a), sound(b)
    if ka == kb:
        return True
    return min(len(ka), len(kb)) >= 4 and ka[0] == kb[0] and Levenshtein.distance(ka, kb) <= 1


def find(name: str, known: Mapping[str, str]) -> str | None:
    """The speaker label in `known` (label -> name) whose name is `name`: spelled the same
    first, else as heard (`same_name`), when only one speaker's name is that close."""
    exact = [label for label, known_name in known.items() if known_name == name]
    if exact:
        return exact[0]
    close = [label for label, known_name in known.items() if same_name(known_name, name)]
    return close[0] if len(close) == 1 else None


def is_name(word: str) -> bool:
    return bool(re.fullmatch(_NAME, word)) and word not in _NOT


def introduced(text: str) -> list[str]:
    """Names the speaker of `text` gives as their own."""
    return [m[1] for p in _INTRO for m in p.finditer(text) if is_name(m[1])]


def addressed(text: str) -> list[str]:
    """Names `text` speaks to."""
    found = [m[1] for p in _ADDRESS for m in p.finditer(text) if is_name(m[1])]
    return list(dict.fromkeys(found))


def _turns(segments: Sequence[Segment]) -> list[tuple[str, float, str]]:
    """(speaker, start, text) per speaker run, words' speakers first when they are known."""
    out: list[tuple[str, float, str]] = []
    for seg in segments:
        pieces: list[tuple[str | None, float, str]] = []
        if seg.words and all(w.speaker for w in seg.words):
            for w in seg.words:
                if pieces and pieces[-1][0] == w.speaker:
                    who, at, text = pieces[-1]
                    pieces[-1] = (who, at, text + w.text)
                else:
                    pieces.append((w.speaker, w.start, w.text))
        else:
            pieces.append((seg.speaker, seg.start, seg.text))
        for who, at, text in pieces:
            if not who or who == "Unknown":
                continue
            if out and out[-1][0] == who:
                out[-1] = (who, out[-1][1], f"{out[-1][2]} {text.strip()}")
            else:
                out.append((who, at, text.strip()))
    return out


def _neighbour(turns: list[tuple[str, float, str]], k: int, step: int) -> str | None:
    speaker, at, _ = turns[k]
    j = k + step
    while 0 <= j < len(turns):
        other, other_at, _ = turns[j]
        if abs(other_at - at) > _ANSWER_WINDOW:
            return None
        if other != speaker:
            return other
        j += step
    return None


def spellings(found: Sequence[str], own: Set[str] = frozenset()) -> dict[str, str]:
    """Each name in `found` -> the spelling it is learned under: the most frequent of the names
    that are one as heard (`same_name`: an introduction heard as "Sophia" and an address as
    "Sofia" are one person's evidence). Two names people gave as their own (`own`) stay two
    people ("Dana" and "Dina" both introduced)."""
    counts = Counter(found)
    out: dict[str, str] = {}
    for name, _ in counts.most_common():
        if name not in out:
            out[name] = name
            for other in counts:
                if other in out or (name in own and other in own):
                    continue
                if same_name(name, other):
                    out[other] = name
    return out


def learn(segments: Sequence[Segment]) -> list[Learned]:
    """Speaker → name pairs found in `segments`, one name per speaker at most."""
    turns = _turns(segments)
    score: dict[tuple[str, str], float] = defaultdict(float)
    against: dict[tuple[str, str], float] = defaultdict(float)
    own = {n for _, _, text in turns for n in introduced(text)}
    spelled = spellings([n for _, _, t in turns for n in introduced(t) + addressed(t)], own)
    for k, (speaker, _, text) in enumerate(turns):
        for name in introduced(text):
            score[(speaker, spelled[name])] += 2.0
        thanked = {spelled.get(m[1], m[1]) for m in _THANKS.finditer(text)}
        for name in dict.fromkeys(spelled[n] for n in addressed(text)):
            against[(speaker, name)] += 1.0
            after = _neighbour(turns, k, 1)
            before = _neighbour(turns, k, -1)
            if after:
                score[(after, name)] += 1.0
            if name in thanked and before:
                score[(before, name)] += 0.5
    for key, value in against.items():
        if key in score:
            score[key] = max(0.0, score[key] - value)
    per_name: dict[str, float] = defaultdict(float)
    for (_, name), value in score.items():
        per_name[name] += value
    out: list[Learned] = []
    taken_speakers: set[str] = set()
    taken_names: set[str] = set()
    for (speaker, name), value in sorted(score.items(), key=lambda kv: -kv[1]):
        if value <= 0 or speaker in taken_speakers or name in taken_names:
            continue
        share = value / per_name[name]
        confidence = round(share * min(1.0, value / 2.0), 2)
        out.append(Learned(speaker, name, confidence))
        taken_speakers.add(speaker)
        taken_names.add(name)
    return sorted(out, key=lambda learned: learned.speaker)


@dataclass(frozen=True)
class Introduction:
    """Someone saying who they are: the name, and where the voice saying it is (seconds)."""

    start: float
    end: float
    name: str


INTRO_BEFORE = 1.0  # seconds of the voice before an introduced name ("Hi everyone, I'm ...")
_POINTING = re.compile(r"(?:[Tt]his is|[Ii]t's)\s")
_CLAUSE_END = re.compile(r"\s*(?:[.,!?]|$)")


def _own_names(text: str) -> list[str]:
    """`introduced`, where "this is X" and "it's X" count only when the name ends its clause
    ("Hello, this is Omar.", not "this is Acme's offer" or "it's Berlin after all")."""
    out = []
    for pattern in _INTRO:
        for m in pattern.finditer(text):
            if not is_name(m[1]):
                continue
            if _POINTING.match(m[0]) and not _CLAUSE_END.match(text, m.end(1)):
                continue
            out.append(m[1])
    return out


def introductions(segments: Sequence[Segment]) -> list[Introduction]:
    """Every self-introduction in `segments` (`_own_names`: "this is X" only when X ends its
    clause), names spelled as the most frequent spelling of the ones heard alike ("Sofia",
    "Sophia"); the span is the name's word and the second before it when words are known,
    else the segment. Diarization takes the people as a floor on the voices
    (`diarize_features`)."""
    found: list[Introduction] = []
    for seg in segments:
        for name in _own_names(seg.text):
            start, end = seg.start, seg.end
            for word in seg.words or []:
                if word.text.strip(" ,.!?") == name:
                    start = max(seg.start, word.start - INTRO_BEFORE)
                    end = min(seg.end, word.end + 0.3)
                    break
            found.append(Introduction(start, end, name))
    spelled = spellings([i.name for i in found])
    return [Introduction(i.start, i.end, spelled[i.name]) for i in found]


def introduced_people(segments: Sequence[Segment]) -> int:
    """How many people introduce themselves in `segments`: distinct names given as one's
    own, spellings of one name as heard counted once."""
    return len({i.name for i in introductions(segments)})


def mentioned(segments: Sequence[Segment]) -> set[str]:
    """Names said at least twice (any spelling of the same `sound`): a name said once that
    nobody answers to may be a misheard word ("Name, can you ...")."""
    counts: dict[str, int] = defaultdict(int)
    spellings: dict[str, set[str]] = defaultdict(set)
    for seg in segments:
        for word in re.findall(_NAME, seg.text):
            if is_name(word):
                counts[sound(word)] += 1
                spellings[sound(word)].add(word)
    return {name for key, n in counts.items() if n >= 2 for name in spellings[key]}
