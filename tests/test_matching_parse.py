"""The query language: what parses to what, and every error with its position."""

from __future__ import annotations

import time

import pytest

from monitor.errors import ConfigError, QueryError
from monitor.matching import DEFAULT_FIELDS, MAX_DEPTH, And, Not, Query, Term, parse_query

# query -> the tree rendered fully parenthesised, in folded form
PARSES = [
    # words, implicit AND, keywords
    ("clearview", "clearview"),
    ("clearview fine", "(clearview AND fine)"),
    ("clearview AND fine", "(clearview AND fine)"),
    ("clearview OR fine", "(clearview OR fine)"),
    ("a AND b AND c", "(a AND b AND c)"),
    ("a b c", "(a AND b AND c)"),
    ("a and b", "(a AND and AND b)"),
    ("a or b", "(a AND or AND b)"),
    ("a not b", "(a AND not AND b)"),
    ("ANDROID ORACLE NOTICE", "(android AND oracle AND notice)"),
    # precedence: NOT > AND > OR
    ("a OR b AND c", "(a OR (b AND c))"),
    ("a AND b OR c", "((a AND b) OR c)"),
    ("a OR b c", "(a OR (b AND c))"),
    ("a b OR c d", "((a AND b) OR (c AND d))"),
    ("NOT a b", "(NOT a AND b)"),
    ("b NOT a", "(b AND NOT a)"),
    ("b AND NOT a OR c", "((b AND NOT a) OR c)"),
    ("b NOT (a OR c)", "(b AND NOT (a OR c))"),
    ("NOT NOT a", "a"),
    ("b NOT NOT NOT a", "(b AND NOT a)"),
    # parentheses
    ("(a)", "a"),
    ("((((a))))", "a"),
    ("(a OR b) c", "((a OR b) AND c)"),
    ("(a OR b)AND(c OR d)", "((a OR b) AND (c OR d))"),
    ("(a AND b) AND c", "(a AND b AND c)"),
    ("(a OR b) OR c", "(a OR b OR c)"),
    (
        "clearview AND (fine OR boete OR amende OR sanction*)",
        "(clearview AND (fine OR boete OR amende OR sanction*))",
    ),
    # phrases
    ('"intent to award"', '"intent to award"'),
    ('"Intent  To\tAward"', '"intent to award"'),
    ('"intent to award*"', '"intent to award*"'),
    ('" intent to award* "', '"intent to award*"'),
    ('"AND"', '"and"'),
    ('"a OR b"', '"a or b"'),
    ('x"intent to"', '(x AND "intent to")'),
    # punctuation splits tokens: a word with punctuation inside is a phrase
    ("sole-source", "sole-source"),
    ("Sole-Source*", "sole-source*"),
    ("6.302-1", "6-302-1"),
    ("FAR-52.212", "far-52-212"),
    ("(clearview!)", "clearview"),
    ("a+b", "a-b"),
    ("12:30", "12-30"),
    # wildcard
    ("sanction*", "sanction*"),
    ("AND*", "and*"),
    ("a* OR b*", "(a* OR b*)"),
    # folding
    ("Café", "cafe"),
    ("cafe\u0301", "cafe"),
    ("Straße", "strasse"),
    ("GARANTE", "garante"),
    ("ﬁne", "fine"),
    # fields
    ("title:clearview", "title:clearview"),
    ('summary:"intent to award"', 'summary:"intent to award"'),
    ("content:sanction*", "content:sanction*"),
    ('title:(clearview OR "clear view")', '(title:clearview OR title:"clear view")'),
    ("title:(a NOT b)", "(title:a AND NOT title:b)"),
    ("title:(title:a b)", "(title:a AND title:b)"),
    ("NOT title:a b", "(NOT title:a AND b)"),
    ("title:a summary:b", "(title:a AND summary:b)"),
    ("title:sole-source", "title:sole-source"),
    # NEAR binds tighter than NOT, NOT tighter than AND
    ("clearview NEAR/10 fine", "(clearview NEAR/10 fine)"),
    ("NOT a NEAR/3 b c", "(NOT (a NEAR/3 b) AND c)"),
    ("a NEAR/1 b NEAR/2 c", "((a NEAR/1 b) AND (b NEAR/2 c))"),
    ("title:a NEAR/3 b", "(title:a NEAR/3 title:b)"),
    ("x OR y NEAR/2 z", "(x OR (y NEAR/2 z))"),
    ('"intent to" NEAR/0 award*', '("intent to" NEAR/0 award*)'),
    # regexes and comparisons
    ("title:/clear ?view/", "title:/clear ?view/"),
    ("/a\\/b/ x", "(/a\\/b/ AND x)"),
    ("amount>=1e6 EUR", "amount>=1e6 EUR"),
    ("amount>=1e6 AND eur", "(amount>=1e6 AND eur)"),
    ("amount>=1e6 fine", "(amount>=1e6 AND fine)"),
    ("published>=2026-01-01 all", "(published>=2026-01-01 AND all)"),
    ("published>=2026-01-01 NOT published>=now", "(published>=2026-01-01 AND NOT published>=now)"),
]


@pytest.mark.parametrize(("text", "rendered"), PARSES)
def test_parses(text: str, rendered: str) -> None:
    query = parse_query(text)
    assert isinstance(query, Query)
    assert query.text == text
    assert str(query) == rendered


# query -> (position, words the reason must contain)
ERRORS = [
    ("", 0, "empty"),
    ("   \t ", 0, "empty"),
    # parentheses
    ("(clearview", 0, "'(' is never closed"),
    ("a (b OR (c)", 2, "'(' is never closed"),
    ("((a)", 0, "'(' is never closed"),
    ("clearview)", 9, "')' has no matching '('"),
    ("(a OR b))", 8, "')' has no matching '('"),
    (") a", 0, "')' has no matching '('"),
    ("()", 0, "empty parentheses"),
    ("a (  ) b", 2, "empty parentheses"),
    ("a (", 2, "'(' is never closed"),
    # quotes
    ('"intent to award', 0, "quote is never closed"),
    ('clearview "fine', 10, "quote is never closed"),
    ('"a" "b', 4, "quote is never closed"),
    ('""', 0, "empty phrase"),
    ('a "  "', 2, "empty phrase"),
    ('"--"', 0, "no letters or digits"),
    # operators without operands
    ("clearview AND", 10, "AND needs a term on both sides"),
    ("OR fine", 0, "OR needs a term on both sides"),
    ("AND fine", 0, "AND needs a term on both sides"),
    ("fine OR", 5, "OR needs a term on both sides"),
    ("NOT", 0, "NOT needs a term after it"),
    ("a NOT", 2, "NOT needs a term after it"),
    ("a AND OR b", 2, "AND needs a term on both sides"),
    ("a OR OR b", 2, "OR needs a term on both sides"),
    ("(a OR)", 3, "OR needs a term on both sides"),
    ("(AND a)", 1, "AND needs a term on both sides"),
    ("a NOT AND b", 2, "NOT needs a term after it"),
    # fields
    ("foo:bar", 0, "unknown field 'foo'; known fields: content, summary, title"),
    ("a Title:b", 2, "unknown field 'Title'"),
    ("title:", 6, "'title:' must be directly followed by a word, a phrase or '('"),
    ("title: clearview", 6, "must be directly followed"),
    ("(title:)", 7, "must be directly followed"),
    ("title:NOT a", 6, "must be directly followed"),
    ("title:(summary:a)", 7, "'summary:' inside 'title:(...)' can never match"),
    # wildcards
    ("*", 0, "'*' needs letters or digits before it"),
    ("a *", 2, "'*' needs letters or digits before it"),
    ("sanc*tion", 4, "'*' is only allowed at the end of a word"),
    ("*tion", 0, "'*' is only allowed at the end"),
    ("a**", 1, "'*' is only allowed at the end"),
    ('"sanction* list"', 9, "'*' is only allowed at the end"),
    ('"*"', 1, "'*' needs letters or digits before it"),
    ("sole-*", 5, "'*' must come right after a letter or digit"),
    # terms with nothing to search for
    ("&", 0, "nothing to search for"),
    ("a -- b", 2, "no letters or digits"),
    ("-fine", 0, "write NOT fine"),
    # no positive term
    ("NOT clearview", 0, "a query needs at least one term that is not negated"),
    ("NOT a NOT b", 0, "at least one term that is not negated"),
    ("NOT (a OR b)", 0, "at least one term that is not negated"),
    ("a OR NOT b", 5, "each side of OR needs a term that is not negated"),
    ("(a NOT b) OR (NOT c)", 14, "each side of OR"),
]


@pytest.mark.parametrize(("text", "position", "reason"), ERRORS)
def test_errors(text: str, position: int, reason: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    error = caught.value
    assert error.query == text
    assert error.position == position, error.reason
    assert reason in error.reason
    # Readable: one sentence, then the query with a caret under the problem.
    lines = str(error).splitlines()
    assert lines[0] == f"{error.reason} at position {position}"
    assert lines[1] == f"    {text}"
    assert lines[2] == "    " + " " * position + "^"


def test_query_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_query("(")


def test_errors_are_deterministic() -> None:
    messages = set()
    for _ in range(3):
        with pytest.raises(QueryError) as caught:
            parse_query('a AND (b OR "c')
        messages.add(str(caught.value))
    assert len(messages) == 1


def test_default_fields() -> None:
    assert frozenset({"title", "summary", "content"}) == DEFAULT_FIELDS


def test_fields_are_a_parameter() -> None:
    fields = DEFAULT_FIELDS | {"buyer", "naics"}
    assert str(parse_query("buyer:(acme OR globex) naics:541511", fields=fields)) == (
        "((buyer:acme OR buyer:globex) AND naics:541511)"
    )
    with pytest.raises(QueryError) as caught:
        parse_query("buyer:acme")
    assert "known fields: content, summary, title" in caught.value.reason
    with pytest.raises(QueryError) as caught:
        parse_query("title:x", fields=frozenset({"buyer"}))
    assert caught.value.reason == "unknown field 'title'; known fields: buyer"


def test_terms_are_the_positive_ones_in_order_without_repeats() -> None:
    query = parse_query('clearview NOT fine (title:ban OR clearview OR "a b*") NOT NOT x')
    assert [str(term) for term in query.terms] == ["clearview", "title:ban", '"a b*"', "x"]


def test_term_records_where_it_was_written() -> None:
    query = parse_query('  x title:"Intent to" NOT Café*')
    assert isinstance(query.root, And)
    first, second, negated = query.root.children
    assert first == Term(("x",), text="x", position=2)
    assert second == Term(("intent", "to"), field="title", exact=True)
    assert isinstance(second, Term)
    assert (second.text, second.position) == ("Intent to", 10)
    assert isinstance(negated, Not)
    assert negated.position == 22
    assert negated.child == Term(("cafe",), prefix=True)
    assert isinstance(negated.child, Term)
    assert (negated.child.text, negated.child.position) == ("Café*", 26)


def test_nesting_at_the_limit_parses() -> None:
    text = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert str(parse_query(text)) == "a"


def test_nesting_beyond_the_limit_is_an_error() -> None:
    text = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert caught.value.position == MAX_DEPTH
    assert "nesting deeper than 100" in caught.value.reason


def test_pathological_nesting_is_a_query_error_not_a_recursion_error() -> None:
    for text in ("(" * 5000, "(" * 5000 + "a" + ")" * 5000, "title:(" * 5000 + "a"):
        with pytest.raises(QueryError) as caught:
            parse_query(text)
        assert "nesting deeper than 100" in caught.value.reason


def test_long_not_chains_do_not_recurse() -> None:
    assert str(parse_query("a " + "NOT " * 5000 + "b")) == "(a AND b)"
    assert str(parse_query("a " + "NOT " * 5001 + "b")) == "(a AND NOT b)"


def test_large_queries_parse_quickly() -> None:
    alternatives = " OR ".join(f'(word{n} AND "phrase {n}" AND title:pre{n}*)' for n in range(250))
    text = f"clearview AND ({alternatives})"
    assert len(text) > 10_000
    started = time.perf_counter()
    query = parse_query(text)
    assert time.perf_counter() - started < 1.0
    assert len(query.terms) == 751


def test_large_bad_query_fails_quickly() -> None:
    text = "a OR " * 2500 + ")"
    started = time.perf_counter()
    with pytest.raises(QueryError) as caught:
        parse_query(text)
    assert time.perf_counter() - started < 1.0
    assert caught.value.reason == "OR needs a term on both sides"
