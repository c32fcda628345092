"""Per-item token indexes: where each term occurs, found once per ``Matcher.match``.

An :class:`ItemIndex` wraps the text fields of one item. A field is tokenized the
first time any rule asks about it and never again for that item, and each distinct
(term, field) lookup is computed once and shared by every rule that uses the term.
Nothing here outlives the ``match`` call that built it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

from monitor.matching import fold
from monitor.matching.nodes import Node, Not, Or, Term
from monitor.matching.query import UNSCOPED_FIELDS

__all__ = ["FieldIndex", "ItemIndex", "Span"]

Span = tuple[int, int]
"""``[start, end)`` in the original text of a field."""


class FieldIndex:
    """The tokens of one field and, for each folded token, where it occurs."""

    def __init__(self, text: str) -> None:
        self.tokens = fold.tokenize(text)
        self._positions: dict[str, list[int]] = {}
        for number, token in enumerate(self.tokens):
            self._positions.setdefault(token.text, []).append(number)
        self._sorted: list[str] | None = None

    def find(self, term: Term) -> list[Span]:
        """The original spans of every occurrence of ``term``, in text order."""
        first, size = term.tokens[0], len(term.tokens)
        if size == 1:
            starts = self._prefixed(first) if term.prefix else self._positions.get(first, [])
        else:
            starts = [n for n in self._positions.get(first, []) if self._continues(term, n)]
        return [(self.tokens[n].start, self.tokens[n + size - 1].end) for n in starts]

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
    """Lazy indexes of an item's text fields, and term lookups memoised per field."""

    def __init__(self, texts: Mapping[str, str]) -> None:
        self.texts = texts
        self._fields: dict[str, FieldIndex] = {}
        self._found: dict[tuple[Term, str], list[Span]] = {}

    def fields_of(self, term: Term) -> tuple[str, ...]:
        """The fields ``term`` may search that this item has."""
        wanted = UNSCOPED_FIELDS if term.field is None else (term.field,)
        return tuple(name for name in wanted if name in self.texts)

    def find(self, term: Term, field: str) -> list[Span]:
        key = (term, field)
        spans = self._found.get(key)
        if spans is None:
            index = self._fields.get(field)
            if index is None:
                index = self._fields[field] = FieldIndex(self.texts[field])
            spans = self._found[key] = index.find(term)
        return spans

    def holds(self, node: Node) -> bool:
        """Whether the query tree ``node`` is true for this item.

        Recursion depth follows the tree, which the parser bounds; plain loops keep
        it to one frame per level (``all()`` over a generator would cost three).
        """
        if isinstance(node, Term):
            return any(self.find(node, field) for field in self.fields_of(node))
        if isinstance(node, Not):
            return not self.holds(node.child)
        wanted = isinstance(node, Or)  # an OR stops at the first true child, an AND at a false
        for child in node.children:
            if self.holds(child) is wanted:
                return wanted
        return not wanted
