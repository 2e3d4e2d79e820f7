"""Who owns an action item, decided on the diarized transcript (once, after diarization).

An item carries how it was said (`owner_basis`, set by the extraction):
- `commitment` ("I'll ...", "let me ..."): the speaker of the words at the item's time owns it;
- `request` ("Omar, can you ...?", "could you ..."), in this order:
  1. the other speaker who accepts it ("Sure", "will do", "I'll ...") in the next two turns
     within 30 s, unless that speaker goes by other names than the one addressed: its name
     learned or given, or one it gave as its own ("I'm Mayna", an introduction misheard as
     the address was) (diarization gave the answer to the wrong voice: the words win);
  2. the speaker known by the name addressed (`addressee`, through the names learned or
     given, spelled as heard: `names.same_name`), else the one voice that gave that name as
     its own;
  3. the name addressed, when someone here introduced themselves by it (a person whose voice
     is not known by that name);
  4. with two speakers, the one who did not ask: nobody asks themselves, so a name misheard
     past any spelling ("Mayna" for someone known as "Vayner") or a yes that diarization gave
     to the asker's voice still finds its owner; not when that voice itself speaks to the name
     ("Thanks, Bob."): then the one asked is someone else, perhaps not in the room;
  5. the other speaker whose turn comes right after the request, when it is a short answer
     (at most `_REPLY_WORDS` words, no question, no refusal: "Of course" heard as "and
     course" is still the addressee answering), unless known by another name than the one
     addressed;
  6. the name addressed when it is said at least twice (a name said once that nobody answers
     to may be a misheard word); else no owner.
  With three speakers or more, when the turn right after the request is a plain yes
  ("Sure.") in the asker's own voice, diarization merged asker and accepter: no later
  speaker is taken as the one who accepts or answers;
- `named` ("Omar will ..."): the speaker known by that name, else the name (said twice);
- `team` ("we need to ...", "let's ..."): "team", because the words say so.
A name only becomes an owner when it passes `names.is_name` (never a sentence word or a
misheard fragment such as "Name"). `owner_speaker` is the speaker's label; `owner` is what is
shown: the speaker's name when known, else the label.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from mina.insights import names as names_mod
from mina.insights.refine import clean_text
from mina.insights.schemas import ActionItem
from mina.transcript import Segment

_AFFIRM = re.compile(
    r"^(?:sure|yes|yeah|yep|yup|ok|okay|will do|absolutely|of course|no problem|on it|"
    r"happy to|definitely|sounds good|i can|i will|i'll|got it|consider it done|fine|"
    r"certainly|leave it with me|i'm on it|can do)\b",
    re.I,
)
_WINDOW = 30.0
_UNKNOWN = {None, "", "Unknown"}


def _pieces(segments: Sequence[Segment]) -> list[tuple[float, float, str | None, str]]:
    """(start, end, speaker, text) per speaker run inside each segment (words when known)."""
    out: list[tuple[float, float, str | None, str]] = []
    for seg in segments:
        if seg.words and any(w.speaker for w in seg.words):
            run: list[tuple[float, float, str | None, str]] = []
            for w in seg.words:
                who = w.speaker or seg.speaker
                if run and run[-1][2] == who:
                    s, _, _, t = run[-1]
                    run[-1] = (s, w.end, who, t + w.text)
                else:
                    run.append((w.start, w.end, who, w.text))
            out += [(s, e, who, t.strip()) for s, e, who, t in run]
        else:
            out.append((seg.start, seg.end, seg.speaker, seg.text))
    return out


def _at(pieces: list[tuple[float, float, str | None, str]], t: float) -> int | None:
    """Index of the piece spoken at `t` (the nearest within 1 s when none spans it)."""
    best, gap = None, 1.0
    for k, (start, end, _, _) in enumerate(pieces):
        if start - 0.05 <= t < end:
            return k
        d = min(abs(t - start), abs(t - end))
        if d < gap:
            best, gap = k, d
    return best


# answers nobody gives to their own request ("okay" and "fine" may just close one's own turn)
_ACCEPT = re.compile(
    r"^(?:sure|yes|yeah|yep|will do|absolutely|of course|no problem|on it|happy to|got it|"
    r"consider it done|i'm on it|can do)\b[\s\w,']{0,20}[.!]?$",
    re.I,
)


_REPLY_WORDS = 4  # a short answer right after a request is the addressee's
_REFUSE = re.compile(
    r"\b(?:no(?! problem)|not|can't|cannot|won't|don't|sorry|busy|maybe|later)\b|\?", re.I
)


def _accepter(
    pieces: list[tuple[float, float, str | None, str]], k: int
) -> tuple[str | None, str | None]:
    """(who accepts the request at piece k, who answers it right after): the first other
    speaker saying yes in the next two turns within _WINDOW; the first other speaker's turn
    after the request when it is a short answer, not a question or a refusal."""
    asker = pieces[k][2]
    turns = 0
    reply: str | None = None
    for n, (start, _, who, text) in enumerate(pieces[k + 1 :]):
        if start - pieces[k][1] > _WINDOW or turns == 2:
            return None, reply
        said = clean_text(text)[0]
        if n == 0 and who == asker and _ACCEPT.match(said):
            return None, None  # the asker's voice says yes: diarization merged asker and accepter
        if who in _UNKNOWN or who == asker:
            continue
        turns += 1
        if turns == 1 and len(said.split()) <= _REPLY_WORDS and not _REFUSE.search(said):
            reply = who
        if _AFFIRM.match(said):
            return who, reply
    return None, reply


class _Names:
    """What each voice is called: its name (learned or given) and the names said in it as its
    own ("I'm Mayna": a misheard introduction is still how that voice was heard)."""

    def __init__(
        self, known: Mapping[str, str], pieces: list[tuple[float, float, str | None, str]]
    ) -> None:
        self.known = known
        self.own: dict[str, set[str]] = defaultdict(set)
        for _, _, who, text in pieces:
            if who not in _UNKNOWN:
                self.own[str(who)].update(names_mod.introduced(text))
        self.introduced = {n for names in self.own.values() for n in names}

    def of(self, speaker: str) -> set[str]:
        return self.own.get(speaker, set()) | (
            {self.known[speaker]} if speaker in self.known else set()
        )

    def contradicted(self, speaker: str | None, name: str | None) -> bool:
        """True when `speaker` goes by names and `name`, the one addressed, is none of them:
        the voice that answered is not the one addressed (diarization gave it another's
        words)."""
        if speaker is None or name is None or not self.of(speaker):
            return False
        return not any(names_mod.same_name(n, name) for n in self.of(speaker))

    def find(self, name: str) -> str | None:
        """The speaker known by `name`, else the one voice that gave it as its own (and no
        other name: a voice in which two people introduced themselves is two people)."""
        found = names_mod.find(name, self.known)
        if found is not None:
            return found
        said = [s for s, own in self.own.items() if any(names_mod.same_name(n, name) for n in own)]
        if len(said) != 1:
            return None
        people = set(names_mod.spellings(sorted(self.own[said[0]])).values())
        return said[0] if len(people) == 1 else None  # a voice giving two names holds two


def _asked(
    item: ActionItem,
    pieces: list[tuple[float, float, str | None, str]],
    k: int | None,
    name: str | None,
    called: _Names,
    voices: set[str | None],
) -> tuple[str | None, str | None]:
    """(speaker, name) owning a request or a "named" item, in the order of the module's
    docstring, before the name said twice; (None, None) when none of them decides."""
    reply: str | None = None
    speaker: str | None = None
    if item.owner_basis == "request" and k is not None:
        speaker, reply = _accepter(pieces, k)
    if called.contradicted(speaker, name):
        speaker = None  # the words name someone else: the answer's speaker is wrong
    if speaker is None and name is not None:
        speaker = called.find(name)
    if speaker is not None:
        return speaker, None
    if name is not None and any(names_mod.same_name(name, p) for p in called.introduced):
        return None, name  # someone here said it is their name: a person, not a mishearing
    if item.owner_basis != "request" or k is None:
        return None, None
    asker = pieces[k][2]
    others = sorted(str(v) for v in voices - {asker}) if asker not in _UNKNOWN else []
    if len(voices) == 2 and len(others) == 1 and not _calls(pieces, others[0], name):
        return others[0], None  # two people talk: the one asked is the one who did not ask
    if not called.contradicted(reply, name) and not _calls(pieces, reply, name):
        return reply, None
    return None, None


def _calls(
    pieces: list[tuple[float, float, str | None, str]], voice: str | None, name: str | None
) -> bool:
    """True when `voice` itself speaks to `name` ("Thanks, Bob."): it is not that person, so
    the one asked is someone else, perhaps not in the room."""
    if voice is None or name is None:
        return False
    return any(
        names_mod.same_name(name, called)
        for _, _, who, text in pieces
        if who == voice
        for called in names_mod.addressed(text)
    )


def settle(
    items: Sequence[ActionItem], segments: Sequence[Segment], known: Mapping[str, str]
) -> list[ActionItem]:
    """`items` with `owner_speaker` and `owner` decided on `segments`; `known` maps speaker
    labels to names (learned or given)."""
    pieces = _pieces(segments)
    said_twice = names_mod.mentioned(segments)
    voices = {who for _, _, who, _ in pieces if who not in _UNKNOWN}
    called = _Names(known, pieces)
    out = []
    for item in items:
        speaker: str | None = None
        owner: str | None = None
        k = _at(pieces, item.source_time) if item.source_time is not None else None
        here = pieces[k][2] if k is not None else None
        basis = item.owner_basis
        if basis == "team":
            owner = "team"
        elif basis == "commitment":
            speaker = here if here not in _UNKNOWN else None
        elif basis in {"request", "named"}:
            name = item.addressee if item.addressee and names_mod.is_name(item.addressee) else None
            speaker, owner = _asked(item, pieces, k, name, called, voices)
            if speaker is None and owner is None and name is not None and name in said_twice:
                owner = name
            if speaker is not None and speaker == here and basis == "request":
                speaker, owner = None, name  # nobody asks themselves
        else:  # no basis: an item from elsewhere keeps its owner if it is a person
            person = bool(item.owner) and names_mod.is_name(item.owner or "")
            owner = item.owner if person or item.owner == "team" else None
        if speaker is not None:
            owner = known.get(speaker, speaker)
        out.append(item.model_copy(update={"owner": owner, "owner_speaker": speaker}))
    return out
