"""The v2 language on items: stems, NEAR, regexes, field scopes, comparisons, exclude."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.matching import Matcher, compile_rule
from monitor.models import Item, Match
from tests.conftest import FIXED_NOW

PROCUREMENT = frozenset(
    {
        "title",
        "summary",
        "content",
        "notice_type",
        "agency",
        "naics",
        "award_amount",
        "response_deadline",
        "posted",
        "cpv",
        "value",
        "active",
        "extra",
    }
)


def item(
    title: str = "",
    summary: str = "",
    *,
    language: str | None = None,
    published: datetime | None = None,
    **fields: Any,
) -> Item:
    return Item(
        source="s",
        source_type="rss",
        key="k",
        content_hash="h",
        title=title,
        summary_html=summary,
        language=language,
        published=published,
        fields=fields,
    )


def matches(query: str, entry: Item, *, exclude: str | None = None) -> list[Match]:
    rule = compile_rule("r", query, fields=PROCUREMENT, exclude=exclude)
    return Matcher([rule], clock=lambda: FIXED_NOW).match(entry)


def hit(query: str, entry: Item) -> bool:
    return bool(matches(query, entry))


# query, title, language, matches?
STEMS = [
    ("boete", "AP legt boetes op", "nl", True),
    ("boetes", "AP legt boete op", "nl", True),
    ("amende", "deux amendes pour Clearview", "fr", True),
    ("amendes", "une amende pour Clearview", "fr-FR", True),
    ("sanzione", "nuove sanzioni del Garante", "it", True),
    ("fine", "Clearview fined again", "en", True),
    ("fine", "two fines for Clearview", "en-GB", True),
    ("strafe", "hohe Strafen verhängt", "de", True),
    ("multa", "nuevas multas de la AEPD", "es", True),
    # near misses: never a different word
    ("fine", "Clearview defines its roadmap", "en", False),
    ("fine", "a refined model", "en", False),
    ("fine", "finance ministry", "en", False),
    ("fine", "the finest hour", "en", False),
    ("fine", "la fin du contrat", "fr", False),  # French stem of fine is "fin": too short
    ("fine", "les fins de contrat", "fr", False),
    ("award", "awkward award", "en", True),
    ("award", "an awkward moment", "en", False),
    ("boete", "boeteling", "nl", False),
    ("sanzione", "la sanità pubblica", "it", False),
    # one stem, different words: a long derivational ending is not an inflection
    ("amende", "un amendement au projet de loi", "fr", False),
    ("amendement", "deux amendes pour Clearview", "fr", False),
    ("amende", "amendements adoptés", "fr", False),
    ("sanction", "la CNIL peut sanctionner", "fr", True),
    ("requirement", "security requirements", "en", True),
    ("award", "awarding the contract", "en", True),
    ("university", "two universities", "en", True),
    ("aerztliche", "Ärztliche Versorgung", "de", True),  # the stem rewrites ae -> a
    # quoted: exact
    ('"fine"', "Clearview fined again", "en", False),
    ('"boete"', "AP legt boetes op", "nl", False),
    ('"fine"', "a fine day", "en", True),
]


@pytest.mark.parametrize(("query", "title", "language", "expected"), STEMS)
def test_stemming_by_item_language(query: str, title: str, language: str, expected: bool) -> None:
    assert hit(query, item(title, language=language)) is expected


# No language on the item: guessed from its short words, else English.
GUESSED = [
    ("amende", "La CNIL inflige des amendes à une société pour la collecte", True),
    ("boete", "De AP legt boetes op aan een bedrijf voor het verzamelen van", True),
    ("sanzione", "Il Garante ha inflitto sanzioni per la raccolta di dati che", True),
    ("fine", "Clearview fined", True),  # too short to guess: English
    ("fine", "les fins de la collecte et des données pour le contrôle", False),
]


@pytest.mark.parametrize(("query", "title", "expected"), GUESSED)
def test_stemming_without_language(query: str, title: str, expected: bool) -> None:
    assert hit(query, item(title)) is expected


NEAR = [
    ("clearview NEAR/4 fine", "Clearview was hit with a fine", True),  # 4 words between
    ("clearview NEAR/3 fine", "Clearview was hit with a fine", False),
    ("clearview NEAR/3 fine", "a fine was imposed on Clearview", True),  # either order
    ("clearview NEAR/0 ai", "Clearview AI", True),
    ('"intent to" NEAR/1 award', "intent to soon award", True),
    ("clearview NEAR/5 fine", "Clearview", False),
    ("fine NEAR/5 fine", "a fine", False),  # needs two occurrences
    ("fine NEAR/5 fine", "a fine and a fine", True),
    ("a NEAR/1 b NEAR/1 c", "a b c", True),
    ("a NEAR/1 b NEAR/1 c", "a b x x c", False),
]


@pytest.mark.parametrize(("query", "title", "expected"), NEAR)
def test_near(query: str, title: str, expected: bool) -> None:
    assert hit(query, item(title, language="en")) is expected


def test_near_needs_both_in_the_same_field() -> None:
    assert not hit("clearview NEAR/5 fine", item("Clearview", "a fine"))


def test_near_reports_both_sides_with_offsets() -> None:
    entry = item("Big news: Clearview gets a fine", language="en")
    records = matches("clearview NEAR/3 fine", entry)
    assert [(m.text, m.start) for m in records] == [("Clearview", 10), ("fine", 27)]


def test_regex_on_a_field_reports_original_text() -> None:
    entry = item("Clear View and CLEARVIEW", "clearview")
    records = matches("title:/clear ?view/", entry)
    assert [(m.field, m.text) for m in records] == [("title", "Clear View"), ("title", "CLEARVIEW")]


def test_pathological_regex_does_not_stall() -> None:
    # (a+)+$ takes exponential time in a backtracking engine on "aaa...ab";
    # RE2 is linear, so this returns at once even at 100,000 characters.
    entry = item("a" * 100_000 + "b")
    assert not hit("/(a+)+$/", entry)
    assert hit("/(a+)+b$/", entry)


FIELDS = [
    ('notice_type:"Special Notice"', {"notice_type": "Special Notice"}, True),
    ('notice_type:"Special Notice"', {"notice_type": "Sources Sought"}, False),
    ('agency:"homeland security"', {"agency": "Department of Homeland Security"}, True),
    ("naics:541511", {"naics": "541511"}, True),
    ("naics:541511", {"naics": 541511}, True),
    ("naics:541511", {"naics": "541512"}, False),
    ("cpv:72000000", {"cpv": ["48000000", "72000000"]}, True),
    ("award_amount>=1000000", {"award_amount": 2_500_000}, True),
    ("award_amount>=1000000", {"award_amount": 999_999.99}, False),
    ("award_amount>=1e6", {"award_amount": {"amount": 1_000_000, "currency": "USD"}}, True),
    ("award_amount>=1e6 USD", {"award_amount": {"amount": 2e6, "currency": "USD"}}, True),
    ("award_amount>=1e6 EUR", {"award_amount": {"amount": 2e6, "currency": "USD"}}, False),
    ("value<500000", {"value": {"amount": 100_000, "currency": "EUR"}}, True),
    ("award_amount>=1000000", {}, False),  # a field the item lacks never matches
    ("award_amount>=1000000", {"award_amount": None}, False),
    ("award_amount>=1000000", {"award_amount": "lots"}, False),
    ("naics:541511", {}, False),
    ("posted>=2026-01-01", {"posted": "2026-03-01"}, True),
    ("posted>=2026-01-01", {"posted": "2025-12-31T23:59:00+00:00"}, False),
    ("posted<=2026-01-01", {"posted": "2026-01-01T18:00:00+00:00"}, True),  # whole day
    ("posted=2026-01-01", {"posted": "2026-01-01T18:00:00+00:00"}, True),
    ("posted>2026-01-01T12:00", {"posted": "2026-01-01T18:00:00+00:00"}, True),
    ("extra>=10", {"extra": 12}, True),  # a field of unknown kind compares by value
    ("extra:foo", {"extra": "foo bar"}, True),
]


@pytest.mark.parametrize(("query", "fields", "expected"), FIELDS)
def test_field_rules(query: str, fields: dict[str, Any], expected: bool) -> None:
    assert hit(query, item("notice", **fields)) is expected


def deadline(days: float) -> str:
    return (FIXED_NOW + timedelta(days=days)).isoformat()


RELATIVE = [
    ("response_deadline<30d", deadline(10), True),
    ("response_deadline<30d", deadline(45), False),
    ("response_deadline<30d response_deadline>=now", deadline(-1), False),
    ("response_deadline>=now", deadline(0.5), True),
    ("posted>=-7d", deadline(-3), True),
    ("posted>=-7d", deadline(-8), False),
    ("posted>-2w", deadline(-13), True),
    ("posted>=-12h", deadline(-0.25), True),
]


def day(days: int) -> str:
    """A date-only value (as SAM.gov's postedDate or a TED deadline), relative to FIXED_NOW."""
    return (FIXED_NOW + timedelta(days=days)).date().isoformat()


# A date without a time is the whole of that day, compared with the day of now + offset.
RELATIVE_DAYS = [
    ("response_deadline>=now", day(0), True),  # due today: not yet passed
    ("response_deadline>=now", day(-1), False),
    ("response_deadline<now", day(0), False),
    ("response_deadline<30d", day(29), True),
    ("response_deadline<30d", day(30), False),
    ("response_deadline<=30d", day(30), True),
    ("posted>=-1d", day(-1), True),  # posted yesterday is within the last day
    ("posted>=-1d", day(-2), False),
    ("posted>=-7d", day(-7), True),
    ("posted>-7d", day(-7), False),
    ("posted=now", day(0), True),
]
RELATIVE += RELATIVE_DAYS


@pytest.mark.parametrize(("query", "when", "expected"), RELATIVE)
def test_relative_dates_use_the_injected_clock(query: str, when: str, expected: bool) -> None:
    entry = item("notice", response_deadline=when, posted=when)
    assert hit(query, entry) is expected


def test_published_compares_the_item_date() -> None:
    entry = item("x", published=datetime(2026, 2, 1, tzinfo=UTC))
    assert hit("x published>=2026-01-01", entry)
    assert not hit("x published>=2026-03-01", entry)
    assert not hit("published>=2026-01-01", item("x"))


def test_amount_in_text_with_and_without_currency() -> None:
    entry = item("Clearview fined €30.5 million", "and $20,000 costs")
    assert hit("amount>=1000000", entry)
    assert hit("amount>=1000000 EUR", entry)
    assert not hit("amount>=1000000 USD", entry)
    assert hit("amount>=10000 USD", entry)
    records = matches("clearview amount>=1000000 EUR", entry)
    assert [(m.field, m.text) for m in records] == [
        ("title", "Clearview"),
        ("title", "€30.5 million"),
    ]
    texts = entry.text_fields()
    assert all(texts[m.field][m.start : m.end] == m.text for m in records)


def test_comparison_records_show_the_value() -> None:
    entry = item("notice", award_amount={"amount": 2_500_000.0, "currency": "USD"})
    records = matches("award_amount>=1e6", entry)
    assert [(m.field, m.text, m.start) for m in records] == [("award_amount", "2500000 USD", 0)]
    # A plain number (SAM.gov's award amount) reads the same way, not as 1250000.0.
    plain = matches("award_amount>=1e6", item("notice", award_amount=1_250_000.0))
    assert [m.text for m in plain] == ["1250000"]
    assert [m.text for m in matches("award_amount>=1", item("notice", award_amount=2.5))] == ["2.5"]


EXCLUDES = [
    ("clearview", "NOT_USED", "Clearview fined", True),
    ("clearview", "webinar", "Clearview webinar next week", False),
    ("clearview", '"press kit"', "Clearview press kit", False),
    ("clearview", "amount<1000 EUR", "Clearview fined €500", False),
    ("clearview", "amount<1000 EUR", "Clearview fined €5m", True),
]


@pytest.mark.parametrize(("query", "exclude", "title", "expected"), EXCLUDES)
def test_exclude_vetoes_a_match(query: str, exclude: str, title: str, expected: bool) -> None:
    assert bool(matches(query, item(title, language="en"), exclude=exclude)) is expected


def test_explain_says_what_is_missing_and_what_vetoed() -> None:
    rules = [
        compile_rule("fine", "clearview AND (fine OR boete)"),
        compile_rule("near", "clearview NEAR/1 fine"),
        compile_rule("negated", "clearview NOT webinar"),
        compile_rule("vetoed", "clearview", exclude="webinar"),
        compile_rule("elsewhere", "clearview", sources=["other"]),
    ]
    entry = item("Clearview webinar on fines", language="en")
    found = {e.rule: e for e in Matcher(rules).explain(entry)}
    assert found["fine"].matched
    assert [m.text for m in found["fine"].matches] == ["Clearview", "fines"]
    assert not found["near"].matched
    assert found["near"].missing == ["(clearview NEAR/1 fine)"]
    assert found["negated"].missing == ["NOT webinar"]
    # What is missing reads as the rule wrote it, not folded ("6 302 1").
    written = compile_rule("far", 'title:"FAR 6.302-1" OR Sole-Source* OR "intent" NEAR/3 Award')
    (far,) = Matcher([written]).explain(entry)
    assert far.missing == ['title:"FAR 6.302-1" OR Sole-Source* OR ("intent" NEAR/3 Award)']
    assert [m.text for m in found["vetoed"].excluded_by] == ["webinar"]
    assert not found["elsewhere"].applies


def test_fields_contract_covers_every_leaf_kind() -> None:
    rules = [
        compile_rule("a", "agency:x NEAR/2 agency:y", fields=PROCUREMENT),
        compile_rule("b", "naics:/54\\d+/ award_amount>=1", fields=PROCUREMENT),
        compile_rule("c", "amount>=5", fields=PROCUREMENT, exclude="cpv:9"),
    ]
    assert Matcher(rules).fields() == {
        "agency",
        "naics",
        "award_amount",
        "title",
        "summary",
        "content",
        "cpv",
    }


@pytest.mark.parametrize("seed", range(20))
def test_near_agrees_with_a_brute_force_count(seed: int) -> None:
    rng = random.Random(seed)
    words = [rng.choice(["a", "b", "c", "x"]) for _ in range(60)]
    distance = rng.randint(0, 5)
    close = any(
        words[i] == "a" and words[j] == "b" and abs(i - j) - 1 <= distance
        for i in range(len(words))
        for j in range(len(words))
        if i != j
    )
    entry = item(" ".join(words), language="en")
    assert hit(f'"a" NEAR/{distance} "b"', entry) is close


def test_a_regex_matching_everywhere_reports_the_first_records_only() -> None:
    records = matches("/e/", item("e" * 100_000))
    assert [m.start for m in records] == list(range(20))


def test_an_empty_regex_match_is_never_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    # A regex the parser's probes miss must still not fire on empty text: here the
    # probes are disabled so that /\\b/ (empty at every word boundary) gets through.
    monkeypatch.setattr("monitor.matching.query._EMPTY_PROBES", ("",))
    assert not hit("/\\b/", item("Clearview fined", "Café noir"))
    assert [m.text for m in matches("/fine|\\b/", item("Clearview fine"))] == ["fine"]


REGEX_ACCENTS = [
    ("/cafe/", "Un Café à Paris", "Café"),
    ("/café/", "CAFE CULTURE", "CAFE"),
    ("/strasse/", "Hauptstraße 1", "straße"),
    ("/\\bboete\\b/", "Één boete", "boete"),
    ("/cafe\\d/", "Café1 et café2", "Café1"),
]


@pytest.mark.parametrize(("query", "title", "first"), REGEX_ACCENTS)
def test_regexes_ignore_accents_and_report_original_text(
    query: str, title: str, first: str
) -> None:
    entry = item(title)
    records = matches(query, entry)
    assert records[0].text == first
    assert all(title[m.start : m.end] == m.text for m in records)
