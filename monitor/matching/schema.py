"""What kind of value each known item field holds, for checking queries.

Terms search text; comparisons need numbers, money or dates. Knowing the kind of
a field lets the parser reject ``title>=5`` (a comparison on text) or
``posted>=1000`` (a number against a date) when the rule is loaded rather than
never matching. Source types declare the kinds of the fields they add
(``SourceType.fields``); a field of unknown kind is ``any``: both kinds of test are
allowed and a value of the wrong type simply never matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BUILTIN_COMPARABLE", "BUILTIN_KINDS", "NO_KINDS", "kind_of"]

TEXT, NUMBER, MONEY, DATE, BOOL, ANY = "text", "number", "money", "date", "bool", "any"

# The fields every item has that comparisons read: ``published`` (the item's date)
# and ``amount`` (money found in its title, summary and content, see money.py).
BUILTIN_COMPARABLE: frozenset[str] = frozenset({"published", "amount"})

# The fields every item has. A source type declares the kinds of its own fields
# (``SourceType.fields``), and the caller hands them to the parser as ``kinds``.
BUILTIN_KINDS: Mapping[str, str] = MappingProxyType(
    {"title": TEXT, "summary": TEXT, "content": TEXT, "published": DATE, "amount": MONEY}
)
NO_KINDS: Mapping[str, str] = MappingProxyType({})


def kind_of(field: str, kinds: Mapping[str, str] = NO_KINDS) -> str:
    """The kind of ``field``'s values: a built-in's, else as ``kinds`` declares, else ``any``."""
    return BUILTIN_KINDS.get(field) or kinds.get(field, ANY)
