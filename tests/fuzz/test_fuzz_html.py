"""Fuzzing the html source: listing pages through its public parse, detail pages,
and decode_html on arbitrary bytes and charset labels."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import currently_in_test_context, event, example, given
from hypothesis import strategies as st

from monitor.config import parse_config
from monitor.errors import ConfigError, MonitorError
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.html import HtmlSource, HtmlSourceConfig
from monitor.sources.htmlpage import decode_html, parse_selector
from tests.fuzz.strategies import SELECTORS, content_types, html_listing

URL = "https://reg.example.org/news/"


def note(what: str) -> None:
    """Count what happened to each input (``--hypothesis-show-statistics``)."""
    if currently_in_test_context():
        event(what)


def source(item: str, title: str, link: str, date: str | None, summary: str | None) -> HtmlSource:
    config = HtmlSourceConfig.model_validate(
        {
            "name": "fuzz",
            "type": "html",
            "url": URL,
            "every": "30m",
            "item": item,
            "title": title,
            "link": link,
            "date": date,
            "summary": summary,
            "follow": True,
        }
    )
    return HtmlSource(config, FetchLimits())


LISTING = source("ul.listing li", "h3", "a@href", "time@datetime", "p.summary")
selector = st.sampled_from(SELECTORS)


def check(src: HtmlSource, body: bytes, content_type: str | None) -> None:
    try:
        items = src.parse(Fetched(url=URL, status=200, body=body, content_type=content_type))
    except MonitorError as e:
        assert "fuzz" in str(e)
        note("refused")
        return
    note("dated items" if any(i.published for i in items) else "items" if items else "none")
    for item in items:
        assert item.key
        assert item.published is None or item.published.utcoffset() == timedelta(0)
        assert item.url is None or item.url.startswith(("http://", "https://"))


@given(html_listing(), content_types)
@example(
    b'<html><head><base href="http://["></head><body><ul class="listing"><li><h3>t</h3>'
    b'<a href="/x">x</a></li></ul></body></html>',
    None,
)
def test_listing_pages_parse_or_raise_a_parse_error(body: bytes, content_type: str | None) -> None:
    check(LISTING, body, content_type)


@given(html_listing(), selector, selector, selector, st.none() | selector, st.none() | selector)
def test_any_valid_selectors_parse_or_raise_a_parse_error(
    body: bytes, item: str, title: str, link: str, date: str | None, summary: str | None
) -> None:
    try:
        src = source(item, title, link, date, summary)
    except ValueError:  # pydantic's ValidationError: a selector the config refuses
        return
    check(src, body, "text/html")


@given(st.binary(max_size=3000), content_types)
def test_arbitrary_bytes_as_a_listing(body: bytes, content_type: str | None) -> None:
    check(LISTING, body, content_type)


@given(st.binary(max_size=3000) | html_listing(), content_types)
def test_detail_pages_give_markup_or_a_parse_error(body: bytes, content_type: str | None) -> None:
    try:
        content = LISTING.detail_content(
            Fetched(url=URL + "n/1", status=200, body=body, content_type=content_type)
        )
    except MonitorError:
        return
    assert isinstance(content, str)


@given(st.binary(max_size=3000), content_types)
@example(b"\xef\xbb\xbfcaf\xc3\xa9", None)
@example(b'<meta charset="utf-7">+AGEAYgBj-', None)
@example(b"\xe9t\xe9", "text/html; charset=utf-16")
def test_decode_html_decodes_any_bytes(body: bytes, content_type: str | None) -> None:
    text = decode_html(body, content_type)
    assert isinstance(text, str)
    if body.isascii() and b"charset" not in body and "charset" not in (content_type or ""):
        assert text == body.decode("ascii")


@given(st.text(max_size=60))
def test_parse_selector_raises_only_value_error(spec: str) -> None:
    with contextlib.suppress(ValueError):
        parse_selector(spec)


def test_a_pseudo_element_selector_is_a_config_error_not_a_crash() -> None:
    """Found by the fuzzer: soupsieve raises NotImplementedError for ``::before``, which
    escaped the config loader as a traceback instead of a problem naming the key."""
    with pytest.raises(ValueError, match="not supported"):
        parse_selector("::before")
    doc = {
        "sources": [
            {
                "name": "reg",
                "type": "html",
                "url": URL,
                "every": "30m",
                "item": "li",
                "title": "h3",
                "link": "a::after@href",
            }
        ]
    }
    with pytest.raises(ConfigError, match=r'sources\[0\] "reg": link: .*not supported'):
        parse_config(doc, {}, path=Path("sources.toml"))


def test_a_base_href_that_is_no_url_leaves_links_relative_to_the_page() -> None:
    """Found by the fuzzer: ``<base href="http://[">`` made urljoin raise ValueError."""
    body = (
        b'<html><head><base href="http://["></head><body><ul class="listing">'
        b'<li><h3>T</h3><a href="/n/1">x</a></li></ul></body></html>'
    )
    items = LISTING.parse(Fetched(url=URL, status=200, body=body, content_type="text/html"))
    assert [item.url for item in items] == ["https://reg.example.org/n/1"]


WEIRD_LABELS = ["utf-7", "base64", "rot13", "unicode_escape", "raw_unicode_escape", "idna",
                "undefined", "uu", "hex", "zlib"]  # fmt: skip


@pytest.mark.parametrize("label", WEIRD_LABELS)
def test_a_charset_no_browser_uses_is_read_as_if_unlabelled(label: str) -> None:
    """Found by the long fuzz run: ``charset="utf-7"`` decoded ``+2Ac-`` to a lone surrogate
    that lxml refused (UnicodeEncodeError); ``charset=base64`` (no text encoding) raised
    LookupError; ``idna`` and ``undefined`` UnicodeError. Browsers ignore such labels."""
    body = (
        b'<html><body><ul class="listing"><li><h3>Caf\xc3\xa9 +2Ac- \\ud800</h3>'
        b'<a href="/n/1">x</a></li></ul></body></html>'
    )
    content_type = f"text/html; charset={label}"
    assert decode_html(body, content_type) == body.decode("utf-8")
    items = LISTING.parse(Fetched(url=URL, status=200, body=body, content_type=content_type))
    assert [item.title for item in items] == ["Café +2Ac- \\ud800"]
    meta = body.replace(b"<html>", f'<html><meta charset="{label}">'.encode())
    assert LISTING.detail_content(Fetched(url=URL, status=200, body=meta)).startswith("<ul")
