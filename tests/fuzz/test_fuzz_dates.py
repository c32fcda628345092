"""Fuzzing parse_date: dates built from every language's month names, with noise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.dates import parse_date
from tests.fuzz.strategies import LANGUAGES, date_text

language = st.one_of(st.sampled_from(LANGUAGES), st.text(max_size=10))


def check(text: str, lang: str | None) -> datetime | None:
    found = parse_date(text, lang)
    assert found is None or (found.tzinfo is not None and found.utcoffset() == timedelta(0))
    return found


@given(date_text, language)
@example("2025-01-16T10:30+99", None)
@example("20 octobre 2022 à 14h15 +99:00", "fr")
def test_parse_date_returns_an_aware_utc_datetime_or_none(text: str, lang: str | None) -> None:
    check(text, lang)


@given(st.text(max_size=300), language)
def test_parse_date_never_raises_on_any_text(text: str, lang: str | None) -> None:
    check(text, lang)


def test_an_offset_no_clock_has_is_no_date_rather_than_a_crash() -> None:
    """Found by the fuzzer: ``+99`` and ``+23:99`` are beyond timezone()'s +-24 h."""
    assert check("2025-01-16T10:30+99", None) == datetime(2025, 1, 16, tzinfo=UTC)
    assert check("3 May 2022 09:00 +23:99", "en") == datetime(2022, 5, 3, tzinfo=UTC)
    assert check("2025-01-16T10:30+02", None) == datetime(2025, 1, 16, 8, 30, tzinfo=UTC)
