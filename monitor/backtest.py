"""Rules against stored history: what a rule would have matched, what a change changes.

Pure functions over items and matchers; the CLI reads the items from the store
and prints the results (``test-rule``, ``check --diff``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from monitor.matching import Matcher
from monitor.models import Item, Match

__all__ = ["Backtest", "ItemRef", "RuleDiff", "backtest", "diff_rules", "highlight"]


@dataclass
class Backtest:
    """Which items matched, and per source how many were scanned and matched."""

    scanned: int = 0
    hits: list[tuple[Item, list[Match]]] = field(default_factory=list)
    per_source: dict[str, list[int]] = field(default_factory=dict)  # [scanned, matched]

    @property
    def matched(self) -> int:
        return len(self.hits)


def backtest(
    matcher: Matcher,
    items: Iterable[Item],
    now: datetime,
    progress: Callable[[int], None] = lambda done: None,
) -> Backtest:
    result = Backtest()
    for item in items:
        result.scanned += 1
        counts = result.per_source.setdefault(item.source, [0, 0])
        counts[0] += 1
        found = matcher.match(item, now=now)
        if found:
            counts[1] += 1
            result.hits.append((item, found))
        progress(result.scanned)
    return result


def highlight(text: str, matches: Iterable[Match], *, marks: tuple[str, str] = ("[", "]")) -> str:
    """``text`` with every matched span wrapped in ``marks`` (overlaps merged)."""
    spans = sorted((m.start, m.end) for m in matches if m.end <= len(text) and m.start < m.end)
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], marks[0], text[start:end], marks[1]]
        last = end
    out.append(text[last:])
    return "".join(out)


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Which stored item: what ``check --diff`` lists, without the item's texts."""

    source: str
    key: str
    title: str


@dataclass
class RuleDiff:
    """For one rule name: the items it would start and stop matching.

    References, not items: a changed rule can start matching most of the history,
    and keeping every item's content for that would grow with the database.
    """

    rule: str
    status: str  # "added", "removed", "changed" or "unchanged"
    started: list[ItemRef] = field(default_factory=list)
    stopped: list[ItemRef] = field(default_factory=list)


def diff_rules(
    old: Matcher,
    new: Matcher,
    items: Iterable[Item],
    now: datetime,
    progress: Callable[[int], None] = lambda done: None,
) -> tuple[int, list[RuleDiff]]:
    """Run both rule sets over ``items``; the scanned count and a diff per rule name."""
    old_rules = {rule.name: rule for rule in old.rules}
    new_rules = {rule.name: rule for rule in new.rules}
    diffs: dict[str, RuleDiff] = {}
    for name in dict.fromkeys([*new_rules, *old_rules]):
        before, after = old_rules.get(name), new_rules.get(name)
        if before is None:
            status = "added"
        elif after is None:
            status = "removed"
        elif (before.query.text, before.sources, _text(before.exclude)) != (
            after.query.text,
            after.sources,
            _text(after.exclude),
        ):
            status = "changed"
        else:
            status = "unchanged"
        diffs[name] = RuleDiff(name, status)
    scanned = 0
    for item in items:
        scanned += 1
        was = {m.rule for m in old.match(item, now=now)}
        now_matching = {m.rule for m in new.match(item, now=now)}
        if now_matching != was:
            ref = ItemRef(item.source, item.key, item.title)
            for name in now_matching - was:
                diffs[name].started.append(ref)
            for name in was - now_matching:
                diffs[name].stopped.append(ref)
        progress(scanned)
    return scanned, list(diffs.values())


def _text(query: object) -> str | None:
    return getattr(query, "text", None)
