"""Differential fuzzing of the lxml reading of RSS 2.0 (``monitor/sources/rss_fast.py``)
against feedparser: every feed the fast path accepts must give the very items feedparser
gives (same keys, content hashes, links, dates, languages), or an item would re-alert
the day its feed is read the other way. Plain feeds must be accepted, so the test
cannot pass by always falling back."""

from __future__ import annotations

from typing import Any
from unittest import mock
from xml.sax.saxutils import escape

from hypothesis import example, given
from hypothesis import strategies as st

from monitor.errors import MonitorError
from monitor.models import Item
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.rss import RssSource, RssSourceConfig
from monitor.sources.rss_fast import read_rss
from monitor.sources.xmlsafe import prepare_body
from tests.fuzz.strategies import date_text, feed_document, word

URL = "https://feeds.example.org/news/feed.xml"
SOURCE = RssSource(
    RssSourceConfig.model_validate(
        {"name": "fuzz", "type": "rss", "url": URL, "every": "15m", "language": "de"}
    ),
    FetchLimits(),
)

# Values that exercise what feedparser does to text: strip, Latin-1 read as UTF-8
# ("Ã©"), cp1252 code points (&#x80;), markup in plain titles, escaped markup,
# entities that look like HTML ones, CDATA, whitespace.
TRICKY = [
    "Ã©tÃ© Ã ",
    "&#x80;&#x93;&#x9f;",
    "\u2019quoted\u2019",
    "  \n\t ",
    "&amp;",
    "a &amp; b",
    "&amp;nbsp;",
    "&amp;bogus;",
    "&lt;b&gt;bold&lt;/b&gt;",
    "&lt;/p&gt;",
    "&lt;script&gt;x&lt;/script&gt;",
    "&lt;blink&gt;x&lt;/blink&gt;",
    "<![CDATA[<p>a &amp; b</p>]]>",
    "<![CDATA[</b>]]>",
    "<![CDATA[ Ã© ]]>",
    "&#233;",
    "x&#160;y",
    "€ 30 million",
]
LINKS = [
    "https://example.org/n/1",
    " https://example.org/n/2 ",
    "/relative/2",
    "//other.example/3",
    "12345",
    "",
    "http://e.org/?a=1&amp;b=2",
    "http://e.org/?a=1&amp;amp;b=2",
    "http://e.org/?a=1&amp;copy;=2",
    "http:////x.org/a",
    "HTTP://X.org/Ã©",
    "javascript:alert(1)",
    "http://example.org/?utm_source=x#ref=rss",
]
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"

# Words and dates escaped for XML, without the characters XML 1.0 forbids: a plain feed
# is well-formed.


def _clean(value: str) -> str:
    return escape("".join(c for c in value if c in "\t\n\r" or _allowed(c)))


def _allowed(c: str) -> bool:
    return ord(c) >= 0x20 and c not in "\ufffe\uffff" and not "\ud800" <= c <= "\udfff"


_xml_date = date_text.map(_clean)
_xml_text = st.one_of(word, date_text).map(_clean)
text = st.lists(st.one_of(_xml_text, st.sampled_from(TRICKY)), max_size=5).map(" ".join)
# (markup, plain): plain is False for what the fast path must leave to feedparser.
ItemChild = tuple[str, bool, str]


@st.composite
def item_child(draw: st.DrawFn, only_plain: bool) -> ItemChild:
    plain = st.sampled_from(
        [
            "title",
            "link",
            "description",
            "guid",
            "pubDate",
            "dc:creator",
            "author",
            "content:encoded",
            "category",
            "comments",
            "enclosure",
            "source",
        ]
    )
    other = st.sampled_from(["media:title", "foo", "title-typed", "description-nested"])
    tag = draw(plain if only_plain else st.one_of(plain, other))
    value = draw(text)
    if tag == "link":
        return f"<link>{draw(st.sampled_from(LINKS))}</link>", True, tag
    if tag == "guid":
        attribute, plain = draw(
            st.sampled_from(
                [
                    ("", True),
                    (' isPermaLink="true"', True),
                    (' isPermaLink="false"', True),
                    (' isPermaLink="True"', True),
                    (' ispermalink="false"', False),
                ]
            )
        )
        inner = draw(st.one_of(st.sampled_from(LINKS), text))
        return f"<guid{attribute}>{inner}</guid>", plain, tag
    if tag == "pubDate":
        return f"<pubDate>{draw(_xml_date)}</pubDate>", True, tag
    if tag == "enclosure":
        return '<enclosure url="https://e.org/a.mp3" length="1" type="audio/mpeg"/>', True, tag
    if tag == "category":
        return f'<category domain="d">{value}</category>', True, tag
    if tag == "source":
        url = draw(st.sampled_from(LINKS))
        return f'<source url="{url}">{value}</source>', True, tag
    if tag == "media:title":
        return f"<media:title>{value}</media:title>", False, tag
    if tag == "title-typed":
        return f'<title type="text/html">{value}</title>', False, "title"
    if tag == "description-nested":
        return f"<description>a<b>bold</b>{value}</description>", False, "description"
    if tag == "foo":
        return f"<foo>{value}</foo>", False, tag
    return f"<{tag}>{value}</{tag}>", True, tag


@st.composite
def plain_rss(draw: st.DrawFn) -> tuple[bytes, str | None, bool]:
    """An RSS 2.0 feed; the flag says whether only the fast path's subset was used."""
    # Half the documents keep to the subset the fast path reads (and must be read by it).
    only_plain = draw(st.booleans())
    plain = True
    items = []
    for _ in range(draw(st.integers(1, 4))):
        children = draw(st.lists(item_child(only_plain), min_size=1, max_size=9))
        if only_plain:
            children = _first_of_each(children)
        tags = [tag for _, _, tag in children]
        once = {"title", "link", "description", "guid", "pubDate", "source"}
        repeated = any(tags.count(t) > 1 for t in once) or (
            tags.count("author") + tags.count("dc:creator") > 1
        )
        plain = plain and not repeated and all(ok for _, ok, _ in children)
        items.append("<item>" + "".join(markup for markup, _, _ in children) + "</item>")
    language = draw(st.sampled_from(["", "fr", "en_US", " de-AT ", "Ã©"]))
    head = [
        "<title>T</title>",
        "<link>https://example.org/</link>",
        "<description>D &amp; d</description>",
        "<image><url>https://e.org/i.png</url><title>T</title><link>/x</link></image>",
    ]
    if language:
        at = draw(st.integers(0, len(items)))
        items.insert(at, f"<language>{language}</language>")
    extra_plain = st.sampled_from(
        [
            ("", True),
            ('<atom:link href="https://e.org/feed" rel="self"/>', True),
            ("<sy:updatePeriod>hourly</sy:updatePeriod>", True),
        ]
    )
    extra_other = st.sampled_from(
        [
            ("<itunes:author>x</itunes:author>", False),
            ('<image xml:lang="fr"><title>T</title></image>', False),
            ("<image><item><title>inner</title></item></image>", False),
            ('<item xml:base="/b/"><title>x</title></item>', False),
        ]
    )
    extra = draw(extra_plain if only_plain else st.one_of(extra_plain, extra_other))
    plain = plain and extra[1]
    channel_attribute, channel_plain = draw(
        st.just(("", True))
        if only_plain
        else st.sampled_from([("", True), (' xml:lang="fr"', False), (' xml:base="/b/"', False)])
    )
    plain = plain and channel_plain
    doc = (
        f'<rss version="2.0" xmlns:dc="{DC}" xmlns:content="{CONTENT}" '
        'xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" '
        'xmlns:media="http://search.yahoo.com/mrss/" '
        'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel{channel_attribute}>{''.join(head)}{extra[0]}{''.join(items)}</channel></rss>"
    )
    encoding, content_type = draw(
        st.sampled_from(
            [
                ("utf-8", "application/rss+xml"),
                ("utf-8", None),
                ("utf-8", "text/xml"),
                ("utf-8", "text/xml; charset=utf-8"),
                ("iso-8859-1", "application/xml; charset=iso-8859-1"),
                ("iso-8859-1", "application/rss+xml"),
                ("windows-1252", "application/rss+xml"),
            ]
        )
    )
    prolog = draw(
        st.sampled_from(
            [
                f'<?xml version="1.0" encoding="{encoding}"?>\n',
                "" if encoding == "utf-8" else f"<?xml version='1.0' encoding='{encoding}'?>",
                "\n" + f'<?xml version="1.0" encoding="{encoding}"?>',
            ]
        )
    )
    body = (prolog + doc).encode(encoding, "xmlcharrefreplace")
    return body, content_type, plain


def _first_of_each(children: list[ItemChild]) -> list[ItemChild]:
    """Without the second title, link... of an item, and of its author / dc:creator."""
    kept: list[ItemChild] = []
    seen: set[str] = set()
    for markup, plain, tag in children:
        once = "author" if tag in ("author", "dc:creator") else tag
        if once in {"title", "link", "description", "guid", "pubDate", "source", "author"}:
            if once in seen:
                continue
            seen.add(once)
        kept.append((markup, plain, tag))
    return kept


def _parse(body: bytes, content_type: str | None) -> list[Item] | str:
    try:
        return SOURCE.parse(Fetched(url=URL, status=200, body=body, content_type=content_type))
    except MonitorError as e:
        return str(e)


def _both(body: bytes, content_type: str | None) -> tuple[Any, Any]:
    fast = _parse(body, content_type)
    with mock.patch("monitor.sources.rss.read_rss", return_value=None):
        slow = _parse(body, content_type)
    return fast, slow


def _accepted(body: bytes, content_type: str | None) -> bool:
    if not body.strip():
        return False
    prepared, prepared_type = prepare_body(body, content_type)
    return read_rss(prepared, prepared_type) is not None


@given(plain_rss())
@example(
    (
        b'<rss version="2.0"><channel><language>en_US</language><item><guid>/a</guid>'
        b"<link>http://e.org/?a=1&amp;amp;b=2</link><title>&lt;b&gt;x&lt;/b&gt;</title>"
        b"</item></channel></rss>",
        "application/rss+xml",
        True,
    )
)
def test_the_fast_path_reads_plain_rss_as_feedparser_does(
    document: tuple[bytes, str | None, bool],
) -> None:
    body, content_type, plain = document
    fast, slow = _both(body, content_type)
    assert fast == slow
    if plain:
        assert _accepted(body, content_type), "a plain RSS 2.0 feed went to feedparser"


@given(feed_document())
def test_the_fast_path_agrees_with_feedparser_on_any_feed(
    document: tuple[bytes, str | None],
) -> None:
    """Cut, corrupted, mislabelled, Atom, RDF: whatever the fast path accepts, it reads
    as feedparser does; the rest it leaves to feedparser."""
    fast, slow = _both(*document)
    assert fast == slow
