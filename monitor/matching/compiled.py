"""One Aho-Corasick automaton for the words of every rule: which rules can match.

Evaluating 10,000 queries on every item is wasteful when an item mentions the
words of a handful. Each rule gets a *trigger*: a set of its terms at least one of
which must occur for the rule to be true (a term is its own trigger, an AND takes
its cheapest child's, an OR needs all of its children's, NEAR takes one side's).
Rules whose truth does not depend on a term occurring (a lone regex or
comparison) have no trigger and are always evaluated.

All trigger terms go into one automaton per stemming language (pyahocorasick),
built on the first item of that language. An item's fields are scanned once, as
a stream of its folded tokens ``" tok tok "`` followed by its stems
``" \\x01stem \\x01stem "``: an exact word is the key ``" fine "``, a prefix
``" sanction"``, a stemmed word ``" \\x01fine "``. The rules whose trigger terms
were seen are the candidates; only those are evaluated, in rule order. The
prefilter is conservative: a candidate may still be false, but a rule that is not
a candidate cannot be true (tests compare it with evaluating every rule).
"""

from __future__ import annotations

from collections.abc import Sequence

import ahocorasick

from monitor.matching.index import ItemIndex
from monitor.matching.nodes import And, Near, Node, Or, Term
from monitor.matching.query import UNSCOPED_FIELDS
from monitor.matching.stem import Stems

__all__ = ["Prefilter", "trigger"]

_STEM = "\x01"


def trigger(node: Node) -> frozenset[Term] | None:
    """Terms of which at least one occurs whenever ``node`` is true, or None."""
    if isinstance(node, Term):
        return frozenset((node,))
    if isinstance(node, Near):
        return frozenset((node.left,))
    if isinstance(node, And):
        best: frozenset[Term] | None = None
        for child in node.children:
            found = trigger(child)
            if found is not None and (best is None or len(found) < len(best)):
                best = found
        return best
    if isinstance(node, Or):
        union: set[Term] = set()
        for child in node.children:
            found = trigger(child)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    return None  # Not, Regex, Compare: true without any word occurring


class Prefilter:
    """The candidate rules for an item, found with one automaton scan."""

    def __init__(self, roots: Sequence[Node], stems: Stems) -> None:
        self._stems = stems
        self._always: list[int] = []
        self._rules_of: dict[Term, list[int]] = {}
        fields: set[str] = set()
        for number, root in enumerate(roots):
            terms = trigger(root)
            if terms is None:
                self._always.append(number)
                continue
            for term in terms:
                self._rules_of.setdefault(term, []).append(number)
                fields.update((term.field,) if term.field else UNSCOPED_FIELDS)
        self._fields = tuple(sorted(fields))
        self._automata: dict[str, tuple[ahocorasick.Automaton | None, bool]] = {}

    def candidates(self, index: ItemIndex) -> list[int]:
        """Numbers of the rules that may be true for the item, ascending."""
        automaton, stemmed = self._automaton(index.language)
        found = set(self._always)
        if automaton is None:
            return sorted(found)
        parts: list[str] = []
        for name in self._fields:
            if name not in index.texts:
                continue
            field = index.field(name)
            # Double spaces between parts: a key has single spaces, so no phrase
            # can run from one field (or stream) into the next.
            parts.append(" " + " ".join(field.words()) + " ")
            if stemmed:
                parts.append(" " + " ".join(_STEM + stem for stem in field.stems()) + " ")
        seen: set[int] = set()
        for _, rules in automaton.iter(" ".join(parts)):
            if id(rules) not in seen:  # one tuple per key: skip repeats of a word
                seen.add(id(rules))
                found.update(rules)
        return sorted(found)

    def _automaton(self, language: str) -> tuple[ahocorasick.Automaton | None, bool]:
        built = self._automata.get(language)
        if built is None:
            built = self._automata[language] = self._build(language)
        return built

    def _build(self, language: str) -> tuple[ahocorasick.Automaton | None, bool]:
        if not self._rules_of:
            return None, False
        rules_by_key: dict[str, set[int]] = {}
        stemmed = False
        for term, rules in self._rules_of.items():
            stems = None
            if not (term.exact or term.prefix):
                stems = self._stems.term(language, term.tokens)
            if stems is not None:
                key = " " + " ".join(_STEM + stem for stem in stems) + " "
                stemmed = True
            else:
                key = " " + " ".join(term.tokens) + ("" if term.prefix else " ")
            # Two terms may share a key (the same stem): the key triggers both.
            rules_by_key.setdefault(key, set()).update(rules)
        automaton = ahocorasick.Automaton()
        for key, numbers in rules_by_key.items():
            automaton.add_word(key, tuple(sorted(numbers)))
        automaton.make_automaton()
        return automaton, stemmed
