"""The syntax tree of a parsed query: ``Term``, ``Not``, ``And``, ``Or`` and ``Query``.

Nodes are immutable values. ``str()`` of a node renders it back as a fully
parenthesised query in folded form, which makes precedence visible::

    str(parse_query("a OR b c"))  ->  '(a OR (b AND c))'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["And", "Node", "Not", "Or", "Query", "Term", "render"]


@dataclass(frozen=True, slots=True)
class Term:
    """Folded tokens that must occur consecutively, as whole tokens.

    ``prefix`` makes the last token a prefix (``sanction*``). ``field`` is the one
    field the term searches, or None for the unscoped default (title, summary and
    content). ``text`` and ``position`` say where the term was written; they are not
    part of equality, so the same term written twice compares (and hashes) equal.
    """

    tokens: tuple[str, ...]
    prefix: bool = False
    field: str | None = None
    # Qualified: the member ``field`` above shadows the dataclasses helper here.
    text: str = dataclasses.field(default="", compare=False)
    position: int = dataclasses.field(default=0, compare=False)

    def __str__(self) -> str:
        body = " ".join(self.tokens) + ("*" if self.prefix else "")
        if len(self.tokens) > 1:
            body = f'"{body}"'
        return f"{self.field}:{body}" if self.field else body


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


Node = Term | Not | And | Or


def render(node: Node) -> str:
    """``node`` as a fully parenthesised query in folded form.

    Plain loops rather than nested ``str()`` calls and generators: each tree level
    then costs one frame, which matters for queries nested MAX_DEPTH deep.
    """
    if isinstance(node, Term):
        return Term.__str__(node)
    if isinstance(node, Not):
        return "NOT " + render(node.child)
    parts: list[str] = []
    for child in node.children:
        parts.append(render(child))
    operator = " AND " if isinstance(node, And) else " OR "
    return "(" + operator.join(parts) + ")"


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query: the text as written, its tree, and its positive terms.

    ``terms`` are the terms not under a NOT, in query order without repeats: the
    ones a match reports. The parser guarantees that whenever ``root`` is true for
    an item, at least one of them occurs in it.
    """

    text: str
    root: Node
    terms: tuple[Term, ...]

    def __str__(self) -> str:
        return str(self.root)

    def fields(self, unscoped: tuple[str, ...]) -> frozenset[str]:
        """Every field any term searches, negated ones included; ``unscoped`` for bare terms."""
        found: set[str] = set()
        stack: list[Node] = [self.root]
        while stack:  # iterative: trees nest MAX_DEPTH deep
            node = stack.pop()
            if isinstance(node, Term):
                found.update((node.field,) if node.field else unscoped)
            elif isinstance(node, Not):
                stack.append(node.child)
            else:
                stack.extend(node.children)
        return frozenset(found)
