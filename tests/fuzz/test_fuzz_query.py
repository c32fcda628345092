"""Fuzzing parse_query with the real token set, fields and kinds."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from monitor.errors import QueryError
from monitor.matching.fold import fold, fold_mapped, tokenize, words
from monitor.matching.query import DEFAULT_FIELDS, parse_query
from tests.fuzz.strategies import fields_and_kinds, query_text


def check(text: str, kinds: Mapping[str, str]) -> None:
    fields = frozenset(DEFAULT_FIELDS | set(kinds))
    try:
        query = parse_query(text, fields=fields, kinds=kinds)
    except QueryError as e:
        assert 0 <= e.position <= len(text)
        return
    assert query.terms, "a query that parses has a positive term to explain its alerts"


@given(query_text, fields_and_kinds)
def test_queries_parse_or_raise_a_query_error(text: str, kinds: dict[str, str]) -> None:
    check(text, kinds)


@given(st.text(max_size=200))
def test_arbitrary_text_parses_or_raises_a_query_error(text: str) -> None:
    check(text, {})


@given(st.one_of(query_text, st.text(max_size=200)))
def test_words_are_the_texts_of_the_tokens(text: str) -> None:
    """``words`` folds and splits without spans; it must split exactly as ``tokenize``."""
    assert words(text) == [token.text for token in tokenize(text)]


@given(st.one_of(query_text, st.text(max_size=200)))
def test_fold_is_the_mapped_fold(text: str) -> None:
    """``fold`` takes ASCII runs whole; it must give what ``fold_mapped`` builds char by char."""
    assert fold(text) == fold_mapped(text)[0]
