"""Per-item indexes: where each leaf of a query holds, found once per ``Matcher.match``.

An :class:`ItemIndex` wraps one item. A text field is tokenized (and stemmed in the
item's language) the first time any rule asks about it and never again for that
item, and each distinct (leaf, field) lookup is computed once and shared by every
rule that uses it. Nothing here outlives the ``match`` call that built it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

from monitor.matching import fold
from monitor.matching.money import Amount, extract_amounts
from monitor.matching.nodes import Compare, Leaf, Near, Node, Not, Or, Regex, Term, leaf_fields
from monitor.matching.query import UNSCOPED_FIELDS
from monitor.matching.stem import FALLBACK, Stems, guess_language, same_word, stemmer_name
from monitor.matching.values import compare_value, describe_value
from monitor.models import Item

__all__ = ["MAX_PER_FIELD", "FieldIndex", "Hit", "ItemIndex", "Span"]

MAX_PER_FIELD = 20
"""Match records per rule and field; also where a regex stops looking in a field."""

Span = tuple[int, int]
"""``[start, end)`` in the original text of a field."""
Run = tuple[int, int]
"""The first and last token number of one occurrence."""


@dataclass(frozen=True, slots=True)
class Hit:
    """Where a leaf holds: ``text`` is what a Match record reports."""

    field: str
    start: int
    end: int
    text: str


class FieldIndex:
    """The tokens of one field and, for each folded token or stem, where it occurs."""

    def __init__(self, text: str, stems: Stems, language: Callable[[], str]) -> None:
        self.tokens = fold.tokenize(text)
        self._stems = stems
        # Resolved on first use: guessing the language may itself read this field.
        self._language = language
        self._positions: dict[str, list[int]] = {}
        for number, token in enumerate(self.tokens):
            self._positions.setdefault(token.text, []).append(number)
        self._sorted: list[str] | None = None
        self._stem_list: list[str] | None = None
        self._stem_positions: dict[str, list[int]] = {}

    def words(self) -> list[str]:
        return [token.text for token in self.tokens]

    def stems(self) -> list[str]:
        """The stem of every token, in order (computed once)."""
        if self._stem_list is None:
            self._stem_list = self._stems.words(self._language(), self.words())
            for number, stem in enumerate(self._stem_list):
                self._stem_positions.setdefault(stem, []).append(number)
        return self._stem_list

    def runs(self, term: Term) -> list[Run]:
        """First and last token number of every occurrence of ``term``, in text order."""
        size = len(term.tokens)
        wanted = (
            None if term.exact or term.prefix else self._stems.term(self._language(), term.tokens)
        )
        if wanted is not None:
            have = self.stems()
            starts = [
                n
                for n in self._stem_positions.get(wanted[0], [])
                if have[n : n + size] == list(wanted) and self._same_words(term, wanted, n)
            ]
        elif size == 1:
            first = term.tokens[0]
            starts = self._prefixed(first) if term.prefix else self._positions.get(first, [])
        else:
            starts = [
                n for n in self._positions.get(term.tokens[0], []) if self._continues(term, n)
            ]
        return [(n, n + size - 1) for n in starts]

    def _same_words(self, term: Term, stems: tuple[str, ...], start: int) -> bool:
        """Whether the tokens from ``start`` are forms of the term's words, not just
        words with the same stems (see ``stem.same_word``)."""
        tokens = self.tokens[start : start + len(stems)]
        return all(
            same_word(word, token.text, stem)
            for word, token, stem in zip(term.tokens, tokens, stems, strict=True)
        )

    def span(self, run: Run) -> Span:
        return self.tokens[run[0]].start, self.tokens[run[1]].end

    def _continues(self, term: Term, start: int) -> bool:
        """Whether the tokens from ``start`` on spell ``term`` (a phrase)."""
        size = len(term.tokens)
        if start + size > len(self.tokens):
            return False
        for offset in range(1, size):
            have, want = self.tokens[start + offset].text, term.tokens[offset]
            last = offset == size - 1
            if not (have.startswith(want) if last and term.prefix else have == want):
                return False
        return True

    def _prefixed(self, stem: str) -> list[int]:
        """Positions of every token starting with ``stem``, via bisection of the keys."""
        if self._sorted is None:
            self._sorted = sorted(self._positions)
        keys = self._sorted
        found: list[int] = []
        index = bisect_left(keys, stem)
        while index < len(keys) and keys[index].startswith(stem):
            found.extend(self._positions[keys[index]])
            index += 1
        return sorted(found)


class ItemIndex:
    """Lazy indexes of one item, and leaf lookups memoised per field.

    ``now`` anchors relative dates (``response_deadline<30d``); ``stems`` is the
    matcher's stemmer cache. The item's language is resolved as ``stem.py`` says.
    """

    def __init__(self, item: Item, stems: Stems, now: datetime) -> None:
        self.item = item
        # Strings, numbers and lists of strings (see Item.text_fields).
        self.texts: Mapping[str, str] = item.text_fields()
        self.now = now
        self._stems = stems
        self._language: str | None = stemmer_name(item.language)
        self._fields: dict[str, FieldIndex] = {}
        self._found: dict[tuple[Leaf, str], list[Hit]] = {}
        self._amounts: list[tuple[str, Amount]] | None = None

    @property
    def language(self) -> str:
        """The stemmer language: the item's own, else guessed from its text, else English."""
        if self._language is None:
            words: list[str] = []
            for name in UNSCOPED_FIELDS:
                if name in self.texts:
                    words.extend(self.field(name).words())
            self._language = guess_language(words) or FALLBACK
        return self._language

    def field(self, name: str) -> FieldIndex:
        index = self._fields.get(name)
        if index is None:
            index = FieldIndex(self.texts[name], self._stems, lambda: self.language)
            self._fields[name] = index
        return index

    def fields_of(self, leaf: Leaf) -> tuple[str, ...]:
        """The fields ``leaf`` reads that this item has."""
        if isinstance(leaf, Compare):
            return (leaf.field,)
        return tuple(name for name in leaf_fields(leaf, UNSCOPED_FIELDS) if name in self.texts)

    def find(self, leaf: Leaf, field: str) -> list[Hit]:
        key = (leaf, field)
        hits = self._found.get(key)
        if hits is None:
            hits = self._found[key] = self._lookup(leaf, field)
        return hits

    def _lookup(self, leaf: Leaf, field: str) -> list[Hit]:
        if isinstance(leaf, Compare):
            return self._compare(leaf)
        text = self.texts[field]
        if isinstance(leaf, Regex):
            return self._regex(leaf, field, text)
        index = self.field(field)
        if isinstance(leaf, Term):
            spans = [index.span(run) for run in index.runs(leaf)]
        else:
            spans = _near(index, leaf)
        return [Hit(field, start, end, text[start:end]) for start, end in spans]

    def _regex(self, leaf: Regex, field: str, text: str) -> list[Hit]:
        """Regex hits, accent-insensitive: run on the folded text, mapped back.

        Only the first MAX_PER_FIELD can be reported: ``/e/`` over a long text would
        otherwise build a record for every letter.
        """
        if text.isascii():
            found = islice(_non_empty(leaf.compiled.finditer(text)), MAX_PER_FIELD)
            return [Hit(field, m.start(), m.end(), m.group()) for m in found]
        folded, starts, ends = fold.fold_mapped(text)
        hits: list[Hit] = []
        for m in islice(_non_empty(leaf.compiled.finditer(folded)), MAX_PER_FIELD):
            start, end = starts[m.start()], ends[m.end() - 1]
            hits.append(Hit(field, start, end, text[start:end]))
        return hits

    def _compare(self, leaf: Compare) -> list[Hit]:
        if leaf.field == "amount":
            return [
                Hit(field, amount.start, amount.end, amount.text)
                for field, amount in self.amounts()
                if compare_value(leaf, amount.money(), self.now)
            ]
        value: Any = (
            self.item.published if leaf.field == "published" else self.item.fields.get(leaf.field)
        )
        values = value if isinstance(value, list) else [value]
        return [
            Hit(leaf.field, 0, len(describe_value(one)), describe_value(one))
            for one in values
            if compare_value(leaf, one, self.now)
        ]

    def amounts(self) -> list[tuple[str, Amount]]:
        """Money found in the title, summary and content, with the field of each."""
        if self._amounts is None:
            self._amounts = [
                (name, amount)
                for name in UNSCOPED_FIELDS
                if name in self.texts
                for amount in extract_amounts(self.texts[name])
            ]
        return self._amounts

    def holds(self, node: Node) -> bool:
        """Whether the query tree ``node`` is true for this item.

        Recursion depth follows the tree, which the parser bounds; plain loops keep
        it to one frame per level (``all()`` over a generator would cost three).
        """
        if isinstance(node, Term | Near | Regex | Compare):
            return any(self.find(node, name) for name in self.fields_of(node))
        if isinstance(node, Not):
            return not self.holds(node.child)
        wanted = isinstance(node, Or)  # an OR stops at the first true child, an AND at a false
        for child in node.children:
            if self.holds(child) is wanted:
                return wanted
        return not wanted


def _non_empty(found: Iterator[Any]) -> Iterator[Any]:
    """Regex matches of at least one character: an empty one names no text to alert on
    (the parser refuses such regexes; this holds for any it could not probe)."""
    return (m for m in found if m.end() > m.start())


def _near(index: FieldIndex, near: Near) -> list[Span]:
    """Spans of both terms wherever an occurrence of each is within the distance.

    Occurrences come in text order, so for each left one only the right ones that
    start inside its window are looked at (bisection): linear-ish, not |L| x |R|.
    """
    lefts, rights = index.runs(near.left), index.runs(near.right)
    starts = [run[0] for run in rights]
    size = len(near.right.tokens)
    spans: set[Span] = set()
    for left in lefts:
        low = bisect_left(starts, left[0] - near.distance - size)
        high = bisect_left(starts, left[1] + near.distance + 2)
        for right in rights[low:high]:
            # Words strictly between the two occurrences, whichever comes first.
            gap = right[0] - left[1] - 1 if left[0] <= right[0] else left[0] - right[1] - 1
            if gap <= near.distance and not _overlap(left, right):
                spans.add(index.span(left))
                spans.add(index.span(right))
    return sorted(spans)


def _overlap(one: Run, other: Run) -> bool:
    return one[0] <= other[1] and other[0] <= one[1]
