"""The html source's parse step: golden listing pages per regulator layout, and bad pages.

Regenerate an expected file after a deliberate change with
``PYTHONPATH=. python3 -m tests.test_html_parse ico_news`` and review the diff.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ParseError
from monitor.models import Item
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.html import HtmlSource, HtmlSourceConfig
from tests.support.html_layouts import LAYOUTS
from tests.test_rss_parse import as_golden

DATA = Path(__file__).parent / "data" / "html"


def make_source(**keys: Any) -> HtmlSource:
    config = HtmlSourceConfig.model_validate(
        {"name": "page", "type": "html", "every": "30m", "url": "https://example.org/news/", **keys}
    )
    return HtmlSource(config, FetchLimits())


def layout_source(case: str) -> tuple[HtmlSource, Fetched]:
    layout = LAYOUTS[case]
    source = make_source(url=layout["url"], **layout["config"])
    body = (DATA / f"{case}.html").read_bytes()
    return source, Fetched(layout["url"], 200, body, content_type=layout["content_type"])


def as_json(item: Item) -> dict[str, Any]:
    """The RSS golden view plus the sanitized summary (listing markup is untrusted too)."""
    return {**as_golden(item), "safe_summary_html": item.safe_summary_html}


@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_golden_listing(case: str) -> None:
    source, fetched = layout_source(case)
    expected = json.loads((DATA / f"{case}.expected.json").read_text(encoding="utf-8"))
    assert [as_json(item) for item in source.parse(fetched)] == expected


def test_scripts_and_event_handlers_never_reach_the_item_text() -> None:
    for case in LAYOUTS:
        source, fetched = layout_source(case)
        for item in source.parse(fetched):
            for text in (item.title, item.summary, item.safe_summary_html):
                lowered = text.lower()
                assert "<script" not in lowered and "onerror" not in lowered, case
                assert "onclick" not in lowered and "onmouseover" not in lowered, case
                assert "javascript:" not in lowered and "pwned" not in lowered, case


def test_latin1_page_that_declares_nothing_decodes_right() -> None:
    source, fetched = layout_source("garante_newsletter")
    assert b"charset" not in fetched.body.lower()
    summaries = [item.summary for item in source.parse(fetched)]
    assert "L'attività della società è illecita" in summaries[0]
    assert "più di mille reclami" in summaries[1]


def test_windows_1252_page_that_declares_nothing_decodes_right() -> None:
    body = (
        "<html><body><ul><li><a href='/a'>L\u2019amende de 20\u202f000 \u20ac</a>"
        "<p>Décision n\u00b0 1 \u2013 «\u00a0Clearview\u00a0»</p></li></ul></body></html>"
    ).replace("\u202f", " ")
    source = make_source(item="li", title="a", summary="p")
    [item] = source.parse(Fetched("https://example.org/news/", 200, body.encode("cp1252")))
    assert item.title == "L’amende de 20 000 €"
    assert item.summary == "Décision n° 1 – « Clearview »"


def test_header_charset_wins_over_guessing() -> None:
    body = "<ul><li><a href='/a'>Garanzia è</a></li></ul>".encode("iso-8859-15")
    source = make_source(item="li", title="a")
    fetched = Fetched("https://example.org/", 200, body, content_type="text/html; charset=latin-9")
    assert source.parse(fetched)[0].title == "Garanzia è"


def test_links_resolve_relative_protocol_relative_and_base() -> None:
    body = b"""<html><head><base href="https://cdn.example.org/fr/"></head><body>
      <li><a href="notice-1">One</a></li>
      <li><a href="/abs/notice-2">Two</a></li>
      <li><a href="//other.example.net/notice-3">Three</a></li>
      <li><a href="javascript:alert(1)">Four</a></li>
      <li><a href="#top">Five</a></li>
      <li><a href="https://example.org/n6?utm_source=x">Six</a></li>
    </body></html>"""
    source = make_source(item="li", title="a")
    items = source.parse(Fetched("http://example.org/news/", 200, body))
    assert [i.url for i in items] == [
        "https://cdn.example.org/fr/notice-1",
        "https://cdn.example.org/abs/notice-2",
        "https://other.example.net/notice-3",
        None,
        None,
        "https://example.org/n6?utm_source=x",
    ]
    assert items[0].key == "url://cdn.example.org/fr/notice-1"
    assert items[5].key == "url://example.org/n6"  # identity is the canonical link
    assert items[3].key.startswith("hash:")


def test_the_same_link_twice_is_one_item() -> None:
    body = b"<li><a href='/a?utm_source=top'>A</a></li><li><a href='/a'>A again</a></li>"
    items = make_source(item="li", title="a").parse(Fetched("https://example.org/", 200, body))
    assert [i.title for i in items] == ["A"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"item": "div.news-list article"},
            "item selector 'div.news-list article' matched nothing",
        ),
        ({"title": "h5.headline"}, "title selector 'h5.headline' matched nothing in any of the 4"),
        ({"link": "a.more@href"}, "link selector 'a.more@href' matched nothing"),
        ({"date": "time.published"}, "date selector 'time.published' matched nothing"),
        ({"summary": "div.teaser"}, "summary selector 'div.teaser' matched nothing"),
        ({"link": "h3 a@data-href"}, "link selector 'h3 a@data-href' matched nothing"),
    ],
)
def test_a_selector_that_matches_nothing_is_a_named_failure(
    change: dict[str, str], message: str
) -> None:
    layout = LAYOUTS["ico_news"]
    source = make_source(url=layout["url"], **{**layout["config"], **change})
    body = (DATA / "ico_news.html").read_bytes()
    with pytest.raises(ParseError) as caught:
        source.parse(Fetched(layout["url"], 200, body))
    assert message in str(caught.value)
    assert "source 'page'" in str(caught.value)
    assert "layout" in (caught.value.hint or "")


def test_one_entry_without_a_date_is_kept_not_a_failure() -> None:
    body = b"<ul><li><a href='/a'>Only entry</a><span class='d'></span></li></ul>"
    source = make_source(item="li", title="a", date="time")
    [item] = source.parse(Fetched("https://example.org/", 200, body))
    assert item.published is None


def test_entries_without_a_date_or_in_an_unknown_language_are_kept_undated() -> None:
    body = b"""<ul>
      <li><a href='/a'>A</a><span class='d'>16 stycznia 2025</span></li>
      <li><a href='/b'>B</a></li>
      <li><a href='/c'>C</a><span class='d'>16 janvier 2025</span></li>
    </ul>"""
    source = make_source(item="li", title="a", date="span.d", language="pl")
    items = source.parse(Fetched("https://example.org/", 200, body))
    assert [(i.title, i.published is not None) for i in items] == [
        ("A", False),
        ("B", False),
        ("C", True),
    ]


def test_language_comes_from_html_lang_when_not_configured() -> None:
    body = b"<html lang='en-US'><body><li><a href='/a'>A</a><i>01/02/2025</i></li></body></html>"
    [item] = make_source(item="li", title="a", date="i").parse(
        Fetched("https://example.org/", 200, body)
    )
    assert item.language == "en-US"
    assert item.published is not None and (item.published.month, item.published.day) == (1, 2)


def test_empty_body_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="empty"):
        make_source(item="li", title="a").parse(Fetched("https://example.org/", 200, b"  \n"))


def test_not_modified_gives_no_items() -> None:
    assert make_source(item="li", title="a").parse(Fetched("https://example.org/", 304)) == []


def test_limits_follow_the_source_keys() -> None:
    source = make_source(item="li", title="a", timeout="12s", max_bytes="1MiB")
    assert source.limits.deadline == timedelta(seconds=12)
    assert source.limits.max_bytes == 1024 * 1024


def _regenerate(case: str) -> None:
    source, fetched = layout_source(case)
    items = [as_json(item) for item in source.parse(fetched)]
    text = json.dumps(items, indent=2, ensure_ascii=False) + "\n"
    (DATA / f"{case}.expected.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        _regenerate(name)


def test_a_date_attribute_missing_on_an_entry_falls_back_to_its_text() -> None:
    body = b"""<ul>
      <li><a href='/a'>A</a><time datetime='2025-01-16'>16 January 2025</time></li>
      <li><a href='/b'>B</a><time>3 October 2024</time></li>
    </ul>"""
    source = make_source(item="li", title="a", date="time@datetime", language="en-GB")
    items = source.parse(Fetched("https://example.org/", 200, body))
    assert [i.published.date().isoformat() if i.published else None for i in items] == [
        "2025-01-16",
        "2024-10-03",
    ]
