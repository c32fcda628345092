"""Small RSS documents for integration tests."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Entry:
    guid: str | None
    title: str
    link: str | None = None
    description: str = ""
    pub_date: str = "Sun, 22 Nov 2026 09:00:00 GMT"


def rss(*entries: Entry, title: str = "Test feed") -> bytes:
    items = []
    for e in entries:
        parts = [f"<title>{escape(e.title)}</title>"]
        if e.guid is not None:
            parts.append(f'<guid isPermaLink="false">{escape(e.guid)}</guid>')
        if e.link is not None:
            parts.append(f"<link>{escape(e.link)}</link>")
        parts.append(f"<description>{escape(e.description)}</description>")
        parts.append(f"<pubDate>{e.pub_date}</pubDate>")
        items.append("<item>" + "".join(parts) + "</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.org/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()
