"""Compiled rules and the matcher: ``Item`` x rules -> ``Match`` records.

Matching is pure: no clock, no I/O, no state kept between calls. For each rule
that applies to the item's source and whose query is true, ``Matcher.match``
reports every occurrence of every positive term (one not under a NOT) in the
fields that term may search, with offsets into the ORIGINAL field text, so
``text_fields()[m.field][m.start:m.end] == m.text``. Identical records are
reported once, and at most :data:`MAX_PER_FIELD` per rule and field (the first
ones in the text) to bound alert payloads. The query language guarantees that a
rule that matches has at least one such record.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.errors import ConfigError
from monitor.matching.index import ItemIndex, Span
from monitor.matching.nodes import Query
from monitor.matching.query import DEFAULT_FIELDS, UNSCOPED_FIELDS, parse_query
from monitor.models import Item, Match

__all__ = ["MAX_PER_FIELD", "Matcher", "Rule", "compile_rule"]

MAX_PER_FIELD = 20


@dataclass(frozen=True)
class Rule:
    """A named query, optionally limited to some sources (None = every source)."""

    name: str
    query: Query
    sources: frozenset[str] | None = None

    def applies_to(self, source: str) -> bool:
        return self.sources is None or source in self.sources


def compile_rule(
    name: str,
    query: str,
    sources: Iterable[str] | None = None,
    *,
    fields: frozenset[str] = DEFAULT_FIELDS,
) -> Rule:
    """Parse ``query`` into a :class:`Rule`; raises QueryError for a bad query.

    An empty ``sources`` is a ConfigError rather than a rule that can never fire,
    and so is a bare string, which would otherwise be read as a set of letters.
    """
    if isinstance(sources, str):
        raise ConfigError(f"rule '{name}': sources must be a list of names, not a string")
    chosen = None if sources is None else frozenset(sources)
    if chosen is not None and not chosen:
        raise ConfigError(
            f"rule '{name}': sources is empty", hint="leave it out to match every source"
        )
    return Rule(name=name, query=parse_query(query, fields=fields), sources=chosen)


class Matcher:
    """Evaluates a fixed sequence of rules against items."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        seen: set[str] = set()
        for rule in self._rules:
            # Match records carry only the rule name, so names must tell rules apart.
            if rule.name in seen:
                raise ConfigError(f"rule '{rule.name}' is defined twice")
            seen.add(rule.name)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def fields(self, source: str | None = None) -> frozenset[str]:
        """The item fields the rules search (for ``source`` only, when given).

        Sources use it to spend extra requests (detail pages, descriptions) only on
        text some rule will actually read.
        """
        found: set[str] = set()
        for rule in self._rules:
            if source is None or rule.applies_to(source):
                found |= rule.query.fields(UNSCOPED_FIELDS)
        return frozenset(found)

    def match(self, item: Item) -> list[Match]:
        """The Match records of every rule that matches ``item``, in rule order."""
        index = ItemIndex(item.text_fields())
        matches: list[Match] = []
        for rule in self._rules:
            if rule.applies_to(item.source) and index.holds(rule.query.root):
                matches.extend(_records(rule, index))
        return matches


def _records(rule: Rule, index: ItemIndex) -> list[Match]:
    """One Match per distinct occurrence of the rule's positive terms, capped per field."""
    by_field: dict[str, set[Span]] = {}
    for term in rule.query.terms:
        for field in index.fields_of(term):
            # Spans come in text order, so a term's later ones cannot make the cut.
            by_field.setdefault(field, set()).update(index.find(term, field)[:MAX_PER_FIELD])
    records: list[Match] = []
    # Fields in the item's own order, occurrences in text order: stable output.
    for field in index.texts:
        text = index.texts[field]
        spans = sorted(by_field.get(field, ()))[:MAX_PER_FIELD]
        records.extend(Match(rule.name, field, text[s:e], s, e) for s, e in spans)
    return records
