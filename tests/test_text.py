"""Links in sanitized HTML: the fast path for plain absolute links gives exactly what
resolving them with urljoin gives."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.text import _PLAIN_LINK, safe_link, sanitize_html

BASES = [
    None,
    "https://reg.example.org/news/",
    "http://reg.example.org/a/b?page=2",
    "https://news.example.com",
    "ftp://files.example.org/",
]


def resolved(value: str, base_url: str | None) -> str | None:
    """What sanitize_html kept before the fast path: always through urljoin."""
    absolute = urljoin(base_url, value.strip()) if base_url else value.strip()
    scheme = urlsplit(absolute).scheme.lower()
    return absolute if scheme in {"http", "https", "mailto"} else None


@pytest.mark.parametrize(
    ("value", "base", "expected"),
    [
        ("https://a.example/x?q=1#top", BASES[1], "https://a.example/x?q=1#top"),
        ("  http://a.example/x  ", BASES[1], "http://a.example/x"),
        ("/cnil/sanction", BASES[1], "https://reg.example.org/cnil/sanction"),
        ("detail.html", BASES[2], "http://reg.example.org/a/detail.html"),
        # urljoin drops an empty query or fragment of a same-scheme link: kept so.
        ("https://a.example/x?", BASES[1], "https://a.example/x"),
        ("https://a.example/x#", BASES[1], "https://a.example/x"),
        ("https://a.example/x;v=2", BASES[1], "https://a.example/x;v=2"),
        ("https://a.example/x;", BASES[1], "https://a.example/x"),
        ("HTTPS://a.example/x", BASES[1], "https://a.example/x"),
        ("https://a.exa\tmple/x", BASES[1], "https://a.example/x"),
        ("javascript:alert(1)", BASES[1], None),
        ("data:text/html,<b>x</b>", None, None),
        ("mailto:press@example.org", BASES[1], "mailto:press@example.org"),
    ],
)
def test_links_resolve_as_urljoin_resolves_them(
    value: str, base: str | None, expected: str | None
) -> None:
    assert safe_link(value, base) == expected
    assert resolved(value, base) == expected


@settings(max_examples=400, deadline=None)
@given(
    value=st.one_of(
        st.from_regex(_PLAIN_LINK, fullmatch=True),
        st.from_regex(r"\s*(https?|HTTP|ftp|javascript|mailto):/{0,3}[^\s]{0,30}\s*"),
        st.text(max_size=40),
    ),
    base=st.sampled_from(BASES),
)
@example(value="https://a.example/x?", base=BASES[1])
@example(value="https://a.example/x;p?q", base=BASES[1])
@example(value="https://a.example/x;", base=BASES[1])
@example(value="https://[::1/x", base=BASES[1])
def test_every_link_resolves_as_urljoin_resolves_it(value: str, base: str | None) -> None:
    try:
        expected = resolved(value, base)
    except ValueError:  # urlsplit turns down a malformed host; the link must not pass
        assert not _PLAIN_LINK.fullmatch(value.strip())
        return
    assert safe_link(value, base) == expected


def test_sanitized_markup_keeps_absolute_links_and_resolves_relative_ones() -> None:
    markup = (
        '<p><a href="https://a.example/x?q=1">one</a> <a href="/y">two</a> '
        '<a href="javascript:alert(1)">three</a></p>'
    )
    clean = sanitize_html(markup, base_url="https://reg.example.org/news/")
    assert 'href="https://a.example/x?q=1"' in clean
    assert 'href="https://reg.example.org/y"' in clean
    assert "javascript" not in clean
