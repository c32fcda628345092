"""The rule matcher: a small query language and a pure evaluator over items.

    rule = compile_rule("clearview", "clearview AND (fine OR boete OR amende OR sanction*)")
    Matcher([rule]).match(item)  # [Match(rule="clearview", field="title", ...), ...]

Modules: ``fold`` (case/accent folding and tokens with original offsets),
``stem`` (Snowball word forms per language), ``lexer`` and ``query`` (the language
and its parser; the grammar is documented in ``query``), ``nodes`` (the syntax
tree), ``schema`` (the kind of each known field), ``values`` (comparisons),
``money`` and ``currencies`` (amounts in text), ``index`` (per-item indexes),
``compiled`` (the Aho-Corasick prefilter) and ``matcher`` (rules, evaluation and
explanations).
"""

from monitor.matching.matcher import MAX_PER_FIELD, Explanation, Matcher, Rule, compile_rule
from monitor.matching.nodes import And, Compare, Leaf, Near, Node, Not, Or, Query, Regex, Term
from monitor.matching.query import DEFAULT_FIELDS, MAX_DEPTH, UNSCOPED_FIELDS, parse_query

__all__ = [
    "DEFAULT_FIELDS",
    "MAX_DEPTH",
    "MAX_PER_FIELD",
    "UNSCOPED_FIELDS",
    "And",
    "Compare",
    "Explanation",
    "Leaf",
    "Matcher",
    "Near",
    "Node",
    "Not",
    "Or",
    "Query",
    "Regex",
    "Rule",
    "Term",
    "compile_rule",
    "parse_query",
]
