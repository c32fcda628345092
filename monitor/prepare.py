"""The per-item work a poll does on its changed items before matching (pure).

For each new or amended item: the money in its text (``with_amounts``), its plain-text
and sanitized views (stored with it), and, for a new item, its dedupe fingerprint.
That is most of a first poll's CPU after parsing, and none of it needs the database,
so a poll with many changed items has it done by a parse worker
(:meth:`monitor.parsepool.ParsePool.prepare`) while the event loop goes on with
other sources; a few items are prepared in place. Both ways run :func:`prepare_items`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.dedupe import Fingerprint, item_fingerprint
from monitor.matching.money import with_amounts
from monitor.models import Item


@dataclass(frozen=True)
class Prepared:
    """``items`` in the order given, with their amounts and text views; ``prints`` of
    the items whose keys were asked for, by key."""

    items: list[Item]
    prints: dict[str, Fingerprint] = field(default_factory=dict)


def prepare_items(
    items: Sequence[Item], fingerprint: frozenset[str], *, templated_summary: bool
) -> Prepared:
    """Amounts and text views of ``items``; fingerprints of those keyed in ``fingerprint``
    (``templated_summary``: see ``SourceType.templated_summary``)."""
    ready = []
    for item in items:
        item = with_amounts(item)
        # Computed here, they are cached on the item (and travel back from a worker
        # with it): storing the item reads all three.
        _ = item.summary, item.content, item.safe_summary_html
        ready.append(item)
    prints = {
        item.key: item_fingerprint(item, templated_summary=templated_summary)
        for item in ready
        if item.key in fingerprint
    }
    for print_ in prints.values():
        _ = print_.key_ids  # cached on the fingerprint, as the text views on the item
    return Prepared(ready, prints)


__all__ = ["Prepared", "prepare_items"]
