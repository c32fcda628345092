"""Compiled rules and the matcher: ``Item`` x rules -> ``Match`` records.

Matching is pure given its inputs: no I/O and no state kept between calls except
caches of pure functions (stemmers, automata); relative dates (``deadline<30d``)
are measured from the injected clock. For each rule that applies to the item's
source, whose query is true and whose ``exclude`` query (if any) is false,
``Matcher.match`` reports every place each positive leaf (one not under a NOT)
holds, with offsets into the ORIGINAL field text, so
``text_fields()[m.field][m.start:m.end] == m.text`` for words, phrases, NEAR,
regexes and amounts found in text. A comparison on a structured field (a number,
money, a date, ``published``) reports the value as text with ``start`` 0.
Identical records are reported once, and at most :data:`MAX_PER_FIELD` per rule
and field (the first ones in the text) to bound alert payloads. The query language
guarantees that a rule that matches has at least one such record.

Only the rules whose words occur in the item are evaluated (see ``compiled.py``);
``prefilter=False`` evaluates every rule, the baseline the benchmark compares with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.errors import ConfigError
from monitor.matching.compiled import Prefilter
from monitor.matching.index import MAX_PER_FIELD, Hit, ItemIndex
from monitor.matching.nodes import And, Compare, Near, Node, Not, Or, Query, Regex, Term
from monitor.matching.query import DEFAULT_FIELDS, UNSCOPED_FIELDS, parse_query
from monitor.matching.schema import NO_KINDS
from monitor.matching.stem import Stems
from monitor.models import Item, Match

__all__ = ["MAX_PER_FIELD", "Explanation", "Matcher", "Rule", "compile_rule"]


@dataclass(frozen=True)
class Rule:
    """A named query, optionally limited to some sources (None = every source).

    ``exclude`` is a second query that vetoes a match when it is true.
    """

    name: str
    query: Query
    sources: frozenset[str] | None = None
    exclude: Query | None = None

    def applies_to(self, source: str) -> bool:
        return self.sources is None or source in self.sources


def compile_rule(
    name: str,
    query: str | Query,
    sources: Iterable[str] | None = None,
    *,
    fields: frozenset[str] = DEFAULT_FIELDS,
    kinds: Mapping[str, str] = NO_KINDS,
    exclude: str | Query | None = None,
) -> Rule:
    """Parse ``query`` (and ``exclude``) into a :class:`Rule`; QueryError if bad.

    Either may also be given already parsed (the config parses them first, to
    report the problems of both).

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
    parsed = query if isinstance(query, Query) else parse_query(query, fields=fields, kinds=kinds)
    veto = parse_query(exclude, fields=fields, kinds=kinds) if isinstance(exclude, str) else exclude
    return Rule(name=name, query=parsed, sources=chosen, exclude=veto)


@dataclass(frozen=True)
class Explanation:
    """Why one rule does or does not match an item.

    ``missing`` lists what is absent (or, prefixed ``NOT``, present) that keeps
    the query false; ``excluded_by`` the parts of ``exclude`` that vetoed it.
    """

    rule: str
    matched: bool
    applies: bool = True
    matches: list[Match] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    excluded_by: list[Match] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Matcher:
    """Evaluates a fixed sequence of rules against items.

    ``clock`` gives "now" for relative dates; ``prefilter`` (default on) evaluates
    only the rules whose words occur in the item.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        clock: Callable[[], datetime] = _utcnow,
        prefilter: bool = True,
    ) -> None:
        self._rules = tuple(rules)
        self._clock = clock
        self._stems = Stems()
        self._prefilter = (
            Prefilter([rule.query.root for rule in self._rules], self._stems) if prefilter else None
        )
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
                if rule.exclude is not None:
                    found |= rule.exclude.fields(UNSCOPED_FIELDS)
        return frozenset(found)

    def match(self, item: Item, *, now: datetime | None = None) -> list[Match]:
        """The Match records of every rule that matches ``item``, in rule order."""
        index = ItemIndex(item, self._stems, now or self._clock())
        if self._prefilter is None:
            numbers: Iterable[int] = range(len(self._rules))
        else:
            numbers = self._prefilter.candidates(index)
        matches: list[Match] = []
        for number in numbers:
            rule = self._rules[number]
            if rule.applies_to(item.source) and _fires(rule, index):
                matches.extend(_records(rule.name, rule.query, index))
        return matches

    def explain(self, item: Item, *, now: datetime | None = None) -> list[Explanation]:
        """For every rule: does it match ``item``, with which records, or what is missing."""
        index = ItemIndex(item, self._stems, now or self._clock())
        found: list[Explanation] = []
        for rule in self._rules:
            if not rule.applies_to(item.source):
                found.append(Explanation(rule.name, matched=False, applies=False))
            elif not index.holds(rule.query.root):
                found.append(
                    Explanation(rule.name, False, missing=_missing(rule.query.root, index))
                )
            elif rule.exclude is not None and index.holds(rule.exclude.root):
                vetoes = _records(rule.name, rule.exclude, index)
                found.append(Explanation(rule.name, False, excluded_by=vetoes))
            else:
                found.append(
                    Explanation(rule.name, True, matches=_records(rule.name, rule.query, index))
                )
        return found


def _fires(rule: Rule, index: ItemIndex) -> bool:
    if not index.holds(rule.query.root):
        return False
    return rule.exclude is None or not index.holds(rule.exclude.root)


def _written(node: Node) -> str:
    """``node`` as the rule wrote it where that is known (``"6.302-1"``, not the folded
    ``"6 302 1"``), so that explain names what the user will find in the rule."""
    if isinstance(node, Term) and node.text:
        body = f'"{node.text}"' if node.exact else node.text
        return f"{node.field}:{body}" if node.field else body
    if isinstance(node, Near):
        return f"({_written(node.left)} NEAR/{node.distance} {_written(node.right)})"
    return str(node)


def _missing(node: Node, index: ItemIndex) -> list[str]:
    """What makes ``node`` false: absent leaves, or ``NOT x`` where x is present."""
    if isinstance(node, Term | Near | Regex | Compare):
        return [] if index.holds(node) else [_written(node)]
    if isinstance(node, Not):
        return [f"NOT {_written(node.child)}"] if index.holds(node.child) else []
    if isinstance(node, And):
        found: list[str] = []
        for child in node.children:
            found.extend(_missing(child, index))
        return found
    assert isinstance(node, Or)
    if index.holds(node):
        return []
    return [" OR ".join(_written(child) for child in node.children)]


def _records(rule: str, query: Query, index: ItemIndex) -> list[Match]:
    """One Match per distinct place the query's positive leaves hold, capped per field."""
    by_field: dict[str, set[Hit]] = {}
    for leaf in query.terms:
        for name in index.fields_of(leaf):
            # Hits come in text order, so a leaf's later ones cannot make the cut.
            for hit in index.find(leaf, name)[:MAX_PER_FIELD]:
                by_field.setdefault(hit.field, set()).add(hit)
    records: list[Match] = []
    # Fields in the item's own order, then structured ones; text order within.
    order = list(index.texts) + sorted(set(by_field) - set(index.texts))
    for name in order:
        hits = sorted(by_field.get(name, ()), key=lambda hit: (hit.start, hit.end))
        records.extend(Match(rule, name, h.text, h.start, h.end) for h in hits[:MAX_PER_FIELD])
    return records
