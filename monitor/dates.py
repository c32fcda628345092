"""Dates as regulators print them, in their own language: a pure, table-driven parser.

:func:`parse_date` reads the first date in a piece of text and returns it as an aware
UTC datetime, or None when it finds none; it never raises and never reads the clock.

What it understands (case and accents do not matter):

- ISO 8601: ``2025-01-16``, ``2025-01-16T10:30:00Z``, ``2025-01-16 10:30+01:00``
  (an offset is honoured; a time without one is taken as UTC), and ``2025/01/16``.
- Day, month name, year: ``20 octobre 2022``, ``1er mars 2023``, ``3 september 2024``,
  ``10 febbraio 2022``, ``23 May 2022``, ``3. März 2024``, ``5 de marzo de 2024``,
  ``16th Jan 2025``, ``Mardi 20 oct. 2022`` (a weekday before it is skipped).
- Month name, day, year: ``January 16, 2025``, ``Jan. 16th 2025``.
- Numeric: ``16/01/2025``, ``16.01.2025``, ``16-01-25``, read by the language's
  convention: month first for ``en-US``, day first for every other language (and when
  no language is known). A value only the other order makes valid (``01/16/2025`` on an
  en-GB page) is read in that order rather than dropped.

Month names come from English, French, Dutch, Italian, German and Spanish, full and
abbreviated; the names do not collide between these languages, so one table serves
them all and a French page quoting an English date still parses. A date in another
language, a relative date ("yesterday") or a month without a day gives None, so the
item is kept without a date rather than dated wrongly. A date-only value is midnight UTC.

The first date in the text wins, whatever its format. A time printed right after a
named-month date is kept (``Mon, 23 May 2022 09:00:00 GMT``, ``20 octobre 2022 à 14h15``,
``January 16, 2025 at 4:05 PM``); without a zone it is taken as UTC, as ISO's is.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone

_MONTH_NAMES: dict[int, tuple[str, ...]] = {
    1: ("january", "jan", "janvier", "janv", "januari", "gennaio", "gen", "januar", "janner",
        "enero", "ene"),
    2: ("february", "feb", "fevrier", "fevr", "fev", "februari", "febbraio", "februar",
        "febrero"),
    3: ("march", "mar", "mars", "maart", "mrt", "marzo", "marz", "maerz", "mrz"),
    4: ("april", "apr", "avril", "avr", "aprile", "abril", "abr"),
    5: ("may", "mai", "mei", "maggio", "mag", "mayo"),
    6: ("june", "jun", "juin", "juni", "giugno", "giu", "junio"),
    7: ("july", "jul", "juillet", "juil", "juli", "luglio", "lug", "julio"),
    8: ("august", "aug", "aout", "augustus", "agosto", "ago"),
    9: ("september", "sep", "sept", "septembre", "settembre", "set", "septiembre",
        "setiembre"),
    10: ("october", "oct", "octobre", "oktober", "okt", "ottobre", "ott", "octubre"),
    11: ("november", "nov", "novembre", "noviembre"),
    12: ("december", "dec", "decembre", "dicembre", "dic", "dezember", "dez", "diciembre"),
}  # fmt: skip
MONTHS: dict[str, int] = {name: n for n, names in _MONTH_NAMES.items() for name in names}
MONTH_FIRST_LANGUAGES = frozenset({"en-us"})

_ISO = re.compile(
    r"\b(\d{4})-(\d{2})-(\d{2})"
    r"(?:[t ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*(z|[+-]\d{2}(?::?\d{2})?)?)?"
)
_YEAR_FIRST = re.compile(r"\b(\d{4})[/.](\d{1,2})[/.](\d{1,2})\b")
_ORDINAL = r"(?:er|re|e|st|nd|rd|th|o|º|°)?"
_DAY_MONTH_YEAR = re.compile(
    rf"\b(\d{{1,2}}){_ORDINAL}\.?\s*(?:de\s+|-)?([a-z]+)\.?,?\s*(?:de\s+|del\s+|-)?(\d{{4}})\b"
)
_MONTH_DAY_YEAR = re.compile(rf"\b([a-z]+)\.?\s+(\d{{1,2}}){_ORDINAL},?\s+(\d{{4}})\b")
_NUMERIC = re.compile(r"\b(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})\b")
# A time right after a named-month date: "09:00:00 GMT", "a 14h15", "at 4:05 pm", "om 10.30".
_TIME = re.compile(
    r",?\s*(?:-\s*|a\s+|at\s+|om\s+|alle\s+|ore\s+|um\s+|a las\s+)?"
    r"(\d{1,2})(?:[:h]|\.(?=\d{2}\b))(\d{2})(?::(\d{2}))?(?!\d)\s*(?:([ap])\.?m\b\.?)?"
    r"\s*(gmt|utc|z|[+-]\d{2}:?\d{2})?"
)
Found = tuple[int, datetime]  # where in the text a date starts, and the date


def parse_date(text: str | None, language: str | None = None) -> datetime | None:
    """The first date in ``text`` as an aware UTC datetime; None if there is none.

    ``language`` (``fr``, ``en-US``, ``nl-NL``...) only decides the order of a
    numeric day and month; month names are recognised in every supported language.
    """
    if not text:
        return None
    folded = _fold(text)
    month_first = _month_first(language)
    found = [
        _iso(folded),
        _year_first(folded),
        _day_month_year(folded),
        _month_day_year(folded),
        _numeric(folded, month_first=month_first),
    ]
    dated = [f for f in found if f is not None]
    # The earliest in the text wins ("16/01/2025 - decision of 3 December 2024").
    return min(dated, key=lambda f: f[0])[1] if dated else None


def _fold(text: str) -> str:
    """Lowercase, accents off (``février`` -> ``fevrier``, ``März`` -> ``marz``)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _month_first(language: str | None) -> bool:
    return (language or "").strip().replace("_", "-").lower() in MONTH_FIRST_LANGUAGES


def _iso(text: str) -> Found | None:
    for m in _ISO.finditer(text):
        year, month, day, hour, minute, second, zone = m.groups()
        moment = _date(int(year), int(month), int(day))
        if moment is None:
            continue
        if hour is None:
            return m.start(), moment
        try:
            local = moment.replace(hour=int(hour), minute=int(minute), second=int(second or 0))
        except ValueError:
            return m.start(), moment
        return m.start(), _in_utc(moment, local, zone)
    return None


def _in_utc(moment: datetime, local: datetime, zone: str | None) -> datetime:
    """``local`` (a UTC-tagged wall time) read in ``zone``; no zone is UTC. An offset no
    clock has (``+99``, ``+23:99``) makes the time unreliable: the date alone is kept."""
    if not zone:
        return local.astimezone(UTC)
    offset = _zone(zone)
    if offset is None:
        return moment
    return local.replace(tzinfo=offset).astimezone(UTC)


def _zone(text: str) -> timezone | None:
    """The zone ``text`` names; None for an offset of 24 h or more, or minutes past 59."""
    if text in ("z", "gmt", "utc"):
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        return None
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _year_first(text: str) -> Found | None:
    for m in _YEAR_FIRST.finditer(text):
        if found := _date(int(m.group(1)), int(m.group(2)), int(m.group(3))):
            return m.start(), found
    return None


def _day_month_year(text: str) -> Found | None:
    return _named_month(_DAY_MONTH_YEAR, text, day=1, month=2)


def _month_day_year(text: str) -> Found | None:
    return _named_month(_MONTH_DAY_YEAR, text, day=2, month=1)


def _named_month(pattern: re.Pattern[str], text: str, *, day: int, month: int) -> Found | None:
    """The first match of ``pattern`` whose month group is a month name and that is a real
    day, with the time of day printed right after it, if any."""
    for m in pattern.finditer(text):
        number = MONTHS.get(m.group(month))
        if number and (found := _date(int(m.group(3)), number, int(m.group(day)))):
            return m.start(), _with_time(found, text[m.end() :])
    return None


def _with_time(moment: datetime, rest: str) -> datetime:
    """``moment`` at the time ``rest`` starts with (``09:00:00 GMT``, ``a 14h15``,
    ``at 4:05 pm``); a time without a zone is taken as UTC, like ISO's."""
    m = _TIME.match(rest)
    if m is None:
        return moment
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if m.group(4) == "p" and hour < 12:
        hour += 12
    elif m.group(4) == "a" and hour == 12:
        hour = 0
    try:
        local = moment.replace(hour=hour, minute=minute, second=second)
    except ValueError:
        return moment
    return _in_utc(moment, local, m.group(5))


def _numeric(text: str, *, month_first: bool) -> Found | None:
    for m in _NUMERIC.finditer(text):
        first, second, year = int(m.group(1)), int(m.group(3)), int(m.group(4))
        if len(m.group(4)) == 2:
            year += 2000 if year < 70 else 1900
        day, month = (second, first) if month_first else (first, second)
        found = _date(year, month, day) or _date(year, day, month)
        if found:
            return m.start(), found
    return None


def _date(year: int, month: int, day: int) -> datetime | None:
    if not 1900 <= year <= 2200:
        return None
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


__all__ = ["MONTHS", "parse_date"]
