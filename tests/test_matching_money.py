"""Money in text: real-world spellings in six languages, and things that are not amounts."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.matching import money
from monitor.matching.money import extract_amounts, parse_number, with_amounts
from monitor.models import Item

# text -> (value, currency, the text reported) of each amount found, in order
AMOUNTS: list[tuple[str, list[tuple[float, str, str]]]] = [
    # English
    ("Clearview fined €30.5 million", [(30_500_000, "EUR", "€30.5 million")]),
    ("contract of $224,000 awarded", [(224_000, "USD", "$224,000")]),
    ("a USD 1.2bn programme", [(1_200_000_000, "USD", "USD 1.2bn")]),
    ("fined £7.5m by the ICO", [(7_500_000, "GBP", "£7.5m")]),
    ("worth $1.2B over five years", [(1_200_000_000, "USD", "$1.2B")]),
    ("a €5bn fund", [(5_000_000_000, "EUR", "€5bn")]),
    ("USD 3,450,000.50 in total", [(3_450_000.5, "USD", "USD 3,450,000.50")]),
    ("ceiling of US$ 3.4 million", [(3_400_000, "USD", "US$ 3.4 million")]),
    ("100 dollars per licence", [(100, "USD", "100 dollars")]),
    ("GBP 250,000 framework", [(250_000, "GBP", "GBP 250,000")]),
    ("£12 billion plan", [(12_000_000_000, "GBP", "£12 billion")]),
    ("estimated at 2.5 million pounds", [(2_500_000, "GBP", "2.5 million pounds")]),
    ("a $750k pilot", [(750_000, "USD", "$750k")]),
    ("A$2.1m grant", [(2_100_000, "AUD", "A$2.1m")]),
    # French
    ("une amende de 5,2 millions d'euros", [(5_200_000, "EUR", "5,2 millions d'euros")]),
    ("sanction de 20 millions €", [(20_000_000, "EUR", "20 millions €")]),
    ("amende de 20 000 000 EUR", [(20_000_000, "EUR", "20 000 000 EUR")]),
    ("un marché de 1,5 Md€", [(1_500_000_000, "EUR", "1,5 Md€")]),
    ("budget de 500 k€", [(500_000, "EUR", "500 k€")]),
    ("pour 3 milliards d’euros", [(3_000_000_000, "EUR", "3 milliards d’euros")]),
    ("montant : 150 000 €", [(150_000, "EUR", "150 000 €")]),
    ("valeur de 5 M€", [(5_000_000, "EUR", "5 M€")]),
    # Dutch
    ("boete van 30,5 miljoen euro", [(30_500_000, "EUR", "30,5 miljoen euro")]),
    ("een boete van € 750.000", [(750_000, "EUR", "€ 750.000")]),
    ("ruim 2 miljard euro", [(2_000_000_000, "EUR", "2 miljard euro")]),
    ("opdracht van 1,5 mln euro", [(1_500_000, "EUR", "1,5 mln euro")]),
    ("kosten: EUR 20.000.000", [(20_000_000, "EUR", "EUR 20.000.000")]),
    # German
    ("Bußgeld von 1,5 Mio. Euro", [(1_500_000, "EUR", "1,5 Mio. Euro")]),
    ("ein Auftrag über 25 Millionen Euro", [(25_000_000, "EUR", "25 Millionen Euro")]),
    ("rund 1,2 Milliarden Euro", [(1_200_000_000, "EUR", "1,2 Milliarden Euro")]),
    ("Budget: 2 Mrd. EUR", [(2_000_000_000, "EUR", "2 Mrd. EUR")]),
    ("CHF 1'200'000 für die Stadt", [(1_200_000, "CHF", "CHF 1'200'000")]),
    ("Wert 1.234.567,89 EUR netto", [(1_234_567.89, "EUR", "1.234.567,89 EUR")]),
    # Italian
    ("sanzione di 2 milioni di euro", [(2_000_000, "EUR", "2 milioni di euro")]),
    ("multa da 20 milioni di euro", [(20_000_000, "EUR", "20 milioni di euro")]),
    ("appalto da 3,5 miliardi di euro", [(3_500_000_000, "EUR", "3,5 miliardi di euro")]),
    ("importo: € 1.500.000,00", [(1_500_000, "EUR", "€ 1.500.000,00")]),
    # Spanish
    ("multa de 3 millones de euros", [(3_000_000, "EUR", "3 millones de euros")]),
    ("por 3 mil millones de dólares", [(3_000_000_000, "USD", "3 mil millones de dólares")]),
    ("licitación de 45.000 euros", [(45_000, "EUR", "45.000 euros")]),
    ("un contrato de 1,2 millones €", [(1_200_000, "EUR", "1,2 millones €")]),
    # two in one text
    (
        "from €2m to €3.5m",
        [(2_000_000, "EUR", "€2m"), (3_500_000, "EUR", "€3.5m")],
    ),
    # ranges: both ends, the scale and currency of the range applying to each
    ("fines of €1–2 million", [(1e6, "EUR", "€1–2 million"), (2e6, "EUR", "€1–2 million")]),
    ("worth €1-2 million", [(1e6, "EUR", "€1-2 million"), (2e6, "EUR", "€1-2 million")]),
    (
        "1-2 millions d'euros",
        [(1e6, "EUR", "1-2 millions d'euros"), (2e6, "EUR", "1-2 millions d'euros")],
    ),
    (
        "10 – 20 miljoen euro",
        [(1e7, "EUR", "10 – 20 miljoen euro"), (2e7, "EUR", "10 – 20 miljoen euro")],
    ),
    ("a $100-200k pilot", [(1e5, "USD", "$100-200k"), (2e5, "USD", "$100-200k")]),
    ("from €10-€20", [(10, "EUR", "€10"), (20, "EUR", "€20")]),
    ("budget 2019-2020 EUR 5 million", [(5e6, "EUR", "EUR 5 million")]),
    ("the 2019-2020 EUR accounts", []),  # years, not a range of amounts
    # negative amounts
    ("a loss of -€500", [(-500, "EUR", "-€500")]),
    ("net result −€5 million", [(-5e6, "EUR", "−€5 million")]),
    ("balance EUR -1,000", [(-1000, "EUR", "EUR -1,000")]),
    ("result: -5 million EUR", [(-5e6, "EUR", "-5 million EUR")]),
    # not amounts
    ("EUR 6.302-1", []),
    ("EUR 2025-01-01", []),
    ("FAR 6.302-1 justification", []),
    ("Article 6.302-1 EUR", []),
    ("deadline 12.03.2024 EUR", []),
    ("published 2026-01-01", []),
    ("Regulation (EU) 2016/679", []),
    ("EUR-Lex 32016R0679", []),
    ("an increase of 5,2 %", []),
    ("2 million people affected", []),
    ("ISO 27001 certification", []),
    ("lot 3, page 20", []),
    ("in the 1990s the euro", []),
    ("Euro 2024 tickets", []),
]


@pytest.mark.parametrize(("text", "expected"), AMOUNTS)
def test_amounts(text: str, expected: list[tuple[float, str, str]]) -> None:
    found = extract_amounts(text)
    assert [(a.value, a.currency, a.text) for a in found] == [
        (pytest.approx(v), c, t) for v, c, t in expected
    ]
    for amount in found:
        assert text[amount.start : amount.end] == amount.text


def test_the_table_is_large_enough() -> None:
    assert len(AMOUNTS) >= 40


NUMBERS = [
    ("224,000", False, 224_000),
    ("1,250", True, 1.25),
    ("30.5", False, 30.5),
    ("20.000.000", False, 20_000_000),
    ("1.234.567,89", False, 1_234_567.89),
    ("1,234,567.89", False, 1_234_567.89),
    ("20 000", False, 20_000),
    ("1'000", False, 1000),
    ("7", False, 7),
]


@pytest.mark.parametrize(("raw", "scaled", "value"), NUMBERS)
def test_parse_number(raw: str, scaled: bool, value: float) -> None:
    assert parse_number(raw, scaled=scaled) == pytest.approx(value)


def test_with_amounts_adds_the_field_the_pipeline_stores() -> None:
    item = Item("s", "rss", "k", "h", title="Fine of €30.5 million", summary_html="<p>$224,000</p>")
    assert with_amounts(item).fields["amounts"] == [
        {"amount": 30_500_000, "currency": "EUR", "text": "€30.5 million", "field": "title"},
        {"amount": 224_000, "currency": "USD", "text": "$224,000", "field": "summary"},
    ]
    plain = Item("s", "rss", "k", "h", title="FAR 6.302-1")
    assert with_amounts(plain) is plain
    own = Item("s", "rss", "k", "h", title="€5", fields={"amounts": []})
    assert with_amounts(own) is own


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet="0123456789-\u2013\u2014\u2212 \u00a0.,a\u0663\u00b2", max_size=40),
        st.text(max_size=60),
    )
)
@example(text="2019\u20132020 and 7 - 9, \u0661\u0662-3")
def test_the_shared_scans_find_what_each_stage_scanned_for(text: str) -> None:
    """The number starts and dashes extract_amounts computes once are what the stages
    found scanning for themselves: a digit after a non-digit; a dash between digits,
    none in a text without a dash character."""
    assert money._number_starts(text) == [m.start() for m in re.finditer(r"(?<!\d)\d", text)]
    dashes = [m.span() for m in re.finditer(money._DASHED.pattern, text)]
    assert money._has_dash(text) or not dashes
