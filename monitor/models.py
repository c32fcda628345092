"""Plain value objects that travel the pipeline: Item and Match.

They are not database tables (see ``storage/tables.py``) and carry no behaviour
beyond derived, cached views of their own data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from monitor.text import html_to_text, sanitize_html


@dataclass(frozen=True)
class Item:
    """One normalised entry of a source.

    ``summary_html`` and ``content_html`` hold the *untrusted* markup as the source
    published it; the plain-text and sanitized views are derived on first use, so a
    poll pays for sanitizing only the items it actually stores or matches.
    """

    source: str
    source_type: str
    key: str
    content_hash: str
    title: str
    url: str | None = None
    published: datetime | None = None
    summary_html: str = ""
    content_html: str = ""
    language: str | None = None
    base_url: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def summary(self) -> str:
        """The summary as plain text (HTML stripped, entities decoded)."""
        return html_to_text(self.summary_html)

    @cached_property
    def content(self) -> str:
        """The full content as plain text; empty when the source has only a summary."""
        return html_to_text(self.content_html)

    @cached_property
    def safe_summary_html(self) -> str:
        """The summary as sanitized HTML for display, links made absolute."""
        return sanitize_html(self.summary_html, base_url=self.base_url)

    def with_fields(self, fields: dict[str, Any]) -> Item:
        """This item with other ``fields``. The text views read none of them, so the
        ones already derived are kept rather than derived again (nh3 and the HTML
        parser cost more than the rest of storing an item)."""
        other = dataclasses.replace(self, fields=fields)
        for view in ("summary", "content", "safe_summary_html"):
            if view in self.__dict__:
                other.__dict__[view] = self.__dict__[view]
        return other

    def text_fields(self) -> dict[str, str]:
        """The plain-text fields rules can search, by name.

        Structured fields join in as text when they are strings, numbers (``naics``
        541511 -> "541511") or lists of strings (one per line); money, dates given as
        datetimes, booleans and None are compared, not searched.
        """
        texts = {"title": self.title, "summary": self.summary, "content": self.content}
        for name, value in self.fields.items():
            if name in texts:
                continue
            if isinstance(value, str):
                texts[name] = value
            elif isinstance(value, int | float) and not isinstance(value, bool):
                texts[name] = str(value)
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                texts[name] = "\n".join(value)
        return texts


@dataclass(frozen=True, slots=True)
class Match:
    """One occurrence of a rule's term in an item: why an alert fired.

    ``start`` / ``end`` are offsets into the item's plain-text ``field``; ``text`` is
    the original text at that place (not the folded form).
    """

    rule: str
    field: str
    text: str
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "field": self.field,
            "text": self.text,
            "start": self.start,
            "end": self.end,
        }
