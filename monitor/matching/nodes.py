"""The syntax tree of a parsed query: leaves, ``Not``, ``And``, ``Or`` and ``Query``.

Leaves are ``Term`` (words and phrases), ``Near`` (two terms close together),
``Regex`` (``/pattern/`` on a field) and ``Compare`` (``award_amount>=1e6``).

Nodes are immutable values. ``str()`` of a node renders it back as a fully
parenthesised query in folded form, which makes precedence visible::

    str(parse_query("a OR b c"))  ->  '(a OR (b AND c))'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

__all__ = [
    "And",
    "Compare",
    "Leaf",
    "Near",
    "Node",
    "Not",
    "Or",
    "Query",
    "Regex",
    "Term",
    "leaf_fields",
    "render",
]


@dataclass(frozen=True, slots=True)
class Term:
    """Folded tokens that must occur consecutively, as whole tokens.

    ``prefix`` makes the last token a prefix (``sanction*``). ``field`` is the one
    field the term searches, or None for the unscoped default (title, summary and
    content). ``exact`` terms were quoted: they match their tokens as written, while
    the others also match other forms of the same word (``fines`` for ``fine``, see
    ``stem.py``). ``text`` and ``position`` say where the term was written; they are
    not part of equality, so the same term written twice compares (and hashes) equal.
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    field: str | None = None
    exact: bool = False
    # Qualified: the member ``field`` above shadows the dataclasses helper here.
    text: str = dataclasses.field(default="", compare=False)
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        star = "*" if self.prefix else ""
        if self.exact:
            body = '"' + " ".join(self.tokens) + star + '"'
        else:  # an unquoted word with punctuation inside, written back as one word
            body = "-".join(self.tokens) + star
        return f"{self.field}:{body}" if self.field else body


@dataclass(frozen=True, slots=True)
class Near:
    """``left NEAR/distance right``: both terms in one field, at most ``distance``
    words between them, in either order."""

    left: Term
    right: Term
    distance: int
    position: int = dataclasses.field(default=0, compare=False)

    def fields(self, unscoped: tuple[str, ...]) -> tuple[str, ...]:
        """The fields both sides may search (a scoped side narrows the other)."""
        left = (self.left.field,) if self.left.field else unscoped
        right = (self.right.field,) if self.right.field else unscoped
        return tuple(name for name in left if name in right)

    def __str__(self) -> str:
        return f"({self.left} NEAR/{self.distance} {self.right})"


@dataclass(frozen=True, slots=True)
class Regex:
    """``/pattern/`` (RE2 syntax, ignoring case and accents) on ``field`` or the unscoped fields.

    ``compiled`` is the RE2 program; it is not part of equality.
    """

    pattern: str
    field: str | None = None
    compiled: Any = dataclasses.field(default=None, compare=False, hash=False, repr=False)
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        body = "/" + self.pattern.replace("/", "\\/") + "/"
        return f"{self.field}:{body}" if self.field else body


@dataclass(frozen=True, slots=True)
class Compare:
    """``field OP value``: a number, money, date or relative-date comparison.

    ``kind`` is ``number`` (``value`` a float; ``currency`` an ISO 4217 code or
    None for any), ``date`` (``value`` an ISO date or datetime string in UTC) or
    ``relative`` (``offset`` from the matcher's clock: ``30d`` is 30 days from now).
    """

    field: str
    op: str
    kind: str
    value: float | str = 0.0
    currency: str | None = None
    offset: timedelta = timedelta(0)
    text: str = dataclasses.field(default="", compare=False)
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return self.text


Leaf = Term | Near | Regex | Compare


@dataclass(frozen=True, slots=True)
class Not:
    """True when ``child`` is false. Terms under a Not never produce matches."""

    child: Node
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return render(self)


@dataclass(frozen=True, slots=True)
class And:
    """True when every child is true (two or more children)."""

    children: tuple[Node, ...]
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return render(self)


@dataclass(frozen=True, slots=True)
class Or:
    """True when at least one child is true (two or more children)."""

    children: tuple[Node, ...]
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        return render(self)


Node = Term | Near | Regex | Compare | Not | And | Or


def leaf_fields(leaf: Leaf, unscoped: tuple[str, ...]) -> tuple[str, ...]:
    """The item fields ``leaf`` reads; ``unscoped`` for a term without a field."""
    if isinstance(leaf, Near):
        return leaf.fields(unscoped)
    if isinstance(leaf, Compare):
        return unscoped if leaf.field == "amount" else (leaf.field,)
    return (leaf.field,) if leaf.field else unscoped


def render(node: Node) -> str:
    """``node`` as a fully parenthesised query in folded form.

    Plain loops rather than nested ``str()`` calls and generators: each tree level
    then costs one frame, which matters for queries nested MAX_DEPTH deep.
    """
    if isinstance(node, Term | Near | Regex | Compare):
        return str(node)
    if isinstance(node, Not):
        return "NOT " + render(node.child)
    parts: list[str] = []
    for child in node.children:
        parts.append(render(child))
    operator = " AND " if isinstance(node, And) else " OR "
    return "(" + operator.join(parts) + ")"


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the text as written, its tree, and its positive leaves.

    ``terms`` are the leaves not under a NOT, in query order without repeats: the
    ones a match reports. The parser guarantees that whenever ``root`` is true for
    an item, at least one of them holds in it.
    """

    text: str
    root: Node
    terms: tuple[Leaf, ...]

    def __str__(self) -> str:
        return str(self.root)

    def fields(self, unscoped: tuple[str, ...]) -> frozenset[str]:
        """Every field any term searches, negated ones included; ``unscoped`` for bare terms."""
        found: set[str] = set()
        stack: list[Node] = [self.root]
        while stack:  # iterative: trees nest MAX_DEPTH deep
            node = stack.pop()
            if isinstance(node, Term | Near | Regex | Compare):
                found.update(leaf_fields(node, unscoped))
            elif isinstance(node, Not):
                stack.append(node.child)
            else:
                stack.extend(node.children)
        return frozenset(found)
