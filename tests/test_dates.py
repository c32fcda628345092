"""The multilingual date parser, table-tested: every format the regulators print."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.dates import parse_date


def day(year: int, month: int, dom: int) -> datetime:
    return datetime(year, month, dom, tzinfo=UTC)


CASES = [
    # (text, language, expected)
    ("20 octobre 2022", "fr", day(2022, 10, 20)),
    ("1er mars 2023", "fr", day(2023, 3, 1)),
    ("Publié le mardi 14 février 2023", "fr", day(2023, 2, 14)),
    ("5 févr. 2024", "fr", day(2024, 2, 5)),
    ("28 août 2021", "fr", day(2021, 8, 28)),
    ("3 september 2024", "nl", day(2024, 9, 3)),
    ("Nieuwsbericht | 12 mrt 2024", "nl", day(2024, 3, 12)),
    ("17 mei 2022", "nl", day(2022, 5, 17)),
    ("10 febbraio 2022", "it", day(2022, 2, 10)),
    ("1º giugno 2023", "it", day(2023, 6, 1)),
    ("23 May 2022", "en", day(2022, 5, 23)),
    ("January 16, 2025", "en-US", day(2025, 1, 16)),
    ("Thursday, Jan. 16th 2025", "en-US", day(2025, 1, 16)),
    ("16th January 2025", "en-GB", day(2025, 1, 16)),
    ("3. März 2024", "de", day(2024, 3, 3)),
    ("12. Dezember 2023", "de", day(2023, 12, 12)),
    ("5 de marzo de 2024", "es", day(2024, 3, 5)),
    ("1 de septiembre del 2022", "es", day(2022, 9, 1)),
    ("16-jan-2025", None, day(2025, 1, 16)),
    # numeric, by language convention
    ("16/01/2025", "fr", day(2025, 1, 16)),
    ("16/01/2025", "en-US", day(2025, 1, 16)),  # only day-first is valid
    ("01/02/2025", "en-US", day(2025, 1, 2)),
    ("01/02/2025", "en_us", day(2025, 1, 2)),
    ("01/02/2025", "en-GB", day(2025, 2, 1)),
    ("01/02/2025", "it", day(2025, 2, 1)),
    ("01/02/2025", None, day(2025, 2, 1)),
    ("16.01.2025", "de", day(2025, 1, 16)),
    ("16-01-25", "nl", day(2025, 1, 16)),
    # ISO
    ("2025-01-16", None, day(2025, 1, 16)),
    ("2025/01/16", "en-US", day(2025, 1, 16)),
    ("2025-01-16T10:30:00Z", None, datetime(2025, 1, 16, 10, 30, tzinfo=UTC)),
    ("2025-01-16T10:30:00+01:00", None, datetime(2025, 1, 16, 9, 30, tzinfo=UTC)),
    ("2025-01-16 23:30-05:00", None, datetime(2025, 1, 17, 4, 30, tzinfo=UTC)),
    ("2025-01-16T10:30", None, datetime(2025, 1, 16, 10, 30, tzinfo=UTC)),
    # the first date in the text, whatever its format
    ("16/01/2025 - decision of 3 December 2024", "en-GB", day(2025, 1, 16)),
    ("Published 3 December 2024, updated 2025-01-16", "en-GB", day(2024, 12, 3)),
    ("Provvedimento del 10 febbraio 2022 - doc. web n. 9751362 del 2022-03-09", "it",
     day(2022, 2, 10)),
    # a time after a named-month date is kept (RFC 822 style and the way pages print it)
    ("Mon, 23 May 2022 09:00:00 GMT", None, datetime(2022, 5, 23, 9, 0, tzinfo=UTC)),
    ("Mon, 23 May 2022 09:00:00 +0200", None, datetime(2022, 5, 23, 7, 0, tzinfo=UTC)),
    ("16 January 2025 10:30", "en-GB", datetime(2025, 1, 16, 10, 30, tzinfo=UTC)),
    ("20 octobre 2022 à 14h15", "fr", datetime(2022, 10, 20, 14, 15, tzinfo=UTC)),
    ("January 16, 2025 at 4:05 PM", "en-US", datetime(2025, 1, 16, 16, 5, tzinfo=UTC)),
    ("January 16, 2025 4:05 p.m.", "en-US", datetime(2025, 1, 16, 16, 5, tzinfo=UTC)),
    ("January 16, 2025, 12:30 a.m.", "en-US", datetime(2025, 1, 16, 0, 30, tzinfo=UTC)),
    ("16 January 2025 - 12 actions", "en-GB", day(2025, 1, 16)),  # not a time
]  # fmt: skip

NO_DATE = [
    ("", "en"),
    (None, "fr"),
    ("Press release", "en"),
    ("16 stycznia 2025", "pl"),  # a language without a month table
    ("October 2022", "en"),  # no day
    ("yesterday", "en"),
    ("31 février 2023", "fr"),  # not a real day
    ("2025-13-45", None),
    ("99/99/2025", "fr"),
    ("Page 12 of 2025 results", "en"),
]


@pytest.mark.parametrize(("text", "language", "expected"), CASES)
def test_parses(text: str, language: str | None, expected: datetime) -> None:
    assert parse_date(text, language) == expected


@pytest.mark.parametrize(("text", "language"), NO_DATE)
def test_no_date_is_none(text: str | None, language: str | None) -> None:
    assert parse_date(text, language) is None


def test_result_is_aware_utc() -> None:
    found = parse_date("20 octobre 2022", "fr")
    assert found is not None and found.tzinfo is UTC
