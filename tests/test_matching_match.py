"""The matcher: which items rules match, and the Match records that say why."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from monitor.errors import ConfigError, QueryError
from monitor.matching import (
    DEFAULT_FIELDS,
    MAX_DEPTH,
    MAX_PER_FIELD,
    Matcher,
    Rule,
    compile_rule,
)
from monitor.matching import fold as fold_module
from monitor.models import Item, Match

CLEARVIEW = "clearview AND (fine OR boete OR amende OR sanction*)"


def item(
    title: str = "",
    summary: str = "",
    content: str = "",
    *,
    source: str = "ap-nl",
    **fields: str,
) -> Item:
    return Item(
        source=source,
        source_type="rss",
        key="k",
        content_hash="h",
        title=title,
        summary_html=summary,
        content_html=content,
        fields=dict(fields),
    )


def matches(query: str, entry: Item, **kwargs: frozenset[str]) -> list[Match]:
    return Matcher([compile_rule("r", query, **kwargs)]).match(entry)


def found(query: str, entry: Item) -> list[tuple[str, str]]:
    """(field, text) of each record, the most readable view of a match."""
    return [(m.field, m.text) for m in matches(query, entry)]


def assert_offsets(entry: Item, records: list[Match]) -> None:
    texts = entry.text_fields()
    for record in records:
        assert texts[record.field][record.start : record.end] == record.text


# title -> texts the CLEARVIEW rule reports (empty: no match)
CLEARVIEW_TITLES = [
    ("Autoriteit Persoonsgegevens legt Clearview boete op", ["Clearview", "boete"]),
    ("La CNIL inflige une AMENDE à Clearview AI", ["AMENDE", "Clearview"]),
    ("Garante: ammenda a Clearview, e una amende in Francia", ["Clearview", "amende"]),
    # Unquoted words match their other forms (Snowball stems, English here).
    ("Clearview AI fined? No: Clearview faces a fine", ["Clearview", "fined", "Clearview", "fine"]),
    ("Clearview sanctioned; new sanctions and a sanction", None),
    ("CLEARVIEW AI SANCTION", ["CLEARVIEW", "SANCTION"]),
    ("Clearview defines its roadmap", []),
    ("Clearview hit with fines", ["Clearview", "fines"]),
    ("Dutch regulator fines Clearview: boetes", ["fines", "Clearview", "boetes"]),
    ("Clearview: the fine print was refined", ["Clearview", "fine"]),
    ("Clear view fine", []),
    ("ClearviewAI boete", []),
]


@pytest.mark.parametrize(("title", "texts"), CLEARVIEW_TITLES)
def test_clearview_rule_on_titles(title: str, texts: list[str] | None) -> None:
    entry = item(title)
    records = matches(CLEARVIEW, entry)
    if texts is None:  # every sanction* form
        texts = ["Clearview", "sanctioned", "sanctions", "sanction"]
    assert [m.text for m in records] == texts
    assert all(m.field == "title" and m.rule == "r" for m in records)
    assert_offsets(entry, records)


WORDS = [
    # query, title, matches?
    ("cafe", "Un Café à Paris", True),
    ("café", "CAFE CULTURE", True),
    ("cafe", "cafe\u0301", True),
    ("amende", "AMENDE", True),
    ("Garante", "il garante privacy", True),
    ("strasse", "Hauptstraße", False),
    ("hauptstrasse", "Hauptstraße 1", True),
    ("STRASSE", "Straße", True),
    ("fine", "define", False),
    ("fine", "fines", True),
    ('"fine"', "fines", False),
    ("fine", "refined", False),
    ("fine", "a fine day", True),
    ("fine", "Fine.", True),
    ("fine", "fine_print", True),  # underscore separates tokens like any punctuation
    ("fine*", "fines", True),
    ("fine*", "define", False),
    ("fine*", "fine", True),
    ("sanction*", "Sanctioned", True),
    ("and", "this and that", True),
    ("6.302-1", "FAR 6.302-1(a)(2)", True),
    ("6.302-1", "FAR 6.302 1", True),
    ("6.302-1", "FAR 6.3021", False),
    ("clearview", "🔥Clearview🔥", True),
]


@pytest.mark.parametrize(("query", "title", "expected"), WORDS)
def test_word_matching(query: str, title: str, expected: bool) -> None:
    assert bool(matches(query, item(title))) is expected


PHRASES = [
    ('"intent to award"', "Notice of Intent to Award", True),
    ('"intent to award"', "INTENT-TO-AWARD", True),
    ('"intent to award"', "intent to make an award", False),
    ('"intent to award"', "award: intent to", False),
    ('"intent to award"', "intent, to award", True),
    ('"intent to award*"', "intent to awarding", True),
    ('"intent to award*"', "intents to award", False),
    ("intent to award", "award: intent to", True),
    ("sole-source", "sole source", True),
    ("sole-source", "Sole-Source justification", True),
    ("sole-source", "SOLE  SOURCE", True),
    ("sole-source", "Sole Source", True),
    ("sole-source", "sole-sourced", True),  # unquoted: stems
    ('"sole source"', "sole-sourced", False),  # quoted: exact
    ("sole-source", "source sole", False),
    ("sole-source*", "sole-sourced", True),
    ('"sole source"', "sole-source", True),
]


@pytest.mark.parametrize(("query", "title", "expected"), PHRASES)
def test_phrase_matching(query: str, title: str, expected: bool) -> None:
    assert bool(matches(query, item(title))) is expected


def test_phrase_record_covers_the_whole_phrase_as_written() -> None:
    entry = item("Sole-Source justification; also sole   source")
    records = matches("sole-source", entry)
    assert [m.text for m in records] == ["Sole-Source", "sole   source"]
    assert_offsets(entry, records)


def test_boolean_operators() -> None:
    entry = item("Clearview fined", "A summary about privacy")
    assert matches("clearview NOT boete", entry)
    assert not matches("clearview NOT fined", entry)
    assert matches("boete OR privacy", entry)
    assert not matches("boete OR amende", entry)
    assert matches("clearview (boete OR fined)", entry)
    assert not matches("clearview NOT (boete OR fined)", entry)
    assert matches("clearview AND and", item("Clearview and co"))
    assert not matches("clearview AND and", item("Clearview or co"))


def test_field_scopes() -> None:
    entry = item("Regulator news", "Clearview was fined", "<p>Full text: boete</p>")
    assert found("title:clearview", entry) == []
    assert found("summary:clearview", entry) == [("summary", "Clearview")]
    assert found("content:boete", entry) == [("content", "boete")]
    assert found("clearview", entry) == [("summary", "Clearview")]
    assert found("title:(clearview OR news)", entry) == [("title", "news")]
    assert found('summary:"was fined" NOT title:clearview', entry) == [("summary", "was fined")]
    assert found("clearview NOT summary:fined", entry) == []


def test_unscoped_terms_search_title_summary_and_content_only() -> None:
    fields = DEFAULT_FIELDS | {"buyer"}
    entry = item("Tender", buyer="Clearview Ltd")
    assert matches("clearview", entry, fields=fields) == []
    assert matches("buyer:clearview", entry, fields=fields) == [
        Match("r", "buyer", "Clearview", 0, 9)
    ]


def test_summary_and_content_are_searched_as_plain_text() -> None:
    entry = item(summary="<p>La <b>CNIL</b> inflige une <i>amende</i> &agrave; Clearview</p>")
    records = matches("amende clearview", entry)
    assert [(m.field, m.text) for m in records] == [("summary", "amende"), ("summary", "Clearview")]
    assert_offsets(entry, records)
    assert entry.summary[records[0].start : records[0].end] == "amende"


def test_negated_terms_never_produce_records() -> None:
    entry = item("Clearview fine", "not boete")
    assert found("clearview NOT boete", entry) == []
    assert found("clearview NOT amende", entry) == [("title", "Clearview")]


def test_every_positive_term_present_is_reported() -> None:
    entry = item("alpha beta gamma")
    assert [m.text for m in matches("(alpha AND zeta) OR gamma", entry)] == ["alpha", "gamma"]


def test_records_are_in_field_then_text_order_and_deduplicated() -> None:
    entry = item("fine fine", "Fine print", "fine")
    records = matches("fine OR fin* OR FINE", entry)
    assert [(m.field, m.start) for m in records] == [
        ("title", 0),
        ("title", 5),
        ("summary", 0),
        ("content", 0),
    ]


def test_records_are_capped_per_rule_and_field() -> None:
    entry = item(" ".join(["fine"] * 50), " ".join(["fine"] * 3))
    records = matches("fine", entry)
    title = [m for m in records if m.field == "title"]
    assert len(title) == MAX_PER_FIELD
    assert [m.start for m in title] == [5 * n for n in range(MAX_PER_FIELD)]
    assert len([m for m in records if m.field == "summary"]) == 3


def test_the_cap_keeps_the_first_occurrences_across_terms() -> None:
    entry = item(" ".join(["x", "y"] * 30))
    records = matches("x OR y", entry)
    assert [m.text for m in records] == ["x", "y"] * (MAX_PER_FIELD // 2)
    assert [m.start for m in records] == [2 * n for n in range(MAX_PER_FIELD)]


OFFSET_TEXTS = [
    "Die Straße: Bußgeld für Clearview",
    unicodedata.normalize("NFC", "Sanción a Clearview, café y amende"),
    unicodedata.normalize("NFD", "Sanción a Clearview, café y amende"),
    "🔥👍🏽 Clearview 🇫🇷 amende 💶 ﬁne",
    "ǅemal İstanbul STRASSE ß Clearview",
]


@pytest.mark.parametrize("title", OFFSET_TEXTS)
def test_offsets_point_into_the_original_text(title: str) -> None:
    entry = item(title, summary=title)
    records = matches(
        "clearview OR strasse OR bussgeld OR cafe OR sancion OR amende OR fine", entry
    )
    assert {m.field for m in records} == {"title", "summary"}
    assert_offsets(entry, records)
    # Each reported text folds back to one of the query's words.
    folded = {fold_module.fold(m.text) for m in records}
    assert folded <= {"clearview", "strasse", "bussgeld", "cafe", "sancion", "amende", "fine"}


def test_offsets_with_expanding_and_decomposed_characters() -> None:
    title = "Straße! cafe\u0301 ß Café 🔥fine"
    assert found("strasse OR cafe OR ss OR fine", item(title)) == [
        ("title", "Straße"),
        ("title", "cafe\u0301"),
        ("title", "ß"),
        ("title", "Café"),
        ("title", "fine"),
    ]
    start = title.index("fine")
    assert matches("fine", item(title)) == [Match("r", "title", "fine", start, start + 4)]


def test_sources_filter() -> None:
    rules = [
        compile_rule("everywhere", "clearview"),
        compile_rule("dutch", "clearview", sources=["ap-nl"]),
        compile_rule("french", "clearview", sources=("cnil", "cnil-news")),
    ]
    matcher = Matcher(rules)

    def names(entry: Item) -> list[str]:
        return [m.rule for m in matcher.match(entry)]

    assert names(item("Clearview", source="ap-nl")) == ["everywhere", "dutch"]
    assert names(item("Clearview", source="cnil-news")) == ["everywhere", "french"]
    assert names(item("Clearview", source="sam")) == ["everywhere"]
    assert rules[1].sources == frozenset({"ap-nl"})
    assert rules[0].sources is None


def test_multiple_rules_in_rule_order() -> None:
    matcher = Matcher(
        [
            compile_rule("b-award", '"intent to award"'),
            compile_rule("a-clearview", CLEARVIEW),
            compile_rule("c-never", "zzz"),
            compile_rule("d-again", "clearview"),
        ]
    )
    entry = item("Clearview boete", "Notice of intent to award")
    assert [(m.rule, m.text) for m in matcher.match(entry)] == [
        ("b-award", "intent to award"),
        ("a-clearview", "Clearview"),
        ("a-clearview", "boete"),
        ("d-again", "Clearview"),
    ]
    assert [rule.name for rule in matcher.rules] == ["b-award", "a-clearview", "c-never", "d-again"]


def test_no_rules_no_matches() -> None:
    assert Matcher([]).match(item("anything")) == []
    assert Matcher([]).rules == ()


def test_each_field_is_tokenized_once_per_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = fold_module.tokenize

    def counting(text: str) -> list[fold_module.Token]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(fold_module, "tokenize", counting)
    queries = ["clearview", "fine OR boete", "title:clearview", "NOT x clearview", "sanction*"]
    matcher = Matcher([compile_rule(f"r{n}", q) for n, q in enumerate(queries)])
    entry = item("Clearview fine", "summary text", "content text")
    calls.clear()  # compile_rule tokenizes the queries; count only the matching
    matcher.match(entry)
    assert sorted(calls) == sorted(["Clearview fine", "summary text", "content text"])
    calls.clear()
    matcher.match(entry)
    assert len(calls) == 3  # a new call indexes afresh: nothing is kept between items


def test_match_is_pure_and_repeatable() -> None:
    matcher = Matcher([compile_rule("r", CLEARVIEW)])
    entry = item("Clearview boete")
    assert matcher.match(entry) == matcher.match(entry)


def test_a_rule_matches_exactly_when_true_and_then_reports_something() -> None:
    queries = [CLEARVIEW, "a NOT b", "(a NOT b) OR (c NOT d)", "a OR b c", "NOT NOT a"]
    titles = ["a", "a b", "c", "c d", "b c", "a c d", "b"]
    for query in queries:
        for title in titles:
            rule = compile_rule("r", query)
            records = Matcher([rule]).match(item(title))
            holds = bool(records)
            assert holds == _evaluate_by_hand(query, title), (query, title)


def _evaluate_by_hand(query: str, title: str) -> bool:
    words = set(title.split())
    cases = {
        CLEARVIEW: False,
        "a NOT b": "a" in words and "b" not in words,
        "(a NOT b) OR (c NOT d)": ("a" in words and "b" not in words)
        or ("c" in words and "d" not in words),
        "a OR b c": "a" in words or ("b" in words and "c" in words),
        "NOT NOT a": "a" in words,
    }
    return cases[query]


def test_compile_rule_checks_its_arguments() -> None:
    rule = compile_rule("r", "clearview", ["ap-nl", "ap-nl"])
    assert isinstance(rule, Rule)
    assert rule.sources == frozenset({"ap-nl"})
    with pytest.raises(QueryError):
        compile_rule("r", "clearview AND")
    with pytest.raises(ConfigError, match="sources is empty"):
        compile_rule("r", "clearview", [])
    with pytest.raises(ConfigError, match="not a string"):
        compile_rule("r", "clearview", "ap-nl")


def test_duplicate_rule_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="defined twice"):
        Matcher([compile_rule("r", "a"), compile_rule("r", "b")])


def test_rules_can_be_built_without_compile_rule() -> None:
    from monitor.matching import parse_query

    rule = Rule("r", parse_query("clearview"), frozenset({"ap-nl"}))
    assert Matcher([rule]).match(item("Clearview")) == [Match("r", "title", "Clearview", 0, 9)]


def test_a_large_item_reports_at_most_max_per_field_per_rule() -> None:
    # Its speed is bench/bench_match.py's business: a timed assert flaked under load.
    body = " ".join(f"word{n} Straße café" for n in range(20_000))
    entry = item("title", content=body)
    matcher = Matcher([compile_rule(f"r{n}", f"word{n}* OR strasse") for n in range(50)])
    records = matcher.match(entry)
    assert len(records) == 50 * MAX_PER_FIELD


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def test_deepest_query_parses_and_matches_within_a_modest_stack() -> None:
    query = "x"
    for level in range(MAX_DEPTH // 2):  # two parentheses per level
        query = f"(a{level} OR (b{level} NOT c{level} {query}))"
    entry = item("x " + " ".join(f"b{level}" for level in range(MAX_DEPTH // 2)))
    entry.text_fields()
    limit = sys.getrecursionlimit()
    # Parse, match and render need about 3 frames per level; leave generous room
    # but far less than the default limit of 1000.
    sys.setrecursionlimit(_stack_depth() + 4 * MAX_DEPTH)
    try:
        rule = compile_rule("deep", query)
        records = Matcher([rule]).match(entry)
        rendered = str(rule.query)
    finally:
        sys.setrecursionlimit(limit)
    assert [m.text for m in records][:2] == ["x", "b0"]
    assert rendered.count("(") == MAX_DEPTH
