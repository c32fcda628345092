"""Split a query into lexemes: words, phrases, parentheses, operators, field prefixes.

The lexer knows the shape of the language but not its meaning: it does not know
which fields exist or whether an operator has operands (the parser checks both).
It raises :class:`QueryError` only for an unterminated quote and for a field prefix
with nothing right after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from monitor.errors import QueryError

__all__ = ["Kind", "Lexeme", "lex"]


class Kind(Enum):
    WORD = "word"
    PHRASE = "phrase"
    LPAREN = "("
    RPAREN = ")"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    FIELD = "field"


@dataclass(frozen=True, slots=True)
class Lexeme:
    """``text`` is the word, the phrase without its quotes, or the field name.

    ``position`` is where the lexeme starts in the query (the opening quote of a
    phrase, the first letter of a field name).
    """

    kind: Kind
    text: str
    position: int


_KEYWORDS = {"AND": Kind.AND, "OR": Kind.OR, "NOT": Kind.NOT}
# A bare run ends at whitespace, a parenthesis or a quote.
_RUN = re.compile(r'[^\s()"]+')
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:")
_SPACE = re.compile(r"\s+")


def lex(query: str) -> list[Lexeme]:
    """The lexemes of ``query`` in order; raises QueryError as described above."""
    lexemes: list[Lexeme] = []
    pos = 0
    while pos < len(query):
        space = _SPACE.match(query, pos)
        if space:
            pos = space.end()
            continue
        char = query[pos]
        if char in "()":
            lexemes.append(Lexeme(Kind.LPAREN if char == "(" else Kind.RPAREN, char, pos))
            pos += 1
        elif char == '"':
            pos = _phrase(query, pos, lexemes)
        else:
            pos = _bare(query, pos, lexemes)
    return lexemes


def _phrase(query: str, pos: int, lexemes: list[Lexeme]) -> int:
    close = query.find('"', pos + 1)
    if close == -1:
        raise QueryError(query, pos, 'this quote is never closed; add a closing "')
    lexemes.append(Lexeme(Kind.PHRASE, query[pos + 1 : close], pos))
    return close + 1


def _bare(query: str, pos: int, lexemes: list[Lexeme]) -> int:
    run = _RUN.match(query, pos)
    assert run is not None  # the caller saw a character that starts a run
    field = _FIELD.match(query, pos)
    if field is None:
        text = run.group()
        lexemes.append(Lexeme(_KEYWORDS.get(text, Kind.WORD), text, pos))
        return run.end()
    after = field.end()
    if after == len(query) or query[after].isspace() or query[after] == ")":
        name = field.group()
        raise QueryError(
            query, after, f"'{name}' must be directly followed by a word, a phrase or '('"
        )
    lexemes.append(Lexeme(Kind.FIELD, field.group()[:-1], pos))
    return after
