"""Stored items as ``Item`` values again, for backtesting rules on history.

The store keeps the plain-text summary and content a poll derived, plus the
sanitized summary HTML; the raw HTML is not kept. An item rebuilt here carries
those plain texts as its ``summary`` and ``content`` (its cached views), so rules
see exactly the text they saw when the item was polled.
"""

from __future__ import annotations

from monitor.models import Item
from storage.tables import ItemRow

__all__ = ["item_from_row"]


def item_from_row(row: ItemRow) -> Item:
    item = Item(
        source=row.source,
        source_type=row.source_type,
        key=row.item_key,
        content_hash=row.content_hash,
        title=row.title,
        url=row.url,
        published=row.published,
        summary_html=row.summary_html,
        language=row.language,
        fields=dict(row.fields or {}),
    )
    # Item's summary/content are cached_property views of the raw HTML, which is not
    # stored: seed the caches with the plain text the poll derived and stored.
    item.__dict__["summary"] = row.summary
    item.__dict__["content"] = row.content
    return item
