"""The normalisers every procurement source uses for SAM.gov's, OCDS's and TED's loose values."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.sources import values as v


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, None), ("", None), ("null", None), ("NULL", None), ("  ", None),
     ("  A  B ", "A B"), ("NONE", "NONE"), (12, "12"), (True, None), ({"a": 1}, None)],
)  # fmt: skip
def test_text(raw: Any, expected: str | None) -> None:
    assert v.text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5000000.00", 5000000.0), ("800620", 800620.0), ("$1,234.50", 1234.5), (3036.96, 3036.96),
     (95000, 95000.0), ("", None), ("null", None), ("n/a", None), ("NaN", None), (True, None),
     (float("nan"), None), (float("inf"), None), (10**400, None)],  # json.loads reads all three
)  # fmt: skip
def test_amount(raw: Any, expected: float | None) -> None:
    assert v.amount(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-02-02", "2026-02-02"),
        ("2026-03-02T16:00:00-05:00", "2026-03-02T21:00:00+00:00"),
        ("2025-03-11T09:00:00Z", "2025-03-11T09:00:00+00:00"),
        ("2026-03-02 16:00:00", "2026-03-02T16:00:00+00:00"),  # naive: taken as UTC
        ("2016-11-23+01:00", "2016-11-23"),  # TED: a date with an offset stays that date
        ("2019-12-27T16:30:00.000-05:00", "2019-12-27T21:30:00+00:00"),
        ("null", None),
        ("", None),
        ("next Tuesday", None),
        ("2026-02-30", None),
        ("20260202", "2026-02-02"),  # a compact date is still a date, not a midnight
        ("0001-01-01T00:00:00+05:00", None),  # out of range in UTC: no value, no crash
        ("9999-12-31T23:00:00-05:00", None),
    ],
)
def test_when(raw: str, expected: str | None) -> None:
    assert v.when(raw) == expected


def test_flag_money_and_languages() -> None:
    assert (v.flag("Yes"), v.flag("No"), v.flag("maybe"), v.flag(None)) == (True, False, None, None)
    assert v.money("1200000", "eur") == {"amount": 1200000.0, "currency": "EUR"}
    assert v.money("12", "euros") == {"amount": 12.0, "currency": None}
    assert v.money(None, "EUR") is None
    titles = {"eng": "English", "SPA": "Español"}
    assert v.pick_language(titles, ("spa", "eng")) == "Español"
    assert v.pick_language(titles, ("deu",)) == "English"
    assert v.pick_language("plain", ("eng",)) == "plain"
    assert v.texts(["a", "", "null", "a", None, "b"]) == ["a", "b"]
