"""Comparing typed item values with a ``Compare`` leaf (numbers, money, dates).

Item field values follow the typing of ``Item.fields``: numbers are int/float,
money is ``{"amount": n, "currency": "EUR"}``, dates are ISO 8601 strings in UTC
(``2026-05-23`` or ``2026-05-23T10:00:00+00:00``), ``published`` is a datetime.
A date without a time is the whole of that (UTC) day: against a relative value
(``30d``, ``now``) it compares with the day of now + offset.
A value of another type never matches: ``award_amount>=1e6`` is false for an item
whose ``award_amount`` is missing, None, a word or a malformed date.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from monitor.matching.nodes import Compare

__all__ = ["OPERATORS", "compare_value", "describe_value", "parse_date"]

OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}


def parse_date(text: str) -> datetime | date | None:
    """An ISO date (a ``date``) or datetime (aware, UTC; naive means UTC), else None."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        parsed = parse_date(value)
        if isinstance(parsed, datetime):
            return parsed
        if isinstance(parsed, date):
            return datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    return None


def _as_number(value: Any, currency: str | None) -> float | None:
    """The number to compare: a plain number only when no currency is named."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if currency is None and math.isfinite(value) else None
    if isinstance(value, dict):
        amount, unit = value.get("amount"), value.get("currency")
        if currency is not None and (not isinstance(unit, str) or unit.upper() != currency):
            return None
        return _as_number(amount, None)
    return None


def compare_value(leaf: Compare, value: Any, now: datetime) -> bool:
    """Whether ``value OP leaf.value`` holds (see the module docstring for types)."""
    test = OPERATORS[leaf.op]
    if leaf.kind == "number":
        number = _as_number(value, leaf.currency)
        return number is not None and test(number, leaf.value)
    if leaf.kind == "relative" and isinstance(value, str) and len(value) == 10:
        # A date without a time is that whole day: a deadline due today has not passed
        # (response_deadline>=now) and a notice posted yesterday is within -1d.
        day = parse_date(value)
        target = (now + leaf.offset).astimezone(UTC).date()
        return isinstance(day, date) and bool(test(day, target))
    moment = _as_datetime(value)
    if moment is None:
        return False
    if leaf.kind == "relative":
        return bool(test(moment, now + leaf.offset))
    wanted = parse_date(str(leaf.value))
    if isinstance(wanted, datetime):
        return bool(test(moment, wanted))
    # A bare date compares calendar days: published<=2026-01-01 includes that day.
    return wanted is not None and bool(test(moment.date(), wanted))


def describe_value(value: Any) -> str:
    """A field value as the text of a Match record: ``2500000 USD``, ``2026-05-23``."""
    if isinstance(value, dict) and "amount" in value:
        shown = describe_value(value.get("amount"))
        return f"{shown} {value.get('currency') or ''}".strip()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))  # 1250000, not 1250000.0
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
