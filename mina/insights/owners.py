"""Who owns an action item, decided on the diarized transcript (once, after diarization).

An item carries how it was said (`owner_basis`, set by the extraction):
- `commitment` ("I'll ...", "let me ..."): the speaker of the words at the item's time owns it;
- `request` ("Omar, can you ...?", "could you ..."): the other speaker who accepts it ("Sure",
  "will do", "I'll ...") in the next two turns within 30 s owns it, unless that speaker is
  known by another name than the one addressed (diarization gave the answer to the wrong
  voice: the words win); else the speaker known by the name addressed (`addressee`, through
  the names learned or given, spelled as heard: `names.same_name`), else that name itself when
  it is said at least twice (a name said once that nobody answers to may be a misheard word);
  else no owner. When the turn right after the request is a plain yes ("Sure.") in the asker's
  own voice, diarization merged asker and accepter: no later speaker is taken as the accepter;

- `named` ("Omar will ..."): the speaker known by that name, else the name (said twice);
- `team` ("we need to ...", "let's ..."): "team", because the words say so.
A name only becomes an owner when it passes `names.is_name` (never a sentence word or a
misheard fragment such as "Name"). `owner_speaker` is the speaker's label; `owner` is what is
shown: the speaker's name when known, else the label.
"""

from __future__ import annotations

import re
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


def _accepter(pieces: list[tuple[float, float, str | None, str]], k: int) -> str | None:
    asker = pieces[k][2]
    turns = 0
    for n, (start, _, who, text) in enumerate(pieces[k + 1 :]):
        if start - pieces[k][1] > _WINDOW or turns == 2:
            return None
        if n == 0 and who == asker and _ACCEPT.match(clean_text(text)[0]):
            return None  # the asker's voice says yes: diarization merged asker and accepter
        if who in _UNKNOWN or who == asker:
            continue
        turns += 1
        if _AFFIRM.match(clean_text(text)[0]):
            return who
    return None


def settle(
    items: Sequence[ActionItem], segments: Sequence[Segment], known: Mapping[str, str]
) -> list[ActionItem]:
    """`items` with `owner_speaker` and `owner` decided on `segments`; `known` maps speaker
    labels to names (learned or given)."""
    pieces = _pieces(segments)
    said_twice = names_mod.mentioned(segments)
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
            if basis == "request" and k is not None:
                speaker = _accepter(pieces, k)
            name = item.addressee if item.addressee and names_mod.is_name(item.addressee) else None
            answered_as = known.get(speaker) if speaker is not None else None
            if answered_as and name and not names_mod.same_name(answered_as, name):
                speaker = None  # the words name someone else: the answer's speaker is wrong
            if speaker is None and name is not None:
                speaker = names_mod.find(name, known)
                owner = None if speaker or name not in said_twice else name
            if speaker is not None and speaker == here and basis == "request":
                speaker, owner = None, name  # nobody asks themselves
        else:  # no basis: an item from elsewhere keeps its owner if it is a person
            person = bool(item.owner) and names_mod.is_name(item.owner or "")
            owner = item.owner if person or item.owner == "team" else None
        if speaker is not None:
            owner = known.get(speaker, speaker)
        out.append(item.model_copy(update={"owner": owner, "owner_speaker": speaker}))
    return out
