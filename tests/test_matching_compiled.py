"""The Aho-Corasick prefilter: same matches as evaluating every rule, far fewer evaluations."""

from __future__ import annotations

import random

import pytest

from monitor.matching import Matcher, compile_rule
from monitor.matching.compiled import trigger
from monitor.matching.index import ItemIndex
from monitor.models import Item
from tests.conftest import FIXED_NOW

VOCABULARY = (
    "clearview", "fine", "fines", "fined", "boete", "boetes", "amende", "amendes", "sanction",
    "sanctions", "sanzione", "sanzioni", "award", "awarded", "intent", "notice", "cloud",
    "data", "privacy", "contract", "tender", "software", "define", "refined", "finance",
    "strafe", "strafen", "multa", "multas", "de", "la", "le", "the", "of", "and",
)  # fmt: skip
LANGUAGES = [None, "en", "nl", "fr", "it", "de", "es"]


def random_query(rng: random.Random) -> str:
    def leaf() -> str:
        word = rng.choice(VOCABULARY[:-6])
        roll = rng.random()
        if roll < 0.15:
            return f'"{word} {rng.choice(VOCABULARY)}"'
        if roll < 0.25:
            return word[:4] + "*"
        if roll < 0.35:
            return f"{word} NEAR/{rng.randint(0, 4)} {rng.choice(VOCABULARY[:-6])}"
        if roll < 0.40:
            return f"title:{word}"
        return word

    shape = rng.random()
    if shape < 0.3:
        return leaf()
    if shape < 0.55:
        return f"{leaf()} AND ({leaf()} OR {leaf()})"
    if shape < 0.7:
        return f"{leaf()} NOT {leaf()}"
    if shape < 0.8:
        return f"({leaf()} OR {leaf()}) {leaf()}"
    if shape < 0.9:
        return f"{leaf()} OR amount>=1000"
    return f"/{rng.choice(VOCABULARY[:-6])}s?/ OR {leaf()}"


def random_item(rng: random.Random, number: int) -> Item:
    def text(size: int) -> str:
        words = [rng.choice(VOCABULARY) for _ in range(size)]
        if rng.random() < 0.2:
            words.append("€5,000")
        return " ".join(words)

    return Item(
        source="s",
        source_type="rss",
        key=str(number),
        content_hash="h",
        title=text(6),
        summary_html=text(30),
        language=rng.choice(LANGUAGES),
    )


@pytest.mark.parametrize("seed", range(5))
def test_prefilter_matches_exactly_what_evaluating_every_rule_matches(seed: int) -> None:
    rng = random.Random(seed)
    rules = [compile_rule(f"r{n}", random_query(rng)) for n in range(300)]
    fast = Matcher(rules, clock=lambda: FIXED_NOW)
    slow = Matcher(rules, clock=lambda: FIXED_NOW, prefilter=False)
    total = 0
    for number in range(60):
        entry = random_item(rng, number)
        got = fast.match(entry)
        assert got == slow.match(entry)
        total += len(got)
    assert total > 0  # the comparison is not vacuous


def test_only_rules_whose_words_occur_are_candidates() -> None:
    rules = [
        compile_rule("clearview", "clearview AND (fine OR boete)"),
        compile_rule("other", "tender NOT cancelled"),
        compile_rule("regex", "/clear ?view/"),
        compile_rule("either", "privacy OR /x+y/"),
        compile_rule("stemmed", "boete"),
    ]
    matcher = Matcher(rules)
    entry = Item("s", "rss", "k", "h", title="Clearview krijgt boetes", language="nl")
    prefilter = matcher._prefilter
    assert prefilter is not None
    index = ItemIndex(entry, matcher._stems, FIXED_NOW)
    # rule 0 through "clearview", 4 through the stem of "boetes"; regex rules always.
    assert prefilter.candidates(index) == [0, 2, 3, 4]


TRIGGERS = [
    ("a", {"a"}),
    ("a b", {"a"}),
    ("a (b OR c)", {"a"}),
    ("(b OR c) a", {"a"}),
    ("a OR b", {"a", "b"}),
    ("a NOT b", {"a"}),
    ("a NEAR/3 b", {"a"}),
    ("/x/ a", {"a"}),
    ("/x/", None),
    ("a OR /x/", None),
    ("amount>=5", None),
]


@pytest.mark.parametrize(("query", "expected"), TRIGGERS)
def test_triggers(query: str, expected: set[str] | None) -> None:
    found = trigger(compile_rule("r", query).query.root)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert {" ".join(term.tokens) for term in found} == expected
