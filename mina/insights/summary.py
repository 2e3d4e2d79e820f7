"""Extractive summary: the `local` language provider's summarization.

- Sentences come from the cleaned segments (fillers and stutters removed, long unpunctuated
  runs cut at discourse markers, a sentence cut at a speaker change or chunk boundary joined,
  openers such as "okay, so" dropped). Only sound sentences are shown (`text.complete`: not a
  fragment, not garbled), and none from a segment whose words Whisper was unsure of: a mean word
  probability under 0.5, or 0.15 below the meeting's median. Chatter (greetings, "can you hear
  me", "thanks", sentences of fewer than 4 words) and questions ("Nana, could you ...") never
  score as key points.
- Score = TF-IDF weight of the sentence's content words (term frequency over the transcript,
  inverse frequency over sentences), divided by the square root of its length, plus cue
  bonuses (decided, agreed, deadline, plan, risk, ...) and a small bonus for the first and last
  tenth of the meeting.
- key_points: the top sentences (3 to 8, ~1 per 8 sentences) in the order they were said,
  near-duplicates dropped; summary: the best 2-4 of them, in order, as one paragraph.
- decisions: sentences with a decision cue ("we decided", "we agreed", "let's go with",
  "we'll ship", "approved", ...).
- open_questions: questions of >= 4 words that no other speaker answers, where an answer is a
  statement, or a counter-suggestion ("how about ten?"), by another speaker among the next three
  sentences and within 60 s.
  Without speaker labels any later segment's statement counts as an answer.
- title: `title_hint` when given, else the top two or three keywords (recurring word pairs first;
  speakers, people addressed by name, weekdays and months are not keywords).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from mina.insights import lexicon
from mina.insights import text as textrules
from mina.insights.refine import clean_text
from mina.insights.schemas import SummaryResult
from mina.insights.stopwords import STOPWORDS
from mina.transcript import Segment

log = logging.getLogger(__name__)

_CUES = re.compile(
    r"\b(?:decid\w*|agree\w*|important|key|plan\w*|goal\w*|deadline|priorit\w*|budget|launch\w*|"
    r"risk\w*|problem|issue|next steps?|action|conclusion|summary|result\w*|need to|must|"
    r"will ship|release)\b",
    re.I,
)
_DECISION = textrules.DECISION
_CHATTER = re.compile(
    r"^(?:(?:can|could) (?:you|everyone|everybody) (?:hear|see)"
    r"|(?:good (?:morning|afternoon|evening)|hi|hello|hey|welcome|thanks for joining)\b"
    r"|(?:thanks|thank you|bye|sounds good|okay|ok|yeah|yes|no|right|sure|great|perfect)[.!?]?$)",
    re.I,
)
# A person addressed by name: "Bob, can you ...", "Thanks, Alice."
_VOCATIVE = re.compile(r"(?:^|,\s+)([A-Z][a-z]+)(?=[,.!?]|$)")
_MIN_PROBABILITY = 0.5
# a segment this far below the meeting's typical word probability was probably misheard
_BELOW_TYPICAL = 0.15
_LOW_WORD = 0.6  # a word heard this unsure ...
_LOW_SHARE = 0.15  # ... in this share of a segment's words (and two or more): misheard
_VOCATIVE_FIRST = re.compile(r"^[A-Z][a-z]+,\s+")  # "Nana, could you ..." asks too
_JOIN_GAP = 1.5
# Without speakers (the summary runs beside diarization, on the raw transcript) a pause this long
# may be a turn: "... with self-substantial fuel," + 0.8 s + "he might even ..." is two people.
# A cut at a chunk boundary or inside one breath leaves next to no gap.
_JOIN_GAP_UNKNOWN_SPEAKERS = 0.3
# A discourse opener is dropped from what is shown: "Okay, let's start ..." -> "Let's start ..."
_OPENER = re.compile(r"^(?:(?:okay|ok|so|well|right|alright|now|and|but|yeah|yes)[,.]?\s+)+", re.I)
_SUGGESTION = re.compile(r"^(?:how about|what about|why not|maybe|perhaps)\b", re.I)


@dataclass
class _Sentence:
    text: str
    speaker: str | None
    start: float
    segment: int
    terms: list[str]
    score: float = 0.0
    #: a complete sentence, not a fragment or a garbled line: only these are shown
    sound: bool = True


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "s", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def _terms(sentence: str) -> list[str]:
    out = []
    for word in textrules.words(sentence):
        w = textrules.norm(word)
        if len(w) > 2 and w not in STOPWORDS and not w.isdigit():
            out.append(_stem(w))
    return out


def _joined(segments: Sequence[Segment]) -> list[Segment]:
    """Segments with a sentence that goes on in the next one of the same speaker joined (a cut
    at a speaker change or a chunk boundary leaves "We" + "decided to ship ..."). Segments with
    no speaker are joined only across a pause too short to be a turn."""
    return [seg for seg, _ in _joined_misheard(segments)]


def _joined_misheard(segments: Sequence[Segment]) -> list[tuple[Segment, bool]]:
    """`_joined`, each with whether any segment in it was misheard (`_misheard_words`, judged
    on the segments as heard: a garbled half keeps its sentence out however long the other)."""
    out: list[tuple[Segment, bool]] = []
    for seg in segments:
        last, misheard = out[-1] if out else (None, False)
        unknown = last is not None and (last.speaker is None or seg.speaker is None)
        if (
            last is not None
            and last.speaker == seg.speaker
            and seg.start - last.end <= (_JOIN_GAP_UNKNOWN_SPEAKERS if unknown else _JOIN_GAP)
            and not last.text.rstrip().endswith((".", "?", "!"))
        ):
            words = (last.words or []) + (seg.words or []) if last.words or seg.words else None
            text = f"{last.text.rstrip()} {seg.text.strip()}"
            joined = last.model_copy(update={"text": text, "end": seg.end, "words": words})
            out[-1] = (joined, misheard or _misheard_words(seg))
        else:
            out.append((seg, _misheard_words(seg)))
    return out


def _sentences(segments: Sequence[Segment]) -> list[_Sentence]:
    out: list[_Sentence] = []
    joined = _joined_misheard(segments)
    seg_means = [_mean_probability(seg) for seg, _ in joined]
    means = [m for m in seg_means if m is not None]
    floor = max(_MIN_PROBABILITY, statistics.median(means) - _BELOW_TYPICAL) if means else 0.0
    for i, ((seg, misheard), mean) in enumerate(zip(joined, seg_means, strict=True)):
        cleaned, _ = clean_text(seg.text)
        unsure = (mean is not None and mean < floor) or misheard
        for piece in textrules.split_sentences(cleaned):
            sentence = _tidy(_OPENER.sub("", piece))
            sound = not unsure and textrules.complete(sentence)
            out.append(_Sentence(sentence, seg.speaker, seg.start, i, _terms(sentence), 0, sound))
    return out


def _asks(sentence: str) -> bool:
    """A question, with or without its question mark ("Are the tests ready.")."""
    words = [textrules.norm(w) for w in textrules.words(_VOCATIVE_FIRST.sub("", sentence))]
    return sentence.rstrip().endswith("?") or (
        bool(words) and words[0] in textrules.QUESTION_STARTERS
    )


def _tidy(piece: str) -> str:
    """A piece of a long unpunctuated run as a sentence: capitalized, with its full stop."""
    piece = piece.strip()
    if piece and piece[-1] not in ".?!":
        piece += "?" if textrules.is_question(piece) else "."
    return piece[:1].upper() + piece[1:]


def _word_probabilities(seg: Segment) -> list[float]:
    return [w.probability for w in seg.words or [] if w.probability is not None]


def _misheard_words(seg: Segment) -> bool:
    """Several of the segment's words heard unsure (probability under `_LOW_WORD`, at least two
    and `_LOW_SHARE` of them): "are not as ready for the new login page" (are 0.59, as 0.54)
    for "are the tests ready", though the segment's mean passes."""
    probs = _word_probabilities(seg)
    low = sum(p < _LOW_WORD for p in probs)
    return low >= 2 and low >= _LOW_SHARE * len(probs)


def _mean_probability(seg: Segment) -> float | None:
    """How sure Whisper was of the segment's words (their mean probability), if it said."""
    probs = _word_probabilities(seg)
    return sum(probs) / len(probs) if probs else None


def _score(sentences: list[_Sentence]) -> Counter[str]:
    tf: Counter[str] = Counter(t for s in sentences for t in s.terms)
    df: Counter[str] = Counter(t for s in sentences for t in set(s.terms))
    n = len(sentences)
    weight = Counter({t: math.log1p(tf[t]) * math.log(1 + n / df[t]) for t in tf})
    for k, s in enumerate(sentences):
        if (
            len(textrules.words(s.text)) < 4
            or _CHATTER.search(s.text)
            or not s.sound
            or _asks(s.text)  # questions go to open questions, not key points
        ):
            s.score = 0.0
            continue
        s.score = sum(weight[t] for t in set(s.terms)) / math.sqrt(1 + len(s.terms))
        s.score += 0.5 * len(_CUES.findall(s.text)) + (1.0 if _DECISION.search(s.text) else 0)
        if k < max(1, n // 10) or k >= n - max(1, n // 10):
            s.score += 0.3
    return weight


def _similar(a: _Sentence, b: _Sentence) -> bool:
    sa, sb = set(a.terms), set(b.terms)
    return bool(sa and sb) and len(sa & sb) / len(sa | sb) > 0.6


def _top(sentences: list[_Sentence], count: int) -> list[_Sentence]:
    picked: list[_Sentence] = []
    for s in sorted(sentences, key=lambda s: -s.score):
        if len(picked) == count or s.score <= 0:
            break
        if not any(_similar(s, p) for p in picked):
            picked.append(s)
    return sorted(picked, key=lambda s: (s.segment, s.start))


def _answered(sentences: list[_Sentence], k: int) -> bool:
    question = sentences[k]
    for later in sentences[k + 1 : k + 4]:
        if later.start - question.start > 60:
            break
        other = (
            later.speaker != question.speaker
            if question.speaker is not None and later.speaker is not None
            else later.segment != question.segment
        )
        if other and (not textrules.is_question(later.text) or _SUGGESTION.match(later.text)):
            return True
    return False


def _title(sentences: list[_Sentence], weight: Counter[str], hint: str | None) -> str:
    if hint and hint.strip():
        return hint.strip()
    names = {(s.speaker or "").lower() for s in sentences} | lexicon.PROPER
    names.update(m.lower() for s in sentences for m in _VOCATIVE.findall(s.text))
    pairs: Counter[str] = Counter()
    surface: dict[str, str] = {}
    for s in sentences:
        words = [textrules.norm(w) for w in textrules.words(s.text)]
        for a, b in itertools.pairwise(words):
            if a not in STOPWORDS and b not in STOPWORDS and len(a) > 2 and len(b) > 2:
                pairs[f"{_stem(a)} {_stem(b)}"] += 1
                surface.setdefault(f"{_stem(a)} {_stem(b)}", f"{a} {b}")
        for w in words:
            surface.setdefault(_stem(w), w)
    phrases = [surface[p] for p, c in pairs.most_common(2) if c >= 2]
    used = set(" ".join(phrases).split())
    for term, _ in weight.most_common():
        if len(phrases) >= 3:
            break
        word = surface.get(term, term)
        if word not in used and word not in names and not any(word in p for p in phrases):
            phrases.append(word)
            used.add(word)
    if not phrases:
        return "Meeting"
    title = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return title[0].upper() + title[1:]


def _fallback(sentences: list[_Sentence]) -> str:
    """The summary when no sentence scored: the longest sound one, else a plain statement."""
    sound = [s.text for s in sentences if s.sound]
    return max(sound, key=len) if sound else "Nothing that reads as a complete sentence was said."


def summarize(segments: Sequence[Segment], title_hint: str | None = None) -> SummaryResult:
    """Extractive summary of `segments`."""
    sentences = _sentences(segments)
    if not sentences:
        return SummaryResult(
            title=(title_hint or "").strip() or "Meeting",
            summary="No speech was transcribed.",
            key_points=[],
            decisions=[],
            open_questions=[],
        )
    weight = _score(sentences)
    key_count = min(8, max(3, round(len(sentences) / 8)))
    key_points = _top(sentences, key_count)
    summary = " ".join(s.text for s in _top(sentences, min(4, max(2, len(sentences) // 10))))
    decisions = list(
        dict.fromkeys(s.text for s in sentences if s.sound and _DECISION.search(s.text))
    )
    open_questions = list(
        dict.fromkeys(
            s.text
            for k, s in enumerate(sentences)
            if s.sound
            and textrules.is_question(s.text)
            and len(textrules.words(s.text)) >= 4
            and not _CHATTER.search(s.text)
            and not _answered(sentences, k)
        )
    )
    result = SummaryResult(
        title=_title(sentences, weight, title_hint),
        summary=summary or _fallback(sentences),
        key_points=[s.text for s in key_points],
        decisions=decisions,
        open_questions=open_questions,
    )
    log.debug("summary of %d sentences: %d key points", len(sentences), len(key_points))
    return result
