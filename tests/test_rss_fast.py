"""The lxml reading of RSS 2.0 (monitor/sources/rss_fast.py) against feedparser's.

Each case is read twice, by ``RssSource.parse`` as it runs (the fast path when it
accepts the feed) and with the fast path switched off (feedparser), and the items must
be equal: same keys, content hashes, titles, links, dates, languages. Each case also
says whether the fast path must accept it, so a fast path that always gave up would
fail here. The generated feeds are in tests/fuzz/test_fuzz_rss_fast.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest

from monitor.models import Item
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.rss import RssSource, RssSourceConfig
from monitor.sources.rss_fast import read_rss
from monitor.sources.xmlsafe import prepare_body

DATA = Path(__file__).parent / "data"
URL = "https://feeds.example.org/news/feed.xml"
SOURCE = RssSource(
    RssSourceConfig.model_validate(
        {"name": "fast", "type": "rss", "url": URL, "every": "15m", "language": "de"}
    ),
    FetchLimits(),
)
CONTENT_TYPES = ["application/rss+xml", "text/xml; charset=ISO-8859-1", None]
NS = (
    'xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
    'xmlns:media="http://search.yahoo.com/mrss/"'
)


def rss(items: str, channel: str = "", prolog: str = '<?xml version="1.0"?>') -> bytes:
    return (
        f'{prolog}<rss version="2.0" {NS}><channel><title>T</title>{channel}{items}</channel></rss>'
    ).encode()


def parse_both(body: bytes, content_type: str | None) -> tuple[list[Item], list[Item]]:
    fetched = Fetched(url=URL, status=200, body=body, content_type=content_type)
    fast = SOURCE.parse(fetched)
    with mock.patch("monitor.sources.rss.read_rss", return_value=None):
        slow = SOURCE.parse(fetched)
    return fast, slow


def accepted(body: bytes, content_type: str | None) -> bool:
    return read_rss(*prepare_body(body, content_type)) is not None


FIXTURES = {
    "real/googlenews_search_rss_trimmed_2026-09-25.xml": True,
    "real/spiegel_rss_2015-03-31_declared-iso8859-1_actually-utf8.xml": True,
    "rss/rss20_guid_repeated.xml": True,
    "rss/rss20_no_guid.xml": True,
    "rss/rss20_relative_links.xml": True,
    "real/meteor_blog_atom_2015-03-31.xml": True,
    "rss/atom_xml_base.xml": False,
    "rss/rss091_netscape_doctype.xml": False,  # a DOCTYPE
    "rss/rss10_rdf.xml": False,  # RSS 1.0
}


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_every_feed_in_the_tests_reads_the_same_both_ways(
    name: str, content_type: str | None
) -> None:
    body = (DATA / name).read_bytes()
    fast, slow = parse_both(body, content_type)
    assert fast
    assert fast == slow
    assert accepted(body, content_type) is FIXTURES[name]


def test_the_fixture_list_holds_every_xml_feed_in_the_tests() -> None:
    on_disk = {str(p.relative_to(DATA)) for p in DATA.rglob("*.xml")}
    assert on_disk == set(FIXTURES)


# (items, channel extras, the fast path accepts)
CASES = {
    "mojibake repaired": ("<item><title>Ã©tÃ© Ã  Paris</title><guid>1</guid></item>", "", True),
    "cp1252 code points": ("<item><title>a&#x93;b&#x94; &#x80;</title></item>", "", True),
    "markup in a plain title": ("<item><title>&lt;b&gt;Fine&lt;/b&gt; x</title></item>", "", True),
    "unknown tag in a title": (
        "<item><title>&lt;blink&gt;x&lt;/blink&gt;</title></item>",
        "",
        True,
    ),
    "CDATA summary": (
        "<item><title>x</title><description><![CDATA[<p>a &amp; b</p>]]></description></item>",
        "",
        True,
    ),
    "content before summary": (
        "<item><content:encoded>long one</content:encoded><description>s</description></item>",
        "",
        True,
    ),
    "content only": (
        "<item><content:encoded><![CDATA[<p>c</p>]]></content:encoded></item>",
        "",
        True,
    ),
    "permalink guid is the link": ("<item><guid>https://e.org/a</guid></item>", "", True),
    "guid after the link": (
        "<item><link>https://e.org/l</link><guid>https://e.org/g</guid></item>",
        "",
        True,
    ),
    "guid before the link": (
        "<item><guid>https://e.org/g</guid><link>https://e.org/l</link></item>",
        "",
        True,
    ),
    "guid before an empty link": (
        "<item><guid>https://e.org/g</guid><link> </link></item>",
        "",
        True,
    ),
    "an empty link keeps the guid out": (
        "<item><link></link><guid>https://e.org/g</guid></item>",
        "",
        True,
    ),
    "a guid that is no link is not resolved": (
        '<item><guid isPermaLink="false">http:////e.org/g</guid><title>t</title></item>',
        "",
        True,
    ),
    "xml:lang on the image": (
        "<item><title>a</title></item>",
        '<image xml:lang="fr"><title>T</title></image>',
        False,
    ),
    "not a permalink": ('<item><guid isPermaLink="false">https://e.org/g</guid></item>', "", True),
    "a True permalink is not one": (
        '<item><guid isPermaLink="True">https://e.org/g</guid><title>t</title></item>',
        "",
        True,
    ),
    "relative guid": ("<item><guid>/path/1</guid><title>t</title></item>", "", True),
    "link entities": (
        "<item><link>http://e.org/?a=1&amp;amp;b=2&amp;copy;=3</link></item>",
        "",
        True,
    ),
    "slashes after the scheme": ("<item><link>http:////e.org/a</link></item>", "", True),
    "dates": (
        "<item><title>a</title><pubDate>Tue, 10 Jun 2025 04:00:00 +0200</pubDate></item>"
        "<item><title>b</title><pubDate>mer., 20 oct. 2022 10:00</pubDate></item>"
        "<item><title>c</title><pubDate>2025-06-10T04:00:00Z</pubDate></item>",
        "",
        True,
    ),
    "author and source": (
        '<item><title>a</title><dc:creator>Ann (a@e.org)</dc:creator><source url="https://p.org/">'
        "Publisher</source></item>",
        "",
        True,
    ),
    "language before the items": (
        "<item><title>a</title></item>",
        "<language>en_US</language>",
        True,
    ),
    "language after the items": (
        "<item><title>a</title></item><language>fr</language>",
        "",
        True,
    ),
    "image, atom link and categories": (
        '<item><title>a</title><category domain="d">c</category><enclosure url="https://e.org/m" '
        'length="1" type="audio/mpeg"/><comments>https://e.org/c</comments></item>',
        "<image><url>https://e.org/i.png</url><title>T</title><link>https://e.org/</link></image>",
        True,
    ),
    "comment inside a title": ("<item><title>a<!-- c -->b</title></item>", "", False),
    "two titles": ("<item><title>a</title><title>b</title></item>", "", False),
    "two descriptions": (
        "<item><description>a</description><description>b</description></item>",
        "",
        False,
    ),
    "author and dc:creator": (
        "<item><author>a</author><dc:creator>b</dc:creator></item>",
        "",
        False,
    ),
    "typed title": ('<item><title type="html">&lt;b&gt;a&lt;/b&gt;</title></item>', "", False),
    "xml:lang on an item child": ('<item><title xml:lang="fr">a</title></item>', "", False),
    "xml:base on the item": ('<item xml:base="https://b.org/"><link>/a</link></item>', "", False),
    "media title": ("<item><media:title>m</media:title><title>a</title></item>", "", False),
    "markup inside a description": (
        "<item><description>a <b>b</b></description></item>",
        "",
        False,
    ),
    "an item inside the image": (
        "<item><title>a</title></item>",
        "<image><item><title>i</title></item></image>",
        False,
    ),
}


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_reads_the_same_both_ways(case: str, content_type: str | None) -> None:
    items, channel, fast_path = CASES[case]
    body = rss(items, channel)
    fast, slow = parse_both(body, content_type)
    assert fast == slow
    assert accepted(body, content_type) is fast_path


def test_what_the_fast_path_reads_is_what_feedparser_repairs() -> None:
    """Values, not only agreement: both ways could be wrong together."""
    body = rss(
        "<item><title>Ã©tÃ© &lt;b&gt;Fine&lt;/b&gt;</title>"
        "<description>a&#x93;b&#x94;</description><guid>https://e.org/g</guid>"
        "<pubDate>Tue, 10 Jun 2025 04:00:00 +0200</pubDate></item>",
        "<language>en_US</language>",
    )
    assert accepted(body, "application/rss+xml")
    (item,) = SOURCE.parse(Fetched(url=URL, status=200, body=body, content_type=None))
    assert item.title == "été Fine"
    assert item.summary_html == "a\u201cb\u201d"
    assert item.url == "https://e.org/g"
    assert item.published == datetime(2025, 6, 10, 2, tzinfo=UTC)
    assert item.language == "en_US"


def test_an_encoding_feedparser_overrides_still_cuts_unfinished_entries() -> None:
    """UTF-16 labelled UTF-8: feedparser flags it (bozo), and RssSource then keeps only
    the entries whose end tag it finds in the bytes; both ways must agree on that."""
    body = rss("<item><title>\x80</title></item>", prolog="").decode().encode("utf-16")
    fast, slow = parse_both(body, "application/rss+xml; charset=utf-8")
    assert fast == slow


def atom(entries: str, attributes: str = "", head: str = "<title>F</title>") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        f'xmlns:media="http://search.yahoo.com/mrss/"{attributes}>{head}{entries}</feed>'
    ).encode()


# (entries, root attributes, the fast path accepts)
ATOM_CASES = {
    "plain entry": (
        '<entry><title>a</title><link href="https://e.org/a"/><id>tag:e.org,1</id>'
        '<updated>2026-09-01T10:00:00+02:00</updated><summary type="html">&lt;p&gt;s&lt;/p&gt;'
        "</summary><author><name>Ann</name><email>a@e.org</email></author></entry>",
        ' xml:lang="en"',
        True,
    ),
    "id as the link": ("<entry><title>a</title><id>https://e.org/a</id></entry>", "", True),
    "alternate link after the id": (
        '<entry><id>https://e.org/i</id><link rel="alternate" type="text/html" '
        'href="https://e.org/l"/></entry>',
        "",
        True,
    ),
    "an empty alternate link after the id": (
        '<entry><title>t</title><id>https://e.org/i</id><link href=""/></entry>',
        "",
        True,
    ),
    "enclosure only": (
        '<entry><id>https://e.org/i</id><link rel="enclosure" href="https://e.org/m.mp3"/></entry>',
        "",
        True,
    ),
    "content without a summary": (
        '<entry><title type="html">A &amp;amp; B</title><content type="html">&lt;p&gt;c&lt;/p&gt;'
        "</content></entry>",
        "",
        True,
    ),
    "plain summary with markup characters": (
        "<entry><title>&lt;b&gt;x&lt;/b&gt;</title><summary>1 &lt; 2</summary></entry>",
        "",
        True,
    ),
    "a link without href": (
        "<entry><title>t</title><link/><id>https://e.org/i</id></entry>",
        "",
        False,
    ),
    "summary after content": (
        "<entry><content>c</content><summary>s</summary></entry>",
        "",
        False,
    ),
    "xhtml title": (
        '<entry><title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">a</div></title>'
        "</entry>",
        "",
        False,
    ),
    "xml:base": (
        '<entry><link href="/a"/><title>t</title></entry>',
        ' xml:base="https://b/"',
        False,
    ),
    "underscored language": ("<entry><title>a</title></entry>", ' xml:lang="en_US"', False),
    "media thumbnail": (
        '<entry><title>a</title><media:thumbnail url="https://e.org/t.png"/></entry>',
        "",
        False,
    ),
    "an entry source": (
        "<entry><title>a</title><source><title>S</title></source></entry>",
        "",
        False,
    ),
}


@pytest.mark.parametrize("content_type", ["application/atom+xml", None])
@pytest.mark.parametrize("case", sorted(ATOM_CASES))
def test_each_atom_case_reads_the_same_both_ways(case: str, content_type: str | None) -> None:
    entries, attributes, fast_path = ATOM_CASES[case]
    body = atom(entries, attributes)
    fast, slow = parse_both(body, content_type)
    assert fast
    assert fast == slow
    assert accepted(body, content_type) is fast_path


def test_what_the_fast_path_reads_from_atom() -> None:
    """Values, not only agreement: both ways could be wrong together."""
    body = atom(
        '<entry><title>Ã©tÃ© &lt;b&gt;Fine&lt;/b&gt;</title><link rel="self" href="/self"/>'
        '<link href="https://e.org/a"/><id>tag:e.org,2026:1</id>'
        "<published>2025-06-10T04:00:00+02:00</published><updated>2026-01-01T00:00:00Z</updated>"
        '<summary type="html">&lt;p&gt;a&amp;amp;b&lt;/p&gt;</summary>'
        '<content type="html">&lt;p&gt;long&lt;/p&gt;</content>'
        "<author><name> Ann </name><email>a@e.org</email></author></entry>",
        ' xml:lang="fr-BE"',
    )
    assert accepted(body, "application/atom+xml")
    (item,) = SOURCE.parse(Fetched(url=URL, status=200, body=body, content_type=None))
    assert item.title == "été <b>Fine</b>"  # a plain Atom title: its markup is text
    assert item.url == "https://e.org/a"
    assert item.summary_html == "<p>a&amp;b</p>"
    assert item.content_html == "<p>long</p>"
    assert item.published == datetime(2025, 6, 10, 2, tzinfo=UTC)
    assert item.language == "fr-BE"
    assert item.fields == {"author": "Ann (a@e.org)"}
