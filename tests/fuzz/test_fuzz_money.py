"""Fuzzing extract_amounts and parse_number: amounts in every shape, and noise."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.matching import money
from monitor.matching.money import extract_amounts, parse_number
from tests.fuzz.strategies import SEPARATORS, money_text


@given(money_text)
@example("€" + "9" * 400)
@example("EUR " + "9" * 309 + " billion")
def test_amounts_are_finite_and_inside_the_text(text: str) -> None:
    amounts = extract_amounts(text)
    for amount in amounts:
        assert math.isfinite(amount.value)
        assert 0 <= amount.start < amount.end <= len(text)
        assert text[amount.start : amount.end] == amount.text
        assert len(amount.currency) == 3
    assert [a.start for a in amounts] == sorted(a.start for a in amounts)


@given(money_text)
@example("٣ million euro, 1\u00a0000 EUR and 12.03.2024 5 EUR")
@example("EUR5 5EUR 5 5 EUR x5 EUR")
def test_amounts_after_a_number_are_those_of_the_pattern_tried_everywhere(text: str) -> None:
    """_after tries _AFTER only where a number starts; it finds the very matches that
    trying it at every character finds."""
    spans = [m.span() for m in money._after(text, money._number_starts(text))]
    assert spans == [m.span() for m in money._AFTER.finditer(text)]


@given(st.text(alphabet="0123456789" + "".join(SEPARATORS), max_size=400), st.booleans())
@example("9" * 400, False)
def test_parse_number_is_finite_or_none(raw: str, scaled: bool) -> None:
    value = parse_number(raw, scaled=scaled)
    assert value is None or math.isfinite(value)


def test_a_number_too_large_for_a_float_is_no_amount() -> None:
    """Found by the fuzzer: 400 digits parsed as inf, an amount no rule can compare."""
    assert parse_number("9" * 400) is None
    assert extract_amounts("€" + "9" * 400) == []
    assert extract_amounts("EUR " + "9" * 300 + " billion") == []
    assert [a.value for a in extract_amounts("€30.5 million")] == [30.5e6]


@given(st.one_of(money_text, st.text(max_size=300)))
@example("US$ -1,5 million, CHF 1'200'000 and EUR-5")
def test_currency_first_amounts_are_found_as_a_scan_of_every_position_finds_them(
    text: str,
) -> None:
    """Only the places just before a number are tried; the matches must be the same."""
    found = [(m.span(), m.groupdict()) for m in money._before(text, money._number_starts(text))]
    assert found == [(m.span(), m.groupdict()) for m in money._BEFORE.finditer(text)]
