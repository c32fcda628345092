"""Fuzzing the feed source's public parse entry point: the pre-filter (empty body,
entity guard, HTML page), prepare_body, feedparser and the completeness checks."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from hypothesis import currently_in_test_context, event, example, given
from hypothesis import strategies as st

from monitor.errors import MonitorError
from monitor.models import Item
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.rss import RssSource, RssSourceConfig
from tests.fuzz.strategies import content_types, feed_document

URL = "https://feeds.example.org/feed.xml"
SOURCE = RssSource(
    RssSourceConfig.model_validate({"name": "fuzz", "type": "rss", "url": URL, "every": "15m"}),
    FetchLimits(),
)


def note(what: str) -> None:
    """Count what happened to each input (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(what)


def parse(body: bytes, content_type: str | None) -> list[Item] | None:
    """The items, or None for a body refused with the project's own error."""
    try:
        items = SOURCE.parse(Fetched(url=URL, status=200, body=body, content_type=content_type))
    except MonitorError as e:
        assert "fuzz" in str(e)  # the error names the source
        note(f"refused: {str(e).split(':')[2].strip()[:40]}")
        return None
    note("items" if items else "no items")
    for item in items:
        assert item.source == "fuzz"
        assert item.key
        assert item.published is None or item.published.utcoffset() == timedelta(0)
        assert item.published is None or item.published.tzinfo is not None
        assert item.url is None or item.url.startswith(("http://", "https://"))
    assert len({item.key for item in items}) == len(items)
    return items


@given(feed_document())
def test_structured_feeds_parse_or_raise_a_parse_error(document: tuple[bytes, str | None]) -> None:
    parse(*document)


@given(st.binary(max_size=2000), content_types)
@example(b"\xff\xfe<\x00r\x00s\x00s\x00", "text/xml; charset=utf-16")
@example(b"<rss><channel><item><title>a</title></item>", None)
def test_any_bytes_parse_or_raise_a_parse_error(body: bytes, content_type: str | None) -> None:
    parse(body, content_type)


@given(st.text(max_size=2000))
def test_arbitrary_text_parses_or_raises_a_parse_error(text: str) -> None:
    parse(text.encode("utf-8", "surrogatepass"), "application/xml")


def test_a_feed_that_parses_keeps_its_dates_in_utc() -> None:
    body = (
        b'<rss version="2.0"><channel><item><title>A</title><guid>1</guid>'
        b"<pubDate>mer., 20 oct. 2022 14:15 +0200</pubDate></item></channel></rss>"
    )
    items = parse(body, "application/rss+xml")
    assert items is not None and items[0].published is not None
    assert items[0].published.tzinfo == UTC


def test_a_link_that_is_no_url_leaves_the_entry_without_a_link() -> None:
    """Found by the fuzzer: ``<link>http://[</link>`` raised ValueError out of parse,
    failing the whole feed instead of keeping the entry without a link."""
    body = (
        b'<rss version="2.0"><channel><item><title>Bad link</title><guid>1</guid>'
        b"<link>http://[</link></item><item><title>Good</title><guid>2</guid>"
        b"<link>https://example.org/2</link></item></channel></rss>"
    )
    items = parse(body, "application/rss+xml")
    assert items is not None
    assert [(i.title, i.url) for i in items] == [
        ("Bad link", None),
        ("Good", "https://example.org/2"),
    ]


@pytest.mark.parametrize("ref", [b"&#xD800;", b"&#99999999;", b"&#x110000;", b"&#57343;"])
def test_a_reference_to_no_character_costs_that_character_not_the_feed(ref: bytes) -> None:
    """Found by the feed fuzzer: one ``&#xD800;`` or ``&#99999999;`` made feedparser raise
    (wrapped as "feedparser failed"), so every entry of the feed was lost."""
    body = (
        b'<rss version="2.0"><channel><item><title>A ' + ref + b" &#233;</title><guid>1</guid>"
        b"</item><item><title>B</title><guid>2</guid></item></channel></rss>"
    )
    items = parse(body, "application/rss+xml")
    assert items is not None
    assert [i.title for i in items] == ["A \ufffd é", "B"]


@pytest.mark.parametrize(
    "label", ["utf-7", "base64", "rot13", "unicode_escape", "idna", "punycode"]
)
def test_a_charset_label_that_is_no_text_encoding_does_not_crash_the_entity_guard(
    label: str,
) -> None:
    """Found with the html fuzzer's charsets: the entity guard decoded the body with every
    declared label, and ``base64`` raised LookupError, ``utf-7`` gave lone surrogates that
    UTF-8 refused (UnicodeEncodeError), ``idna`` UnicodeError and ``punycode`` (found by
    the second long run) UnicodeDecodeError even with errors="replace", out of parse."""
    body = b'<rss version="2.0"><channel><item><title>A +2Ac-</title><guid>1</guid></item>'
    body += b"</channel></rss>"
    parse(b"\x80", f"text/html; charset={label}")  # punycode refuses non-ASCII even so
    for content_type in (f"text/xml; charset={label}", None):
        prolog = b"" if content_type else f'<?xml version="1.0" encoding="{label}"?>'.encode()
        parse(prolog + body, content_type)
