"""Rule-based transcript clean-up: the `local` language provider's refinement.

What it does to each segment's text (timings, speakers and the number of segments never change):
1. drops fillers (the rules in `mina.insights.text`), with the commas around them;
2. collapses immediate repeats of one to three words ("the the", "I think I think"), except
   the grammatical doubles "had had" and "that that";
3. fixes ASR spellings of I ("i", "i'm", "im", "ive", "Ill send" -> "I'll send") and capitalizes
   weekdays and months;
4. capitalizes sentence starts: the first segment, a new speaker, and any text after . ? !;
5. ends a segment with "?" (a question) or "." unless its last word leaves the sentence open
   ("and", "the", "to", ...), in which case the next segment continues it (its first word is
   left as written);
6. normalizes spaces (no space before punctuation, one space between words).
A segment that held nothing but fillers keeps its timing with empty text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mina.insights import lexicon
from mina.insights import text as textrules
from mina.insights.schemas import RefinementResult
from mina.transcript import Segment

_KEEP_DOUBLES = frozenset({"had", "that"})
_DANGLING = lexicon.DANGLING
_OPENERS = frozenset({"so", "well", "okay", "ok", "yes", "yeah", "no", "right", "now", "alright"})
_I_FORMS = {
    "i": "I",
    "i'm": "I'm",
    "i'll": "I'll",
    "i've": "I've",
    "i'd": "I'd",
    "im": "I'm",
    "ive": "I've",
}
_ILL_VERBS = lexicon.ILL_VERBS
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_TERMINAL = ".?!"


def _core(token: str) -> str:
    return textrules.norm(token)


def _drop_fillers(tokens: list[str]) -> list[str]:
    spans = textrules.filler_spans(tokens)
    if not spans:
        return tokens
    out: list[str] = []
    cursor = 0
    for start, end in spans:
        out.extend(tokens[cursor:start])
        last = tokens[end - 1]
        tail = last[len(last.rstrip(",.;:!?")) :]
        if tail and tail[0] in _TERMINAL and out and not out[-1].endswith(tuple(_TERMINAL)):
            out[-1] = out[-1].rstrip(",;:") + tail[0]
        elif (
            tail.startswith(",")
            and out
            and out[-1].endswith(",")
            and _core(out[-1]) not in _OPENERS  # "so, um, we" keeps "so,"
        ):
            out[-1] = out[-1][:-1]
        cursor = end
    out.extend(tokens[cursor:])
    return out


def _collapse_repeats(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for tok in tokens:
        out.append(tok)
        for n in (1, 2, 3):
            if len(out) < 2 * n:
                continue
            first = [_core(t) for t in out[-2 * n : -n]]
            second = [_core(t) for t in out[-n:]]
            if first != second or not all(first):
                continue
            if n == 1 and first[0] in _KEEP_DOUBLES:
                continue
            if re.search(r"[.!?]$", out[-n - 1]):
                continue  # "... done. Done." is two sentences, not a stutter
            del out[-2 * n : -n]
            break
    return out


def _fix_spellings(tokens: list[str]) -> list[str]:
    out = list(tokens)
    for i, tok in enumerate(out):
        core = tok.strip(',.;:!?"')
        lead = tok[: tok.find(core)] if core else ""
        tail = tok[len(lead) + len(core) :]
        key = core.lower().replace("\u2019", "'")
        nxt = _core(out[i + 1]) if i + 1 < len(out) else ""
        if key in _I_FORMS and (key not in {"im", "ive"} or core.islower()):
            out[i] = lead + _I_FORMS[key] + tail
        elif key in lexicon.PROPER:
            out[i] = lead + core.capitalize() + tail
        elif key == "ill" and not tail and (core == "Ill" or nxt in _ILL_VERBS):
            out[i] = lead + "I'll" + tail
    return out


def _capitalize_after_stops(tokens: list[str], start_of_sentence: bool) -> list[str]:
    out = list(tokens)
    capital = start_of_sentence
    for i, tok in enumerate(out):
        if capital:
            out[i] = _upper_first(tok)
        capital = tok.endswith(tuple(_TERMINAL))
    return out


def _upper_first(token: str) -> str:
    for i, ch in enumerate(token):
        if ch.isalpha():
            return token[:i] + ch.upper() + token[i + 1 :]
    return token


def clean_text(text: str, *, sentence_start: bool = True) -> tuple[str, bool]:
    """Cleaned `text` and whether it closes its sentence (ends with . ? !)."""
    tokens = text.split()
    tokens = _collapse_repeats(_drop_fillers(tokens))
    tokens = _fix_spellings(tokens)
    if not tokens:
        return "", sentence_start
    tokens = _capitalize_after_stops(tokens, sentence_start)
    tokens[-1] = tokens[-1].rstrip(",;:")
    last = tokens[-1]
    if last and not last.endswith(tuple(_TERMINAL)) and _core(last) not in _DANGLING:
        last_sentence = textrules.split_sentences(" ".join(tokens))[-1]
        tokens[-1] += "?" if textrules.is_question(last_sentence) else "."
    cleaned = _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(t for t in tokens if t))
    return cleaned, cleaned.endswith(tuple(_TERMINAL))


def refine(segments: Sequence[Segment]) -> RefinementResult:
    """Clean every segment's text; timings, speakers and count stay as they were."""
    out: list[Segment] = []
    closed = True
    previous_speaker: str | None = None
    for i, seg in enumerate(segments):
        new_speaker = i == 0 or seg.speaker != previous_speaker
        text, ends = clean_text(seg.text, sentence_start=closed or new_speaker)
        out.append(seg.model_copy(update={"text": text}))  # "" when it was only fillers
        closed = ends
        previous_speaker = seg.speaker
    return RefinementResult(segments=out)
