"""Word, sentence, filler and question rules shared by analytics and the local language provider.

Fillers. Single words always count: um, umm, uh, uhh, uhm, er, erm, ah, hmm, mm, mhm.
Phrases count only where they are used as fillers:
- "you know", except after do/did/don't/didn't/if/as/would/will/could/should/to/what
  ("do you know", "if you know") and before "what/how/why/where/who/when/that/the"
  ("you know the plan");
- "I mean", except after what/if ("what I mean") and before "it/that/this" ("I mean it");
- "sort of" / "kind of", except after a determiner ("a kind of", "what sort of").
"like" is not counted: it is too often a verb or a preposition to call it a filler.

Questions. A sentence is a question when it ends with "?", or, when it carries no terminal
punctuation at all (typical of unpunctuated ASR output), when it starts with a wh-word or an
auxiliary verb ("what", "how", "can", "do", "is", ...).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

RIGHT_QUOTE = "\u2019"
WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['\u2019][A-Za-z]+)*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+")

FILLER_WORDS = frozenset({"um", "umm", "uh", "uhh", "uhm", "er", "erm", "ah", "hmm", "mm", "mhm"})
FILLER_PHRASES: tuple[tuple[str, str], ...] = (
    ("you", "know"),
    ("i", "mean"),
    ("sort", "of"),
    ("kind", "of"),
)
_PHRASE_NOT_AFTER = {
    ("you", "know"): frozenset(
        {
            "do",
            "did",
            "don't",
            "didn't",
            "if",
            "as",
            "would",
            "will",
            "could",
            "should",
            "to",
            "what",
            "let",
            "you",
        }
    ),
    ("i", "mean"): frozenset({"what", "if", "that's", "all"}),
    ("sort", "of"): frozenset(
        {
            "a",
            "the",
            "this",
            "that",
            "what",
            "which",
            "any",
            "some",
            "every",
            "no",
            "one",
            "same",
            "different",
            "these",
            "those",
            "that's",
            "what's",
            "right",
            "wrong",
        }
    ),
}
_PHRASE_NOT_AFTER[("kind", "of")] = _PHRASE_NOT_AFTER[("sort", "of")]
_PHRASE_NOT_BEFORE = {
    ("you", "know"): frozenset(
        {
            "what",
            "how",
            "why",
            "where",
            "who",
            "when",
            "that",
            "the",
            "about",
            "him",
            "her",
            "them",
            "it",
            "this",
            "if",
            "whether",
        }
    ),
    ("i", "mean"): frozenset({"it", "that", "this"}),
}

WH_WORDS = frozenset({"what", "when", "where", "who", "whom", "whose", "which", "why", "how"})
AUX_WORDS = frozenset(
    {
        "is",
        "are",
        "am",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "will",
        "would",
        "should",
        "shall",
        "may",
        "might",
        "must",
        "have",
        "has",
        "had",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "don't",
        "doesn't",
        "didn't",
        "can't",
        "couldn't",
        "won't",
        "wouldn't",
        "shouldn't",
        "haven't",
        "hasn't",
        "any",
        "anyone",
        "anybody",
        "anything",
    }
)
QUESTION_STARTERS = WH_WORDS | AUX_WORDS

# Words a complete sentence cannot end on.
_OPEN_ENDINGS = frozenset(
    """a an the and or but to of in on at for with from by as that which if because so than my
    your our their his her its""".split()  # noqa: SIM905
)

# Discourse markers where a long unpunctuated run is cut into sentences.
_BREAK_WORDS = frozenset({"okay", "ok", "so", "alright", "anyway", "now", "but", "also"})
_LONG_RUN = 35
_MIN_PIECE = 6


def words(text: str) -> list[str]:
    """Words of `text` as written (case kept), without punctuation."""
    return WORD_RE.findall(text)


def norm(word: str) -> str:
    return word.lower().replace(RIGHT_QUOTE, "'").strip('.,;:!?"()[]')


def filler_spans(raw_tokens: Sequence[str]) -> list[tuple[int, int]]:
    """Half-open [start, end) spans of fillers in whitespace-split `raw_tokens`.

    A comma right before or inside a phrase marks it as parenthetical, so the exceptions by
    neighbouring word do not apply ("we should, you know, ship it").
    """
    tokens = [norm(t) for t in raw_tokens]
    spans: list[tuple[int, int]] = []
    i = 0
    n = len(tokens)
    while i < n:
        if tokens[i] in FILLER_WORDS:
            spans.append((i, i + 1))
            i += 1
            continue
        width = 1
        pair = (tokens[i], tokens[i + 1]) if i + 1 < n else ("", "")
        if pair in FILLER_PHRASES:
            commas_before = i == 0 or raw_tokens[i - 1].endswith((",", ".", "?", "!", ";"))
            commas_after = raw_tokens[i + 1].endswith(",") or i + 2 == n
            before = "" if commas_before else tokens[i - 1]
            after = "" if commas_after else (tokens[i + 2] if i + 2 < n else "")
            if before not in _PHRASE_NOT_AFTER.get(pair, frozenset()) and after not in (
                _PHRASE_NOT_BEFORE.get(pair, frozenset())
            ):
                spans.append((i, i + 2))
                width = 2
        i += width
    return spans


def count_fillers(text: str) -> int:
    return len(filler_spans(text.split()))


def _split_long(sentence: str) -> list[str]:
    """Cut a long unpunctuated run before discourse markers (okay, so, but, ...)."""
    parts = sentence.split()
    if len(parts) <= _LONG_RUN or re.search(r"[.!?]", sentence[:-1]):
        return [sentence]
    pieces: list[list[str]] = [[]]
    for part in parts:
        current = pieces[-1]
        if norm(part) in _BREAK_WORDS and len(current) >= _MIN_PIECE:
            pieces.append([part])
        else:
            current.append(part)
    return [" ".join(p) for p in pieces if p]


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`; robust to missing punctuation (long runs are cut at markers)."""
    out: list[str] = []
    for chunk in _SENTENCE_END_RE.split(text.strip()):
        chunk = chunk.strip()
        if chunk:
            out.extend(_split_long(chunk))
    return out


def is_question(sentence: str) -> bool:
    s = sentence.strip()
    if not s:
        return False
    if s.endswith("?"):
        return True
    if s[-1] in ".!":
        return False
    toks = [norm(w) for w in words(s)]
    # Skip a leading filler or vocative-ish opener: "so what do we do", "okay can you".
    while toks and toks[0] in FILLER_WORDS | {"so", "okay", "ok", "and", "but", "well"}:
        toks = toks[1:]
    return bool(toks) and toks[0] in QUESTION_STARTERS


def count_questions(text: str) -> int:
    return sum(1 for s in split_sentences(text) if is_question(s))


def count_words(text: str) -> int:
    return len(words(text))


# A decision reported, not work to do: "we decided to ...", "we agreed that ...", "let's go with".
DECISION = re.compile(
    r"\b(?:we(?:'ve| have)? decided|(?:we|everyone|all)(?:'ve| have)? agreed|agreed (?:to|on|that)"
    r"|decision is|the decision|let'?s go with|we(?:'ll| will| are|'re)(?: going to)? go with"
    r"|we(?:'ll| will|'re going to| are going to) ship|will ship|go ahead with|settled on"
    r"|approved|final answer is|we(?:'re| are) going with)\b",
    re.I,
)
# Something that already happened: "yesterday", "last week", "already", "two days ago".
PAST = re.compile(
    r"\b(?:yesterday|last (?:week|month|year|night|time|friday|monday|tuesday|wednesday|"
    r"thursday|quarter)|already|ago|earlier today|this morning)\b",
    re.I,
)

_SUBJECTS = frozenset(
    """i you he she it we they there this that these those who what everyone everybody someone
    nobody people""".split()  # noqa: SIM905
)
_OBJECT_START = frozenset({"me", "him", "us", "them"})
_LONE_GARBLE = AUX_WORDS | {"i", "and", "but", "or", "the", "a", "an", "to", "of"}


def _has_verb(tokens: Sequence[str]) -> bool:
    return any(
        t in AUX_WORDS
        or t in _SUBJECTS
        or "'" in t
        or (len(t) > 4 and t.endswith(("ed", "es")))
        or t in {"let's", "need", "needs", "think", "want", "go", "goes", "know", "get", "got"}
        for t in tokens
    )


def complete(sentence: str) -> bool:
    """A sentence a reader can take as it is: it starts with a capital, ends with . ? or !,
    does not end on a word that leaves it open ("... and the."), is not a list of nouns (commas
    or "and" and no sign of a verb or a subject), and shows no sign of garbled speech
    recognition: an object pronoun first ("Me are the tests ready"), "I" before a capitalized
    word ("send the budget I Wednesday"), or a function word alone between commas ("..., may,
    can you")."""
    s = sentence.strip()
    if not s or not s[0].isupper() or s[-1] not in ".?!":
        return False
    raw = words(s)
    tokens = [norm(w) for w in raw]
    if len(tokens) < 3 or tokens[-1] in _OPEN_ENDINGS or tokens[0] in _OBJECT_START:
        return False
    if not _has_verb(tokens) and ("," in s or "and" in tokens):  # a list of nouns
        return False
    if any(a == "I" and b[0].isupper() and b != "I" for a, b in itertools.pairwise(raw)):
        return False
    pieces = [p.strip() for p in s.rstrip(".?!").split(",")]
    return not any(len(p.split()) == 1 and norm(p) in _LONE_GARBLE for p in pieces[1:])
