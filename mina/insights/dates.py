"""Due dates in speech, resolved against the meeting's date.

Conventions (weeks run Monday to Sunday):
- "today", "tonight", "end of day", "EOD"      -> the meeting date
- "tomorrow" / "day after tomorrow"            -> +1 / +2 days
- "by/on/this/before Friday", "Friday"          -> the next Friday strictly after the meeting
  date (said on a Friday, "by Friday" means a week later)
- "next Friday"                                 -> Friday of next week
- "end of (the/this) week", "EOW"               -> the coming Friday (the meeting date if Friday)
- "end of next week" / "next week"              -> Friday / Monday of next week
- "end of (the/this) month" / "next month"      -> last day of the month / first of next month
- "in/within 3 days", "in two weeks"            -> +3 days / +14 days
- "March 3rd", "3rd of March", "on March 3"     -> that date in the meeting's year, or the next
  year when it is already past; ISO dates ("2026-12-01") as written.

Speech recognition misspells: a word ending in "day(s)" within one edit of a weekday (two for
the long ones: "Wensday", "Thirsday", "Tuseday", "Fridays") is that weekday, unless it is a word
of its own ("today", "someday", "holiday", "midday", ...); the unit after "in/within N" within
one edit of "day(s)"/"week(s)" ("within 3 Mays") is that unit, but "in two ways" is not.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

from rapidfuzz.distance import Levenshtein

WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): i for i, name in enumerate(calendar.month_abbr) if name})
MONTHS["sept"] = 9

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
NUMBERS = {w: i for i, w in enumerate(_UNITS)} | {"a": 1, "an": 1, "a couple of": 2}

_ORD_UNITS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
_ORD_TEENS = [
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
]
ORDINALS = {w: i + 1 for i, w in enumerate(_ORD_UNITS)}
ORDINALS.update({w: i + 10 for i, w in enumerate(_ORD_TEENS)})
ORDINALS["twentieth"] = 20
ORDINALS["thirtieth"] = 30
for _i, _w in enumerate(_ORD_UNITS):
    ORDINALS[f"twenty-{_w}"] = 21 + _i
    ORDINALS[f"twenty {_w}"] = 21 + _i
ORDINALS["thirty-first"] = ORDINALS["thirty first"] = 31

_WD = "|".join(WEEKDAYS)
_MON = "|".join(sorted(MONTHS, key=len, reverse=True))
_ORDW = "|".join(sorted(ORDINALS, key=len, reverse=True))
_DAY = rf"(\d{{1,2}})(?:st|nd|rd|th)?|({_ORDW})"
_NUM = r"\d+|" + "|".join(sorted(NUMBERS, key=len, reverse=True))

_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")),
    ("month_day", re.compile(rf"\b({_MON})\.?\s+(?:the\s+)?(?:{_DAY})\b")),
    ("day_month", re.compile(rf"\b(?:the\s+)?(?:{_DAY})\s+(?:of\s+)?({_MON})\b")),
    ("day_after_tomorrow", re.compile(r"\bday after tomorrow\b")),
    ("tomorrow", re.compile(r"\btomorrow\b")),
    ("today", re.compile(r"\b(?:today|tonight|end of (?:the )?day|eod|close of business)\b")),
    ("end_next_week", re.compile(r"\bend of next week\b")),
    ("end_week", re.compile(r"\b(?:end of (?:the |this )?week|eow)\b")),
    ("end_month", re.compile(r"\bend of (?:the |this )?month\b")),
    ("next_month", re.compile(r"\bnext month\b")),
    ("next_weekday", re.compile(r"\bnext ([a-z]+days?)\b")),
    ("weekday", re.compile(r"\b([a-z]+days?)\b")),
    ("next_week", re.compile(r"\bnext week\b")),
    ("in_days", re.compile(rf"\b(?:in|within) ({_NUM}) ([a-z]+)\b")),
]

# words ending in "day" that are words of their own, not a misheard weekday
_DAY_WORDS = frozenset(
    """today yesterday someday holiday holidays birthday birthdays midday weekday weekdays
    payday workday everyday doomsday heyday mayday noonday""".split()  # noqa: SIM905
)
_UNITS_HEARD = {"day": 1, "days": 1, "week": 7, "weeks": 7}
_NOT_UNITS = frozenset({"way", "ways", "say", "says"})


def weekday(word: str) -> int | None:
    """The weekday `word` names, allowing for a misspelling by speech recognition."""
    word = word.lower()
    if word in WEEKDAYS:
        return WEEKDAYS[word]
    if word in _DAY_WORDS or word.rstrip("s") in _DAY_WORDS:
        return None
    for name, number in WEEKDAYS.items():
        if Levenshtein.distance(word, name) <= (1 if len(name) <= 6 else 2):
            return number
    return None


def _unit_days(word: str) -> int | None:
    """Days in the unit `word` names ("day", "weeks", misheard "Mays"), else None."""
    if word in _UNITS_HEARD:
        return _UNITS_HEARD[word]
    if word in _NOT_UNITS:
        return None
    for unit, days in _UNITS_HEARD.items():
        if len(unit) > 3 and Levenshtein.distance(word, unit) <= 1:
            return days
    return None


def _after(meeting: dt.date, weekday: int) -> dt.date:
    ahead = (weekday - meeting.weekday()) % 7 or 7
    return meeting + dt.timedelta(days=ahead)


def _monday_next_week(meeting: dt.date) -> dt.date:
    return meeting + dt.timedelta(days=7 - meeting.weekday())


def _month_end(day: dt.date) -> dt.date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _calendar_day(meeting: dt.date, month: int, day: int) -> dt.date | None:
    for year in (meeting.year, meeting.year + 1):
        try:
            candidate = dt.date(year, month, day)
        except ValueError:
            return None
        if candidate >= meeting:
            return candidate
    return None


def _day_number(digits: str | None, word: str | None) -> int:
    return int(digits) if digits else ORDINALS[(word or "").replace("  ", " ")]


def _resolve(kind: str, m: re.Match[str], meeting: dt.date) -> dt.date | None:
    if kind == "iso":
        try:
            return dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
    if kind == "month_day":
        return _calendar_day(meeting, MONTHS[m[1]], _day_number(m[2], m[3]))
    if kind == "day_month":
        return _calendar_day(meeting, MONTHS[m[3]], _day_number(m[1], m[2]))
    if kind == "day_after_tomorrow":
        return meeting + dt.timedelta(days=2)
    if kind == "tomorrow":
        return meeting + dt.timedelta(days=1)
    if kind == "today":
        return meeting
    if kind == "end_next_week":
        return _monday_next_week(meeting) + dt.timedelta(days=4)
    if kind == "end_week":
        friday = meeting + dt.timedelta(days=(4 - meeting.weekday()) % 7)
        return friday
    if kind == "end_month":
        return _month_end(meeting)
    if kind == "next_month":
        return _month_end(meeting) + dt.timedelta(days=1)
    if kind == "next_weekday":
        day = weekday(m[1])
        return None if day is None else _monday_next_week(meeting) + dt.timedelta(days=day)
    if kind == "weekday":
        day = weekday(m[1])
        return None if day is None else _after(meeting, day)
    if kind == "next_week":
        return _monday_next_week(meeting)
    if kind == "in_days":
        count = int(m[1]) if m[1].isdigit() else NUMBERS[m[1]]
        unit = _unit_days(m[2])
        return None if unit is None else meeting + dt.timedelta(days=count * unit)
    return None


def find_due(text: str, meeting: dt.date) -> tuple[dt.date, str] | None:
    """The first due date mentioned in `text` and the phrase that named it."""
    lowered = text.lower().replace("\u2019", "'")
    best: tuple[int, dt.date, str] | None = None
    for kind, pattern in _RULES:
        for m in pattern.finditer(lowered):
            if kind == "weekday" and lowered[max(0, m.start() - 5) : m.start()].endswith("next "):
                continue
            resolved = _resolve(kind, m, meeting)
            if resolved is None:
                continue
            if best is None or m.start() < best[0]:
                best = (m.start(), resolved, text[m.start() : m.end()])
            break
    return None if best is None else (best[1], best[2])
