"""The rule query language (v2) and its parser.

A query says what an item must (or must not) contain::

    clearview AND (fine OR boete OR amende OR sanction*)
    "intent to award" NOT title:cancelled
    title:(clearview OR "clear view") sole-source
    clearview NEAR/10 fine amount>=1000000 EUR
    notice_type:"Special Notice" award_amount>=1e6 response_deadline<30d
    title:/clear ?view/ published>=2026-01-01

Grammar (lowest precedence first)::

    query    := or_expr
    or_expr  := and_expr ( "OR" and_expr )*
    and_expr := unary ( [ "AND" ] unary )*     two operands side by side are an AND
    unary    := "NOT" unary | near
    near     := scoped ( NEAR scoped )*         both sides words or phrases
    scoped   := [ FIELD ":" ] primary | COMPARE  no space after the colon
    primary  := WORD | PHRASE | REGEX | "(" or_expr ")"
    NEAR     := "NEAR/" digits                  at most that many words between
    COMPARE  := FIELD OP VALUE [ CURRENCY ]     no spaces inside FIELD OP VALUE
    OP       := ">=" | "<=" | ">" | "<" | "="
    VALUE    := number (1e6, 1_000_000) | ISO date or datetime | now | [+-]digits(h|d|w)
    CURRENCY := an ISO 4217 code in capitals (EUR, USD...), a separate word
    FIELD    := a letter or _, then letters, digits or _ (case-sensitive)
    WORD     := characters other than space, ( ) and ", optionally ending in *
    PHRASE   := '"' characters other than " '"'    a * may end its last word
    REGEX    := "/" RE2 pattern "/"                 backslash-slash for a slash inside

- **Operators** are ``AND``, ``OR``, ``NOT`` and ``NEAR/n`` in capitals; ``and``,
  ``or``, ``not``, ``near`` are ordinary words. ``NEAR`` binds tightest, then
  ``NOT``, then ``AND``, then ``OR``: ``a OR b c`` means ``a OR (b AND c)`` and
  ``NOT a NEAR/3 b`` means ``NOT (a NEAR/3 b)``. Parentheses nest up to 100 deep.
  ``a NEAR/5 b NEAR/5 c`` is ``(a NEAR/5 b) AND (b NEAR/5 c)``. A field prefix
  before the first side of a NEAR scopes both sides.
- **Words** match whole tokens, ignoring case and accents (see ``fold.py``), in any
  form of the same word in the item's language (Snowball stems, see ``stem.py``):
  ``fine`` matches ``Fine``, ``fines`` and ``fined`` but not ``define``;
  ``cafe`` matches ``Café``. A token is a run of letters and digits, so a word
  with punctuation inside is a phrase: ``sole-source`` matches ``sole source``,
  ``Sole-Source`` and ``sole-sourced``; ``6.302-1`` is the phrase ``6 302 1``.
- **Phrases** in double quotes match their tokens exactly and consecutively:
  ``"intent to award"`` does not match ``award ... intent to``, ``"fine"`` does not
  match ``fines``.
- **Wildcard**: a trailing ``*`` makes the last token a prefix: ``sanction*``
  matches ``sanction``, ``sanctions``, ``sanctioned``; ``"intent to award*"`` works
  too. A ``*`` anywhere else, or not right after a letter or digit, is an error.
- **Fields**: ``title:`` ``summary:`` ``content:`` (or the fields the caller allows)
  restrict a word, phrase, regex or group: ``title:(clearview OR "clear view")``.
  An unscoped term searches title, summary and content. A different field inside a
  scoped group (``title:(summary:x)``) is an error because it could never match.
  Money fields take comparisons, not words.
- **Regexes** are RE2 (linear time: no input can stall the matcher), case and
  accent insensitive (the text and the pattern's non-ASCII letters are folded).
  Backreferences and lookaround (which need backtracking), patterns that do not
  compile or that match the empty text are errors.
- **Comparisons** work on number, money and date fields (each source type declares
  its fields' kinds, ``SourceType.fields``; a field of unknown kind accepts both),
  on ``published`` and on ``amount`` (money found in the text, ``money.py``).
  ``30d`` is 30 days from the matcher's clock, ``-7d`` seven days before it.
  Comparing a text field, a date field with a number or a number field with a
  date, and an unknown currency code, are errors.
- ``-word`` is an error rather than a silently positive word: write ``NOT word``.
- ``NOT NOT x`` is ``x``. Every query needs a term that is not negated, and each
  alternative of an ``OR`` needs one too: ``NOT x`` or ``a OR NOT b`` would fire on
  items that contain none of the query's words, and every alert must be able to
  say what made it fire.

A bad query raises :class:`monitor.errors.QueryError` with the 0-based position of
the problem: the unclosed ``(`` or stray ``)``, the opening quote of an unterminated
phrase or regex, the operator that lacks an operand, the unknown field, the
misplaced ``*``, the bad value or currency of a comparison.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, NoReturn

import re2

from monitor.errors import QueryError
from monitor.matching.currencies import CODES
from monitor.matching.fold import fold_non_ascii, tokenize
from monitor.matching.lexer import Kind, Lexeme, lex
from monitor.matching.nodes import And, Compare, Leaf, Near, Node, Not, Or, Query, Regex, Term
from monitor.matching.schema import (
    ANY,
    BUILTIN_COMPARABLE,
    DATE,
    MONEY,
    NO_KINDS,
    NUMBER,
    TEXT,
    kind_of,
)
from monitor.matching.values import parse_date

__all__ = ["DEFAULT_FIELDS", "MAX_DEPTH", "UNSCOPED_FIELDS", "parse_query"]

DEFAULT_FIELDS: frozenset[str] = frozenset({"title", "summary", "content"})
# What a term without a field prefix searches, whatever fields the parser allows.
UNSCOPED_FIELDS: tuple[str, ...] = ("title", "summary", "content")
MAX_DEPTH = 100
MAX_NEAR = 1000
# RE2 compiles into bounded memory; a bigger program is refused rather than slow.
REGEX_MAX_MEM = 8 << 20

_OPERAND_START = frozenset(
    {Kind.WORD, Kind.PHRASE, Kind.LPAREN, Kind.NOT, Kind.FIELD, Kind.REGEX, Kind.COMPARE}
)
_LEAF_START = (Kind.WORD, Kind.PHRASE, Kind.LPAREN, Kind.REGEX, Kind.COMPARE)
_CURRENCY = re.compile(r"[A-Z]{3}")
_RELATIVE = re.compile(r"([+-]?)(\d{1,5})([hdw])")
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?"
)
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
# Texts in which a regex that can match the empty text shows it (see _matches_empty).
_EMPTY_PROBES = ("", "a", "a a", "1", "a.", " ", "a\n")
_BACKTRACKING = re.compile(r"\\[1-9]|\(\?<?[=!]|\\k<|\(\?P=")


def parse_query(
    text: str,
    *,
    fields: frozenset[str] = DEFAULT_FIELDS,
    kinds: Mapping[str, str] = NO_KINDS,
) -> Query:
    """Parse ``text`` into a :class:`Query`; raises QueryError on any problem.

    ``fields`` are the names allowed before a colon (``title:``); an unknown one is
    an error that lists them. ``kinds`` says what the non-built-in ones hold (text,
    number, money, date, bool: see ``schema.py``), as their source types declare.
    """
    root = _Parser(text, lex(text), fields, kinds).parse()
    _check_positive(text, root)
    return Query(text=text, root=root, terms=_positive_terms(root))


class _Parser:
    """Recursive descent over the lexemes; recursion is bounded by MAX_DEPTH."""

    def __init__(
        self,
        query: str,
        lexemes: list[Lexeme],
        fields: frozenset[str],
        kinds: Mapping[str, str],
    ) -> None:
        self._query = query
        self._lexemes = lexemes
        self._fields = fields
        self._kinds = kinds
        self._next = 0
        self._depth = 0
        self._field: str | None = None

    def parse(self) -> Node:
        if not self._lexemes:
            self._fail(0, "the query is empty")
        node = self._or(None)
        stray = self._peek()
        if stray is not None:  # only a ")" stops the loops above
            self._fail(stray.position, "this ')' has no matching '('")
        return node

    def _peek(self) -> Lexeme | None:
        return self._lexemes[self._next] if self._next < len(self._lexemes) else None

    def _take(self) -> Lexeme:
        lexeme = self._lexemes[self._next]
        self._next += 1
        return lexeme

    def _at(self, *kinds: Kind) -> bool:
        lexeme = self._peek()
        return lexeme is not None and lexeme.kind in kinds

    def _or(self, context: Lexeme | None) -> Node:
        # ``context`` is the lexeme that asked for this operand; errors point at it.
        children = [self._and(context)]
        while self._at(Kind.OR):
            operator = self._take()
            children.append(self._and(operator))
        return _combine(Or, children)

    def _and(self, context: Lexeme | None) -> Node:
        children = [self._unary(context)]
        while True:
            lexeme = self._peek()
            if lexeme is None:
                break
            if lexeme.kind is Kind.AND:
                children.append(self._unary(self._take()))
            elif lexeme.kind in _OPERAND_START:
                children.append(self._unary(None))
            else:
                break
        return _combine(And, children)

    def _near(self, left: Node, operator: Lexeme, chained: bool) -> Node:
        """``left NEAR/n right``; in a chain ``a NEAR/5 b NEAR/5 c`` each adjacent pair."""
        right = self._unary(operator, near=False)
        previous = left
        if chained:  # left is Near or And(..., Near): continue from its right side
            last = left.children[-1] if isinstance(left, And) else left
            assert isinstance(last, Near)
            previous = last.right
        if not isinstance(previous, Term) or not isinstance(right, Term):
            self._fail(operator.position, "NEAR joins two words or phrases, nothing else")
        if operator.number > MAX_NEAR:
            self._fail(operator.position, f"NEAR allows at most {MAX_NEAR} words between")
        near = Near(previous, right, operator.number, position=previous.position)
        return _combine(And, [left, near]) if chained else near

    def _unary(self, context: Lexeme | None, *, near: bool = True) -> Node:
        """NOTs, an optional field prefix, then a word, a phrase or a group.

        One method for all of it so each nesting level costs three frames (with
        ``_or`` and ``_and``): about 300 at MAX_DEPTH, far below the recursion limit.
        NOTs are counted in a loop, so ``NOT NOT ... x`` costs no recursion at all.
        """
        first: Lexeme | None = None
        count = 0
        while self._at(Kind.NOT):
            context = self._take()
            first = first or context
            count += 1
        outer = self._field
        if self._at(Kind.FIELD):
            context = self._take()
            self._field = self._scope(context)
        lexeme = self._peek()
        if lexeme is None or lexeme.kind not in _LEAF_START:
            self._missing_operand(context, lexeme)
        self._take()
        operand: Node
        if lexeme.kind is Kind.LPAREN:
            self._open(lexeme)
            operand = self._or(lexeme)
            self._close(lexeme)
        elif lexeme.kind is Kind.REGEX:
            operand = self._regex(lexeme)
        elif lexeme.kind is Kind.COMPARE:
            operand = self._compare(lexeme)
        else:
            if self._field is not None and kind_of(self._field, self._kinds) == MONEY:
                self._fail(
                    lexeme.position,
                    f"'{self._field}' holds money, not words; compare it: {self._field}>=1000000",
                )
            operand = _term(self._query, lexeme, self._field)
        # NEAR binds tighter than NOT (NOT a NEAR/3 b is NOT (a NEAR/3 b)); handled
        # here, not in a precedence level of its own, so that each nesting level
        # still costs three frames.
        chained = False
        while near and self._at(Kind.NEAR):
            operand = self._near(operand, self._take(), chained)
            chained = True
        self._field = outer
        if first is not None and count % 2:
            return Not(operand, position=first.position)
        return operand

    def _scope(self, prefix: Lexeme) -> str:
        """The field a ``name:`` prefix selects, if it exists and fits the outer scope."""
        name = prefix.text
        if name not in self._fields:
            known = ", ".join(sorted(self._fields))
            self._fail(prefix.position, f"unknown field '{name}'; known fields: {known}")
        if self._field is not None and name != self._field:
            self._fail(prefix.position, f"'{name}:' inside '{self._field}:(...)' can never match")
        return name

    def _regex(self, lexeme: Lexeme) -> Regex:
        """Compile ``/pattern/`` with RE2: linear time, so no input can stall it."""
        pattern = lexeme.text
        if not pattern:
            self._fail(lexeme.position, "empty regex '//'; put a pattern between the slashes")
        if self._field is not None and kind_of(self._field, self._kinds) not in (TEXT, ANY):
            self._fail(lexeme.position, f"a regex searches text and '{self._field}' is not text")
        if _BACKTRACKING.search(pattern):
            self._fail(
                lexeme.position,
                "backreferences and lookaround need backtracking, which can stall the matcher; "
                "rewrite the regex without them (RE2 syntax)",
            )
        options = re2.Options()
        options.case_sensitive = False
        options.log_errors = False
        options.max_mem = REGEX_MAX_MEM
        try:
            # Texts are searched folded (see index.py), so accents in the pattern fold too.
            compiled = re2.compile(fold_non_ascii(pattern), options)
        except re2.error as e:
            detail = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
            self._fail(lexeme.position, f"the regex does not compile: {detail}")
        if _matches_empty(compiled):
            self._fail(
                lexeme.position,
                "this regex matches an empty text, so it would match every item; "
                "make it require at least one character",
            )
        return Regex(pattern, self._field, compiled, position=lexeme.position)

    def _compare(self, lexeme: Lexeme) -> Compare:
        """``field OP value [CURRENCY]``, checked against what the field holds."""
        if self._field is not None:
            self._fail(lexeme.position, f"a comparison names its own field; drop '{self._field}:'")
        match = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(>=|<=|>|<|=)(.*)", lexeme.text)
        assert match is not None  # the lexer only emits comparisons of this shape
        name, op, raw = match.groups()
        at = lexeme.position + len(name) + len(op)
        if name not in self._fields and name not in BUILTIN_COMPARABLE:
            known = ", ".join(sorted(self._fields | BUILTIN_COMPARABLE))
            self._fail(lexeme.position, f"unknown field '{name}'; known fields: {known}")
        kind = kind_of(name, self._kinds)
        if kind not in (NUMBER, MONEY, DATE, ANY):
            self._fail(
                lexeme.position,
                f"'{name}' is a {kind} field: comparisons need a number, money or date field; "
                f"search text with {name}:word",
            )
        if not raw:
            self._fail(at, f"'{name}{op}' needs a value: a number, a date or a duration like 30d")
        relative = _RELATIVE.fullmatch(raw)
        dated = raw == "now" or relative is not None or _ISO_DATE.fullmatch(raw) is not None
        currency = self._currency(amount=not dated)
        if raw == "now" or relative:
            if relative:
                sign = -1 if relative.group(1) == "-" else 1
                offset = _UNITS[relative.group(3)] * int(relative.group(2)) * sign
            else:
                offset = timedelta(0)
            self._check_kind(name, kind, DATE, at)
            self._no_currency(currency)
            return Compare(name, op, "relative", offset=offset, text=lexeme.text, position=at)
        if _ISO_DATE.fullmatch(raw):
            if parse_date(raw) is None:
                self._fail(at, f"'{raw}' is not a valid date; write YYYY-MM-DD")
            self._check_kind(name, kind, DATE, at)
            self._no_currency(currency)
            return Compare(name, op, "date", value=raw, text=lexeme.text, position=at)
        try:
            number = float(raw.replace("_", ""))
        except ValueError:
            self._fail(
                at,
                f"'{raw}' is not a number, a date (2026-01-01) or a duration from now (30d, -7d)",
            )
        if number != number or number in (float("inf"), float("-inf")):
            self._fail(at, f"'{raw}' is not a finite number")
        self._check_kind(name, kind, NUMBER, at)
        if kind == NUMBER and currency is not None:
            # A plain number never carries a currency, so the rule could never match.
            self._fail(
                currency.position,
                f"'{name}' holds a plain number without a currency; drop '{currency.text}'",
            )
        text = lexeme.text if currency is None else f"{lexeme.text} {currency.text}"
        code = None if currency is None else currency.text
        return Compare(name, op, "number", value=number, currency=code, text=text, position=at)

    def _currency(self, *, amount: bool) -> Lexeme | None:
        """The ISO code right after a comparison (``amount>=1e6 EUR``), if any."""
        lexeme = self._peek()
        if lexeme is None or lexeme.kind is not Kind.WORD:
            return None
        if amount and lexeme.text.upper() in CODES and not _CURRENCY.fullmatch(lexeme.text):
            # "amount>=1e6 eur" would otherwise search for the word "eur".
            self._fail(
                lexeme.position,
                f"write the currency in capitals ({lexeme.text.upper()}), "
                f"or AND {lexeme.text} to search for the word",
            )
        if not _CURRENCY.fullmatch(lexeme.text):
            return None
        self._take()
        if lexeme.text not in CODES:
            self._fail(
                lexeme.position,
                f"unknown currency '{lexeme.text}'; use an ISO 4217 code such as EUR, USD or GBP",
            )
        return lexeme

    def _no_currency(self, currency: Lexeme | None) -> None:
        if currency is not None:
            self._fail(currency.position, "a currency only goes with an amount, not a date")

    def _check_kind(self, name: str, kind: str, wanted: str, at: int) -> None:
        if kind == ANY:
            return
        if wanted == DATE and kind != DATE:
            self._fail(at, f"'{name}' holds {kind} values; compare it with a number, not a date")
        if wanted == NUMBER and kind == DATE:
            self._fail(
                at, f"'{name}' holds dates; compare it with a date (2026-01-01) or a duration (30d)"
            )

    def _open(self, opening: Lexeme) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._fail(opening.position, f"nesting deeper than {MAX_DEPTH} parentheses")

    def _close(self, opening: Lexeme) -> None:
        if not self._at(Kind.RPAREN):
            self._fail(opening.position, "this '(' is never closed")
        self._take()
        self._depth -= 1

    def _missing_operand(self, context: Lexeme | None, found: Lexeme | None) -> NoReturn:
        """Explain why there is no operand where one was expected, at the right place."""
        if context is not None and context.kind is Kind.FIELD:
            after = context.position + len(context.text) + 1
            self._fail(
                after, f"'{context.text}:' must be directly followed by a word, a phrase or '('"
            )
        if context is not None and context.kind is Kind.LPAREN:
            if found is None:
                self._fail(context.position, "this '(' is never closed")
            if found.kind is Kind.RPAREN:
                self._fail(context.position, "empty parentheses '()'")
            context = None  # "(AND x)": the operator is the problem, not the "("
        if context is not None:
            self._fail(context.position, _needs(context.kind))
        if found is None or found.kind is Kind.RPAREN:
            # Only reachable at the very start: "" is caught earlier, so this is ")".
            position = found.position if found else len(self._query)
            self._fail(position, "this ')' has no matching '('")
        self._fail(found.position, _needs(found.kind))

    def _fail(self, position: int, reason: str) -> NoReturn:
        raise QueryError(self._query, position, reason)


def _matches_empty(compiled: Any) -> bool:
    """Whether the regex matches an empty text anywhere in a few small probes.

    ``\\b`` or ``(?:fine)?\\b`` find nothing in "" yet match the empty text at every
    word boundary, so they would fire on every item; the probes catch those.
    """
    return any(
        match.start() == match.end()
        for probe in _EMPTY_PROBES
        for match in compiled.finditer(probe)
    )


def _needs(kind: Kind) -> str:
    if kind is Kind.NOT:
        return "NOT needs a term after it"
    if kind is Kind.NEAR:
        return "NEAR needs a word or phrase on both sides"
    return f"{kind.value} needs a term on both sides"


def _combine(kind: type[And] | type[Or], children: list[Node]) -> Node:
    """One child stays itself; nested nodes of the same kind are flattened."""
    if len(children) == 1:
        return children[0]
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return kind(tuple(flat), position=flat[0].position)


def _term(query: str, lexeme: Lexeme, field: str | None) -> Term:
    """Fold a word or phrase into a Term, checking its wildcard and its tokens."""
    raw = lexeme.text.rstrip()  # '"award* "' still ends its last word with the *
    # A phrase's text starts one character after its opening quote.
    offset = lexeme.position + (1 if lexeme.kind is Kind.PHRASE else 0)
    if lexeme.kind is Kind.PHRASE and not raw.strip():
        raise QueryError(query, lexeme.position, "empty phrase; put words between the quotes")
    if lexeme.kind is Kind.WORD and len(raw) > 1 and raw[0] == "-" and raw[1].isalnum():
        hint = f"write NOT {raw[1:]} to exclude it"
        raise QueryError(query, lexeme.position, f"a leading '-' does not exclude a word; {hint}")
    star = raw.find("*")
    prefix = star != -1
    if prefix and star != len(raw) - 1:
        raise QueryError(query, offset + star, "'*' is only allowed at the end of a word")
    stem = raw[:-1] if prefix else raw
    tokens = tokenize(stem)
    if not tokens and prefix:
        raise QueryError(query, offset + star, "a '*' needs letters or digits before it")
    if not tokens:
        raise QueryError(
            query, lexeme.position, f"nothing to search for: {raw!r} has no letters or digits"
        )
    if prefix and tokens[-1].end != len(stem):
        raise QueryError(query, offset + star, "'*' must come right after a letter or digit")
    words = tuple(token.text for token in tokens)
    exact = lexeme.kind is Kind.PHRASE
    return Term(words, prefix=prefix, field=field, exact=exact, text=raw, position=lexeme.position)


def _check_positive(query: str, root: Node) -> None:
    """Refuse a query that could be true for an item containing none of its terms."""
    culprit = _unanchored(root)
    if culprit is None:
        return
    if not _positive_terms(root):
        reason = (
            "a query needs at least one term that is not negated "
            "(otherwise the rule would fire on almost every item)"
        )
    else:
        reason = (
            "each side of OR needs a term that is not negated "
            "(otherwise the rule would fire on items that contain none of its words)"
        )
    raise QueryError(query, culprit.position, reason)


def _unanchored(node: Node) -> Node | None:
    """The node that can be true without any positive term occurring, if any.

    A leaf anchors itself; an AND is anchored by any anchored child; an OR needs
    every child anchored; a NOT anchors nothing. Depth is bounded by the parser.
    """
    if isinstance(node, Term | Near | Regex | Compare):
        return None
    if isinstance(node, Not):
        return node
    culprits: list[Node] = []
    for child in node.children:  # a loop, not a comprehension: one frame per level
        culprit = _unanchored(child)
        if culprit is None and isinstance(node, And):
            return None
        if culprit is not None:
            culprits.append(culprit)
    return culprits[0] if culprits else None  # an AND got here only if all had one


def _positive_terms(root: Node) -> tuple[Leaf, ...]:
    """Leaves not under a NOT, in query order, each once (iterative walk)."""
    found: dict[Leaf, None] = {}
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, Term | Near | Regex | Compare):
            found.setdefault(node)
        elif isinstance(node, And | Or):
            stack.extend(reversed(node.children))
    return tuple(found)
