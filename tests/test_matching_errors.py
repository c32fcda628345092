"""Every bad rule the issue lists: an error naming the rule and position; other rules load."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError, QueryError
from monitor.matching import parse_query
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import SourceType
from monitor.sources.rss import RssSourceConfig

# What a procurement source type declares (SourceType.fields).
KINDS = {"award_amount": "money", "posted": "date", "agency": "text"}
FIELDS = frozenset({"title", "summary", "content", *KINDS})

# query -> (position, words the reason must contain)
BAD = [
    # unbalanced parentheses
    ("(clearview NEAR/5 fine", 0, "'(' is never closed"),
    ("clearview fine)", 14, "')' has no matching '('"),
    # NEAR without a number, or misused
    ("clearview NEAR fine", 10, "NEAR needs a distance in words: write NEAR/10"),
    ("clearview NEAR/ fine", 10, "NEAR needs a distance"),
    ("clearview NEAR/x fine", 10, "NEAR needs a distance"),
    ("clearview NEAR/5", 10, "NEAR needs a word or phrase on both sides"),
    ("NEAR/5 fine", 0, "NEAR needs a word or phrase on both sides"),
    ("(a OR b) NEAR/5 c", 9, "NEAR joins two words or phrases"),
    ("a NEAR/5 NOT b", 2, "NEAR joins two words or phrases"),
    ("a NEAR/5000 b", 2, "at most 1000"),
    # empty phrase
    ('clearview ""', 10, "empty phrase"),
    ('clearview NEAR/3 "  "', 17, "empty phrase"),
    # unknown field
    ("agencyy:dhs", 0, "unknown field 'agencyy'"),
    ("naics>=5", 0, "unknown field 'naics'"),
    # regexes
    ("/clear(view/", 0, "the regex does not compile: missing ): clear(view"),
    ("title:/[a-/", 6, "the regex does not compile"),
    ("/(a+)\\1/", 0, "backreferences and lookaround need backtracking"),
    ("/clear(?=view)/", 0, "backreferences and lookaround"),
    ("/(?<!x)view/", 0, "backreferences and lookaround"),
    ("/a*/", 0, "matches an empty text"),
    # Zero-width everywhere but in the empty text: would match every item with a word.
    ("/\\b/", 0, "matches an empty text"),
    ("clearview OR title:/(?:fine)?\\b/", 19, "matches an empty text"),
    ("/\\B/", 0, "matches an empty text"),
    ("//", 0, "empty regex"),
    ("/clearview", 0, "regex that is never closed"),
    ("award_amount:/1/", 13, "a regex searches text"),
    # comparisons
    ("title>=5", 0, "'title' is a text field: comparisons need a number, money or date field"),
    ("agency<3", 0, "'agency' is a text field"),
    ("posted>=1000", 8, "'posted' holds dates; compare it with a date"),
    ("award_amount>=2026-01-01", 14, "compare it with a number, not a date"),
    ("award_amount>=lots", 14, "'lots' is not a number"),
    ("award_amount>=", 14, "needs a value"),
    ("posted>=2026-02-30", 8, "not a valid date"),
    ("award_amount>=1e6 EUX", 18, "unknown currency 'EUX'"),
    ("amount>=1000000 XXY", 16, "unknown currency 'XXY'"),
    ("amount>=1000000 eur", 16, "write the currency in capitals (EUR)"),
    ("posted>=30d EUR", 12, "a currency only goes with an amount"),
    ("title:award_amount>=5", 6, "a comparison names its own field"),
    ("award_amount:1000", 13, "holds money, not words"),
    ("award_amount >= 1000", 13, "without spaces around it"),
]


@pytest.mark.parametrize(("text", "position", "reason"), BAD)
def test_bad_queries(text: str, position: int, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text, fields=FIELDS, kinds=KINDS)
    assert reason in caught.value.reason
    assert caught.value.position == position


def test_near_is_a_word_unless_written_near_slash() -> None:
    assert str(parse_query("nearby NEARBY near")) == "(nearby AND nearby AND near)"


FEED = {"name": "feed", "type": "rss", "url": "https://example.org/feed", "every": "1h"}


class SamLikeConfig(RssSourceConfig):
    type: Literal["sam"]  # type: ignore[assignment]


def config(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sources": [FEED],
        "rules": rules,
    }


def test_every_bad_rule_is_reported_with_rule_and_position_and_good_rules_load() -> None:
    rules = [
        {"name": "good", "query": "clearview NEAR/10 fine"},
        {"name": "parens", "query": "(clearview"},
        {"name": "near", "query": "a NEAR b"},
        {"name": "phrase", "query": 'a ""'},
        {"name": "field", "query": "naics:541511"},
        {"name": "regex", "query": "/(a)\\1/"},
        {"name": "textcmp", "query": "title>=5"},
        {"name": "currency", "query": "amount>=1e6 EUX"},
        {"name": "veto", "query": "x", "exclude": "(y"},
        {"name": "also-good", "query": "amount>=1000000 EUR", "exclude": "webinar"},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config(config(rules), {}, path=Path("x.toml"))
    problems = caught.value.problems
    assert len(problems) == 8
    expected = [
        ('rules[1] "parens": query:', "at position 0"),
        ('rules[2] "near": query: NEAR needs a distance', "at position 2"),
        ('rules[3] "phrase": query: empty phrase', "at position 2"),
        ("rules[4] \"field\": query: unknown field 'naics'", "at position 0"),
        ('rules[5] "regex": query: backreferences', "at position 0"),
        ("rules[6] \"textcmp\": query: 'title' is a text field", "at position 0"),
        ("rules[7] \"currency\": query: unknown currency 'EUX'", "at position 12"),
        ('rules[8] "veto": exclude:', "at position 0"),
    ]
    for problem, (start, where) in zip(problems, expected, strict=True):
        assert problem.startswith(start)
        assert where in problem
    good = parse_config(config([rules[0], rules[9]]), {}, path=Path("x.toml"))
    assert [r.name for r in good.rules] == ["good", "also-good"]
    assert good.rules[1].exclude is not None


def test_field_rules_follow_the_source_types_of_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    rss = SOURCE_TYPES["rss"]
    fake = SourceType("sam", SamLikeConfig, rss.build, "test", {"naics": "text"})
    monkeypatch.setattr("monitor.config.SOURCE_TYPES", {"rss": rss, "sam": fake})
    doc = {
        "sources": [
            FEED,
            {"name": "notices", "type": "sam", "url": "https://example.org/sam", "every": "1h"},
        ],
        "rules": [
            {"name": "any", "query": "naics:541511"},
            {"name": "sam", "query": "naics:541511", "sources": ["notices"]},
            {"name": "rss", "query": "naics:541511", "sources": ["feed"]},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(doc, {}, path=Path("x.toml"))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("rules[2] \"rss\": query: unknown field 'naics'")


def test_a_currency_on_a_plain_number_field_is_an_error_at_the_currency() -> None:
    kinds = {"award_amount": "number"}  # SAM.gov: US dollars as plain numbers
    fields = frozenset({"title", "summary", "content", *kinds})
    with pytest.raises(QueryError) as caught:
        parse_query("award_amount>=1e6 USD", fields=fields, kinds=kinds)
    assert caught.value.position == len("award_amount>=1e6 ")
    assert "plain number without a currency; drop 'USD'" in caught.value.reason
    assert parse_query("award_amount>=1e6", fields=fields, kinds=kinds)
