"""canonical_url, item_key and content_hash: the identity of items across fetches."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from monitor.identity import CONTENT_HASH_VERSION, canonical_url, content_hash, item_key

CANONICAL = [
    # Google News redirect links carry oc=5.
    (
        "https://news.google.com/rss/articles/CBMinwFBVV95cUxObDNTMW1VT3pC?oc=5",
        "https://news.google.com/rss/articles/CBMinwFBVV95cUxObDNTMW1VT3pC",
    ),
    # Spiegel's tracking fragment on <link> (not on <guid>).
    (
        "http://www.spiegel.de/politik/a-1026426.html#ref=rss",
        "http://www.spiegel.de/politik/a-1026426.html",
    ),
    ("https://e.org/a#xtor=RSS-3208", "https://e.org/a"),
    ("https://e.org/a#utm_source=feed", "https://e.org/a"),
    ("https://e.org/a#section-2", "https://e.org/a"),
    ("https://e.org/app#!/notice/42", "https://e.org/app#!/notice/42"),
    ("https://e.org/app/#/notice/42?tab=1", "https://e.org/app/#/notice/42?tab=1"),
    (
        "https://e.org/p?utm_source=rss&id=3&utm_medium=feed&UTM_Campaign=x",
        "https://e.org/p?id=3",
    ),
    ("https://e.org/p?b=2&fbclid=IwAR0&a=1&gclid=x&msclkid=y", "https://e.org/p?b=2&a=1"),
    ("https://e.org/p?mc_cid=1&mc_eid=2&_hsenc=3&_hsmi=4&igshid=5", "https://e.org/p"),
    ("https://e.org/p?ref=rss&ref_src=twsrc&cmpid=rss&xtor=RSS", "https://e.org/p"),
    ("https://e.org/p?at_medium=x&at_campaign=y&spm=a.b&ito=1&wt_mc=2&rss=1", "https://e.org/p"),
    ("https://e.org/p?dclid=1&q=clearview&oc=5", "https://e.org/p?q=clearview"),
    ("https://e.org/p?reference=1&octopus=2", "https://e.org/p?reference=1&octopus=2"),
    ("HTTPS://Example.ORG/Path/To", "https://example.org/Path/To"),
    ("http://example.org:80/a", "http://example.org/a"),
    ("https://example.org:443/a", "https://example.org/a"),
    ("http://example.org:443/a", "http://example.org:443/a"),
    ("https://example.org:8443/a", "https://example.org:8443/a"),
    ("https://example.org", "https://example.org/"),
    ("https://example.org?x=1", "https://example.org/?x=1"),
    ("https://example.org/a?", "https://example.org/a"),
    ("https://e.org/%7euser/a%2fb%c3%a9", "https://e.org/~user/a%2Fb%C3%A9"),
    ("https://e.org/caf\u00e9 menu", "https://e.org/caf%C3%A9%20menu"),
    ("https://e.org/s?q=a+b&&tag=x%2a", "https://e.org/s?q=a+b&tag=x%2A"),
    ("https://user:pw@Example.org:8080/x", "https://user:pw@example.org:8080/x"),
    ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
    ("http://B\u00fccher.example/x", "http://xn--bcher-kva.example/x"),
    ("https://example.org./a", "https://example.org/a"),
    ("  https://e.org/a \n", "https://e.org/a"),
    # Not rewritten: no host, or garbage. Never raises.
    ("  not a url  ", "not a url"),
    ("mailto:press@e.org", "mailto:press@e.org"),
    ("tag:blog.example.com,2026:news/1", "tag:blog.example.com,2026:news/1"),
    ("/relative/path?utm_source=x", "/relative/path?utm_source=x"),
    ("http://e.org:99999/x", "http://e.org:99999/x"),
    ("http://[::1/x", "http://[::1/x"),
    ("", ""),
]


@pytest.mark.parametrize(("url", "expected"), CANONICAL)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(("url", "expected"), CANONICAL)
def test_canonical_url_is_idempotent(url: str, expected: str) -> None:
    assert canonical_url(expected) == expected


def test_equivalent_spellings_agree() -> None:
    spellings = [
        "https://e.org/a%7Eb?id=1",
        "HTTPS://E.ORG:443/a~b?id=1&utm_source=rss#ref=rss",
        "https://e.org/a%7eb?fbclid=x&id=1",
    ]
    assert len({canonical_url(s) for s in spellings}) == 1


# --- item_key ---------------------------------------------------------------------------------


def test_native_id_wins() -> None:
    assert item_key("  press-42 ", "https://e.org/a", "T", "B") == "id:press-42"
    assert item_key("tag:e.org,2026:1", None, "T", "B") == "id:tag:e.org,2026:1"


def test_url_id_is_keyed_like_the_link() -> None:
    by_guid = item_key(
        "http://www.spiegel.de/a-1.html", "http://www.spiegel.de/a-1.html#ref=rss", "", ""
    )
    by_link = item_key(None, "http://www.spiegel.de/a-1.html#ref=rss", "", "")
    assert by_guid == by_link == "url://www.spiegel.de/a-1.html"
    assert item_key("HTTPS://E.org/x?utm_source=a", None, "", "") == "url://e.org/x"


def test_link_when_no_id() -> None:
    for missing in (None, "", "   "):
        key = item_key(missing, "https://news.google.com/rss/articles/CBMi?oc=5", "T", "B")
        assert key == "url://news.google.com/rss/articles/CBMi"


def test_hash_when_no_id_and_no_link() -> None:
    key = item_key(None, "  ", "Fine for Clearview", "The authority fined it.")
    digest = hashlib.sha256(b"fine for clearview\nthe authority fined it.").hexdigest()[:32]
    assert key == f"hash:{digest}"
    assert len(key) == len("hash:") + 32


def test_hash_ignores_case_and_whitespace_only() -> None:
    a = item_key(None, None, "Fine  for\nClearview", "The  authority")
    assert a == item_key(None, None, "FINE FOR CLEARVIEW ", "the authority")
    assert a != item_key(None, None, "Fine for Clearview", "The authority!")
    assert a != item_key(None, None, "Fine for", "Clearview The authority")  # title/body split
    assert item_key(None, None, "Straße", "") == item_key(None, None, "STRASSE", "")


# --- content_hash -----------------------------------------------------------------------------


def test_content_hash_is_versioned_and_stable() -> None:
    value = content_hash("T", "S", "C", "https://e.org/a", {"author": "Ann"})
    assert CONTENT_HASH_VERSION == "v1"
    assert value.startswith("v1:")
    assert len(value) == len("v1:") + 64
    # Pinned: changing what goes into the hash must come with a new CONTENT_HASH_VERSION.
    assert (
        value
        == "v1:"
        + hashlib.sha256(
            b'{"content":"C","fields":{"author":"Ann"},"summary":"S","title":"T",'
            b'"url":"https://e.org/a"}'
        ).hexdigest()
    )


def test_content_hash_ignores_presentation_noise() -> None:
    base = content_hash("A  title", "Some\n summary", "", "https://e.org/a", {"b": 1, "a": "x"})
    assert base == content_hash(
        " A title ",
        "Some summary",
        "",
        "https://E.org:443/a?utm_source=rss#ref=rss",
        {"a": "x ", "b": 1},
    )


@pytest.mark.parametrize(
    "changed",
    [
        ("Another title", "S", "C", "https://e.org/a", {}),
        ("T", "S2", "C", "https://e.org/a", {}),
        ("T", "S", "C2", "https://e.org/a", {}),
        ("T", "S", "C", "https://e.org/b", {}),
        ("T", "S", "C", None, {}),
        ("T", "S", "C", "https://e.org/a", {"amount": "100"}),
        ("t", "S", "C", "https://e.org/a", {}),  # a case fix is an edit
        ("T", "", "SC", "https://e.org/a", {}),  # moving text between fields is an edit
    ],
)
def test_content_hash_sees_edits(changed: tuple[str, str, str, str | None, dict[str, str]]) -> None:
    assert content_hash("T", "S", "C", "https://e.org/a", {}) != content_hash(*changed)


def test_content_hash_handles_rich_field_values() -> None:
    fields = {
        "deadline": datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
        "amount": Decimal("20000000.00"),
        "cpv": ["72000000", "48000000"],
        "buyer": {"name": "Agency  X", "country": "GB"},
    }
    value = content_hash("T", "", "", None, fields)
    assert value == content_hash("T", "", "", None, dict(reversed(list(fields.items()))))
    assert value != content_hash("T", "", "", None, fields | {"cpv": ["48000000", "72000000"]})


def test_http_and_https_are_one_item() -> None:
    assert item_key(None, "http://e.org/a?utm_source=x", "t", "") == item_key(
        None, "https://E.org/a", "t", ""
    )
    assert item_key("https://e.org/a", None, "t", "") == "url://e.org/a"
