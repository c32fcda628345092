"""Split a query into lexemes: words, phrases, parentheses, operators, field prefixes.

The lexer knows the shape of the language but not its meaning: it does not know
which fields exist or whether an operator has operands (the parser checks both).
It raises :class:`QueryError` only for an unterminated quote or regex, for a field
prefix with nothing right after it and for ``NEAR`` without ``/n``.
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
    NEAR = "NEAR"
    REGEX = "regex"
    COMPARE = "comparison"


@dataclass(frozen=True, slots=True)
class Lexeme:
    """``text`` is the word, the phrase without its quotes, or the field name.

    ``position`` is where the lexeme starts in the query (the opening quote of a
    phrase, the first letter of a field name, the opening ``/`` of a regex). A
    ``NEAR`` carries its distance in ``number``; a regex's ``text`` is its pattern
    with ``\\/`` unescaped; a comparison's ``text`` is the whole ``field>=value``.
    """

    kind: Kind
    text: str
    position: int
    number: int = 0


_KEYWORDS = {"AND": Kind.AND, "OR": Kind.OR, "NOT": Kind.NOT}
# A bare run ends at whitespace, a parenthesis or a quote.
_RUN = re.compile(r'[^\s()"]+')
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*:")
_SPACE = re.compile(r"\s+")
_NEAR = re.compile(r"NEAR(?:/(\d{1,6}))?")
_COMPARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:>=|<=|>|<|=)")


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
        elif char == "/":
            pos = _regex(query, pos, lexemes)
        else:
            pos = _bare(query, pos, lexemes)
    return lexemes


def _phrase(query: str, pos: int, lexemes: list[Lexeme]) -> int:
    close = query.find('"', pos + 1)
    if close == -1:
        raise QueryError(query, pos, 'this quote is never closed; add a closing "')
    lexemes.append(Lexeme(Kind.PHRASE, query[pos + 1 : close], pos))
    return close + 1


def _regex(query: str, pos: int, lexemes: list[Lexeme]) -> int:
    """``/pattern/``: the pattern runs to the next ``/`` not escaped by a backslash."""
    index = pos + 1
    while index < len(query):
        if query[index] == "\\":
            index += 2
            continue
        if query[index] == "/":
            pattern = query[pos + 1 : index].replace("\\/", "/")
            lexemes.append(Lexeme(Kind.REGEX, pattern, pos))
            return index + 1
        index += 1
    raise QueryError(query, pos, "this '/' starts a regex that is never closed; end it with '/'")


def _bare(query: str, pos: int, lexemes: list[Lexeme]) -> int:
    run = _RUN.match(query, pos)
    assert run is not None  # the caller saw a character that starts a run
    if run.group() == "NEAR" or run.group().startswith("NEAR/"):
        near = _NEAR.fullmatch(run.group())
        if near is None or near.group(1) is None:
            raise QueryError(query, pos, "NEAR needs a distance in words: write NEAR/10")
        lexemes.append(Lexeme(Kind.NEAR, run.group(), pos, int(near.group(1))))
        return run.end()
    if run.group() in (">=", "<=", ">", "<", "="):
        raise QueryError(query, pos, "write a comparison without spaces around it: amount>=1000000")
    if _COMPARE.match(run.group()):
        lexemes.append(Lexeme(Kind.COMPARE, run.group(), pos))
        return run.end()
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
