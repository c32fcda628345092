"""Differential fuzzing of the lxml reading of Atom 1.0 (``monitor/sources/rss_fast.py``)
against feedparser, as tests/fuzz/test_fuzz_rss_fast.py does for RSS 2.0: whatever the
fast path accepts must give the very items feedparser gives, and a feed that keeps to
the plain subset must be accepted, so the test cannot pass by always falling back."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.strategies import date_text
from tests.fuzz.test_fuzz_rss_fast import LINKS, _accepted, _both, _clean, text

ATOM = "http://www.w3.org/2005/Atom"
_date = st.one_of(
    date_text.map(_clean),
    st.sampled_from(["2026-09-01T10:00:00Z", "2026-09-01T10:00:00+02:00", " 2025-06-10 "]),
)
_href = st.sampled_from(LINKS).map(lambda link: link.replace('"', "&quot;"))
# (markup, plain, tag): plain is False for what the fast path must leave to feedparser.
EntryChild = tuple[str, bool, str]


@st.composite
def entry_child(draw: st.DrawFn, only_plain: bool) -> EntryChild:
    plain = st.sampled_from(
        ["title", "link", "id", "published", "updated", "author", "summary", "content", "category"]
    )
    other = st.sampled_from(
        ["title-xhtml", "content-src", "media", "link-text", "source", "lang", "base", "typed"]
    )
    tag = draw(plain if only_plain else st.one_of(plain, other))
    value = draw(text)
    if tag in ("title", "summary", "content"):
        kind = draw(st.sampled_from(["", ' type="text"', ' type="html"']))
        return f"<{tag}{kind}>{value}</{tag}>", True, tag
    if tag == "link":
        rel = draw(
            st.sampled_from(
                [
                    "",
                    ' rel="alternate"',
                    ' rel="ALTERNATE"',
                    ' rel="self"',
                    ' rel="enclosure"',
                    ' rel="related"',
                ]
            )
        )
        kind = draw(
            st.sampled_from(
                [
                    "",
                    ' type="text/html"',
                    ' type="application/pdf"',
                    ' type="TEXT/HTML"',
                    ' type=""',
                ]
            )
        )
        href = draw(st.one_of(st.just(None), _href))
        if href is None:  # feedparser reads the empty text as the link: left to it
            return f"<link{rel}{kind}/>", False, tag
        return f'<link{rel}{kind} href="{href}" hreflang="en"/>', True, tag
    if tag == "id":
        return f"<id>{draw(st.one_of(st.sampled_from(LINKS), text))}</id>", True, tag
    if tag in ("published", "updated"):
        return f"<{tag}>{draw(_date)}</{tag}>", True, tag
    if tag == "author":
        parts = draw(st.lists(st.sampled_from(["name", "email", "uri"]), unique=True))
        inner = "".join(f"<{p}>{draw(text)}</{p}>" for p in parts)
        return f"<author>{inner}</author>", True, tag
    if tag == "category":
        return f'<category term="{draw(st.sampled_from(["a", "b c"]))}"/>', True, tag
    if tag == "title-xhtml":
        return (
            f'<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">{value}</div></title>',
            False,
            "title",
        )
    if tag == "content-src":
        return '<content src="https://e.org/c" type="text/html"/>', False, "content"
    if tag == "media":
        return '<media:thumbnail url="https://e.org/t.png"/>', False, tag
    if tag == "link-text":
        return f"<link>{draw(_href)}</link>", False, "link"
    if tag == "source":
        return "<source><title>S</title><id>s</id></source>", False, tag
    if tag == "lang":
        return f'<title xml:lang="fr">{value}</title>', False, "title"
    if tag == "base":
        return f'<link xml:base="https://b.org/d/" href="{draw(_href)}"/>', False, "link"
    return f'<summary type="xhtml">{value}</summary>', False, "summary"


@st.composite
def plain_atom(draw: st.DrawFn) -> tuple[bytes, str | None, bool]:
    """An Atom 1.0 feed; the flag says whether only the fast path's subset was used."""
    only_plain = draw(st.booleans())
    plain = True
    entries = []
    for _ in range(draw(st.integers(1, 4))):
        children = draw(st.lists(entry_child(only_plain), min_size=1, max_size=9))
        once = {"title", "id", "published", "updated", "author", "summary", "content"}
        if only_plain:
            seen: set[str] = set()
            kept = []
            for child in children:
                if child[2] in once and child[2] in seen:
                    continue
                seen.add(child[2])
                kept.append(child)
            children = kept
            tags = [t for _, _, t in children]
            if "content" in tags and "summary" in tags:
                # A summary after the content is a second content to feedparser.
                summary = children.pop(tags.index("summary"))
                children.insert(0, summary)
        tags = [t for _, _, t in children]
        repeated = any(tags.count(t) > 1 for t in once)
        late_summary = (
            "content" in tags
            and "summary" in tags
            and tags.index("summary") > tags.index("content")
        )
        plain = plain and not repeated and not late_summary and all(ok for _, ok, _ in children)
        entries.append("<entry>" + "".join(markup for markup, _, _ in children) + "</entry>")
    language, language_plain = draw(
        st.sampled_from(
            [
                ("", True),
                (' xml:lang="en"', True),
                (' xml:lang="de-AT"', True),
                (' xml:lang="en_US"', False),
                (' xml:lang=""', False),
                (' xml:lang=" fr "', False),
            ]
        )
    )
    plain = plain and language_plain
    head, head_plain = draw(
        st.sampled_from(
            [
                ("<title>T</title><id>urn:f</id><updated>2026-01-01T00:00:00Z</updated>", True),
                (
                    '<link rel="self" href="https://e.org/feed"/><author><name>A</name></author>',
                    True,
                ),
                (
                    '<subtitle type="html">&lt;b&gt;s&lt;/b&gt;</subtitle><generator>g</generator>',
                    True,
                ),
                (
                    '<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">T</div></title>',
                    False,
                ),
                ('<title xml:base="/b/">T</title>', False),
                ("<foo>x</foo>", False),
            ]
        )
    )
    if only_plain and not head_plain:
        head, head_plain = "<title>T</title>", True
    plain = plain and head_plain
    doc = (
        f'<feed xmlns="{ATOM}" xmlns:media="http://search.yahoo.com/mrss/"{language}>'
        f"{head}{''.join(entries)}</feed>"
    )
    encoding, content_type = draw(
        st.sampled_from(
            [
                ("utf-8", "application/atom+xml"),
                ("utf-8", None),
                ("utf-8", "text/xml; charset=utf-8"),
                ("iso-8859-1", "application/xml; charset=iso-8859-1"),
                ("windows-1252", "application/atom+xml"),
            ]
        )
    )
    body = (f'<?xml version="1.0" encoding="{encoding}"?>\n' + doc).encode(
        encoding, "xmlcharrefreplace"
    )
    return body, content_type, plain


@given(plain_atom())
@example(
    (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en"><entry><id>/a</id>'
        b'<link href=""/><title type="html">&lt;b&gt;x&lt;/b&gt;</title>'
        b"<author><email>e@x</email></author></entry></feed>",
        "application/atom+xml",
        True,
    )
)
def test_the_fast_path_reads_plain_atom_as_feedparser_does(
    document: tuple[bytes, str | None, bool],
) -> None:
    body, content_type, plain = document
    fast, slow = _both(body, content_type)
    assert fast == slow
    if plain:
        assert _accepted(body, content_type), "a plain Atom 1.0 feed went to feedparser"
