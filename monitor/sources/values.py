"""Normalising the loose values procurement APIs return (pure functions).

Real SAM.gov, OCDS and TED responses write "no value" as ``null``, ``""``, ``"null"`` or
``"NONE"``, amounts as strings (``"5000000.00"``, ``"$1,200"``), and dates with or without
a time or an offset (``2026-02-02``, ``2026-03-02T16:00:00-05:00``, ``2016-11-23+01:00``).
Everything here turns them into the typed ``Item.fields`` values of the working agreement:
str / float / bool / None, ISO 8601 dates and UTC datetimes, money as
``{"amount": <number>, "currency": "<ISO 4217>"}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

_EMPTY = frozenset({"", "null"})
_AMOUNT_JUNK = re.compile(r"[\s,$€£]")
_DATE_WITH_OFFSET = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:?\d{2})$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def text(value: Any) -> str | None:
    """A whitespace-collapsed string, or None for null, "" and "null" (any case)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        return None
    cleaned = " ".join(value.split())
    return None if cleaned.casefold() in _EMPTY else cleaned


def amount(value: Any) -> float | None:
    """A number from a number or a string such as ``"5000000.00"`` or ``"$1,200"``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:  # json.loads reads NaN, Infinity and integers too large for a float
            number = float(value)
        except OverflowError:
            return None
    else:
        raw = text(value)
        if raw is None:
            return None
        try:
            number = float(_AMOUNT_JUNK.sub("", raw))
        except ValueError:
            return None
    return number if number == number and abs(number) != float("inf") else None  # no NaN/inf


def money(value: Any, currency: Any) -> dict[str, Any] | None:
    """``{"amount", "currency"}`` or None when the amount is missing or not a number."""
    number = amount(value)
    if number is None:
        return None
    code = (text(currency) or "").upper()
    return {"amount": number, "currency": code if _CURRENCY.match(code) else None}


def flag(value: Any) -> bool | None:
    """``"Yes"``/``"No"``/``true``/``false`` as a bool; anything else None."""
    if isinstance(value, bool):
        return value
    word = (text(value) or "").casefold()
    if word in ("yes", "y", "true", "1"):
        return True
    if word in ("no", "n", "false", "0"):
        return False
    return None


def when(value: Any) -> str | None:
    """An ISO 8601 date (``2026-05-23``) or UTC datetime (``2026-05-23T10:00:00+00:00``).

    A date stays a date (an offset on a bare date, as TED writes ``2016-11-23+01:00``,
    is dropped: the day is what the publisher meant); a datetime is converted to UTC, a
    naive one is taken as UTC. Unreadable text gives None rather than a wrong date.
    """
    raw = text(value)
    if raw is None:
        return None
    if m := _DATE_WITH_OFFSET.match(raw):
        raw = m.group(1)
    try:
        if len(raw) == 10 or (len(raw) == 8 and raw.isdigit()):
            return date.fromisoformat(raw).isoformat()
        moment = datetime.fromisoformat(raw.replace(" ", "T", 1))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):  # year 1 or 9999 shifted out of range by the offset
        return None


def as_datetime(iso: str | None) -> datetime | None:
    """The aware datetime of a :func:`when` value (a date is midnight UTC)."""
    if iso is None:
        return None
    if len(iso) == 10:
        return datetime.fromisoformat(iso).replace(tzinfo=UTC)
    return datetime.fromisoformat(iso)


def texts(values: Any) -> list[str]:
    """A list of distinct non-empty strings, from a list or a single value."""
    items = values if isinstance(values, list | tuple) else [values]
    found = (text(v) for v in items)
    return list(dict.fromkeys(v for v in found if v is not None))


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (a null or a stray list)."""
    return value if isinstance(value, dict) else {}


def dig(record: Any, *path: str) -> Any:
    """``record[a][b]...``, or None as soon as a step is missing or not a mapping."""
    current = record
    for step in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(step)
    return current


def pick_language(values: Any, preferred: Sequence[str]) -> Any:
    """From a map keyed by language, the first of ``preferred`` present, else any.

    Keys are compared case-insensitively (TED writes ``eng`` in one place, ``ENG`` in
    another); a value that is not a map is returned as it is.
    """
    if not isinstance(values, Mapping):
        return values
    lowered = {str(k).casefold(): v for k, v in values.items()}
    for language in preferred:
        if language.casefold() in lowered:
            return lowered[language.casefold()]
    return next(iter(values.values()), None)
