"""The rule matcher: a small query language and a pure evaluator over items.

    rule = compile_rule("clearview", "clearview AND (fine OR boete OR amende OR sanction*)")
    Matcher([rule]).match(item)  # [Match(rule="clearview", field="title", ...), ...]

Modules: ``fold`` (case/accent folding and tokens with original offsets),
``lexer`` and ``query`` (the language and its parser; the grammar is documented in
``query``), ``nodes`` (the syntax tree), ``index`` (per-item token indexes) and
``matcher`` (rules and evaluation).
"""

from monitor.matching.matcher import MAX_PER_FIELD, Matcher, Rule, compile_rule
from monitor.matching.nodes import And, Node, Not, Or, Query, Term
from monitor.matching.query import DEFAULT_FIELDS, MAX_DEPTH, UNSCOPED_FIELDS, parse_query

__all__ = [
    "DEFAULT_FIELDS",
    "MAX_DEPTH",
    "MAX_PER_FIELD",
    "UNSCOPED_FIELDS",
    "And",
    "Matcher",
    "Node",
    "Not",
    "Or",
    "Query",
    "Rule",
    "Term",
    "compile_rule",
    "parse_query",
]
