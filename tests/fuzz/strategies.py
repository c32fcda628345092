"""Grammar-ish Hypothesis strategies: inputs shaped like the real thing, with noise in
the places real inputs go wrong, so the fuzzers get past the first check of each parser."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hypothesis import strategies as st

from monitor.dates import MONTHS
from monitor.matching.currencies import CODES, NAMES, SYMBOLS
from monitor.matching.money import _SCALES

# --- bits of text --------------------------------------------------------------------------

WORDS = ["clearview", "fine", "Amende", "boete", "award", "café", "Zürich", "€", "ü", "x"]
ENTITIES = [
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&#233;",
    "&#x20AC;",
    "&nbsp;",
    "&bogus;",
    "&#0;",
    "&#xD800;",
    "&#99999999;",
    "&",
    "&#;",
    "&eacute;",
]
NOISE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
word = st.one_of(st.sampled_from(WORDS), NOISE)


def joined(parts: st.SearchStrategy[str], *, max_size: int = 8, sep: str = " ") -> Any:
    return st.lists(parts, max_size=max_size).map(sep.join)


# --- dates ---------------------------------------------------------------------------------

LANGUAGES = [
    None,
    "",
    "en",
    "en-US",
    "en_us",
    "EN-us",
    "en-GB",
    "fr",
    "fr-FR",
    "nl",
    "nl-NL",
    "it",
    "de",
    "de-AT",
    "es",
    "es-419",
    "ja",
    "xx-yy",
    " en-US ",
    "zh-Hant-TW",
]
MONTH_NAMES = [*sorted(MONTHS), "Février", "März", "AOÛT", "décembre", "Sept.", "okt.", "mayo"]
WEEKDAYS = ["Mon,", "Tuesday", "mardi", "Mer.", "zondag", "lunedì", "Montag,", "lunes"]
ZONES = ["", " GMT", " UTC", "Z", "z", "+01:00", "-0500", "+99:99", "-23:59", "+24", "+00"]
number = st.integers(min_value=-5, max_value=100_000).map(str)
day = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["1er", "16th", "2nd", "3.", "01"]))
year = st.one_of(st.integers(1890, 2210).map(str), st.integers(0, 99).map("{:02d}".format))
clock = st.builds(
    "{}{}{}{}{}{}".format,
    st.sampled_from(["", " ", ", ", " à ", " at ", " om ", " - ", "T"]),
    st.integers(0, 30),
    st.sampled_from([":", "h", ".", "::"]),
    st.integers(0, 99).map("{:02d}".format),
    st.sampled_from(["", ":00", ":61", ".5", " pm", " a.m.", " PM"]),
    st.sampled_from(ZONES),
)
named_date = st.builds(
    "{}{} {}{} {}{}".format,
    st.sampled_from(["", *[w + " " for w in WEEKDAYS]]),
    day,
    st.sampled_from(MONTH_NAMES),
    st.sampled_from(["", ".", ",", " de", " del"]),
    year,
    st.one_of(st.just(""), clock),
)
month_first_date = st.builds(
    "{} {}, {}{}".format, st.sampled_from(MONTH_NAMES), day, year, st.one_of(st.just(""), clock)
)
numeric_date = st.builds(
    "{}{}{}{}{}{}".format,
    st.integers(0, 9999).map(str),
    st.sampled_from(["-", "/", ".", " "]),
    st.integers(0, 99).map(str),
    st.sampled_from(["-", "/", ".", "-"]),
    st.integers(0, 9999).map(str),
    st.one_of(st.just(""), clock),
)
date_text = st.one_of(
    named_date,
    month_first_date,
    numeric_date,
    st.builds("{}{}{}".format, NOISE, st.one_of(named_date, month_first_date, numeric_date), NOISE),
    joined(st.one_of(named_date, numeric_date, NOISE, st.sampled_from(MONTH_NAMES), number)),
    st.text(max_size=80),
)

# --- money ---------------------------------------------------------------------------------

SEPARATORS = [".", ",", " ", "\u00a0", "\u202f", "'", ""]
digits = st.text(alphabet="0123456789", min_size=1, max_size=400)
grouped_number = st.builds(
    lambda head, groups, sep, dec: head + "".join(sep + g for g in groups) + dec,
    st.integers(0, 999).map(str),
    st.lists(st.integers(0, 999).map("{:03d}".format), max_size=6),
    st.sampled_from(SEPARATORS),
    st.sampled_from(["", ".5", ",25", ".", ","]),
)
money_number = st.one_of(grouped_number, digits, number)
currency_before = st.sampled_from(sorted(SYMBOLS) + sorted(CODES)[:30] + ["EUR ", "$ ", "€-"])
currency_after = st.sampled_from(
    [
        *sorted(SYMBOLS),
        "EUR",
        "USD",
        "euro",
        "euros",
        "d'euros",
        "de euros",
        "di euro",
        *sorted(NAMES)[:20],
    ]
)
scale = st.sampled_from(["", *(" " + s for s in _SCALES), *_SCALES, "."])
amount_text = st.one_of(
    st.builds("{}{}{}".format, currency_before, money_number, scale),
    st.builds("{}{} {}".format, money_number, scale, currency_after),
    st.builds(
        "{}{}{}{}{}".format,
        currency_before,
        money_number,
        st.sampled_from(["-", "–", " - ", "—", "-€"]),
        money_number,
        scale,
    ),
    st.builds(
        "{}{}{}".format,
        st.sampled_from(["-", "\u2212", "6.302-", "2016/"]),
        currency_before,
        money_number,
    ),
)
money_text = st.one_of(
    joined(st.one_of(amount_text, word, money_number, currency_after), max_size=10),
    st.text(max_size=200),
    st.text(alphabet="0123456789.,' -–€$EURmk", max_size=300),
)

# --- queries -------------------------------------------------------------------------------

FIELDS = [
    "title",
    "summary",
    "content",
    "published",
    "amount",
    "notice_type",
    "award_amount",
    "response_deadline",
    "posted",
    "active",
    "buyer",
    "_x",
    "Title",
    "unknown",
]
KINDS = ["text", "number", "money", "date", "bool", "any", "weird"]
COMPARE_VALUES = [
    "1e6",
    "1_000_000",
    "1000000",
    "-5",
    "0",
    "1e999",
    "nan",
    "inf",
    "2026-01-01",
    "2026-13-45",
    "2026-01-01T10:00:00Z",
    "2026-01-01 10:00+01:00",
    "now",
    "30d",
    "-7d",
    "+99999w",
    "12h",
    "x",
    "",
    "1.5",
    ".5",
    "1e",
    "0x10",
]
REGEXES = [
    "/clear ?view/",
    "/a(b/",
    "/\\1/",
    "/(?=x)y/",
    "/.*/",
    "/é+/",
    "/a\\/b/",
    "/[/",
    "/(a*)*b/",
    "/x{1000}{1000}/",
    "/(?i)Ü/",
    "/",
]
query_token = st.one_of(
    word,
    st.sampled_from(
        [
            "AND",
            "OR",
            "NOT",
            "and",
            "NEAR",
            "NEAR/",
            "NEAR/0",
            "NEAR/5",
            "NEAR/999999",
            "(",
            ")",
            '"',
            "*",
            "-x",
            "a*",
            "*a",
            "x**",
        ]
    ),
    st.builds('"{}"'.format, joined(word, max_size=4)),
    st.builds("{}:{}".format, st.sampled_from(FIELDS), st.one_of(word, st.just("("), st.just(""))),
    st.builds(
        "{}{}{}{}".format,
        st.sampled_from(FIELDS),
        st.sampled_from([">=", "<=", ">", "<", "=", "=>"]),
        st.sampled_from(COMPARE_VALUES),
        st.sampled_from(["", " EUR", " EUX", " usd", " USD"]),
    ),
    st.sampled_from(REGEXES),
    st.builds("{}:{}".format, st.sampled_from(FIELDS), st.sampled_from(REGEXES)),
)
query_text = st.one_of(
    joined(query_token, max_size=14),
    st.builds("{}{}{}".format, st.text("(", max_size=120), word, st.text(")", max_size=120)),
    st.text(max_size=100),
)
fields_and_kinds = st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(KINDS), max_size=6)

# --- feeds ---------------------------------------------------------------------------------

ENCODINGS = [
    "utf-8",
    "iso-8859-1",
    "windows-1252",
    "utf-16",
    "utf-16-le",
    "shift_jis",
    "koi8-r",
    "gb2312",
    "ascii",
    "utf-32",
    "cp037",
    "bogus-charset",
    "",
    # Labels Python knows that are no web encoding, or no text encoding at all.
    "utf-7",
    "base64",
    "rot13",
    "unicode_escape",
    "idna",
    "undefined",
    "punycode",
]


@st.composite
def feed_text(draw: st.DrawFn) -> str:
    """Element text: words, entities, CDATA, markup, escaped markup."""
    parts = draw(
        st.lists(
            st.one_of(
                word,
                st.sampled_from(ENTITIES),
                st.builds("<![CDATA[{}]]>".format, joined(st.one_of(word, st.just("<b>")))),
                st.sampled_from(
                    [
                        "<b>bold</b>",
                        "&lt;p&gt;x&lt;/p&gt;",
                        "<br/>",
                        "]]>",
                        "<",
                        ">",
                        "<![CDATA[",
                        "<!-- c -->",
                        "<?pi x?>",
                        "\x00",
                        "\x0c",
                    ]
                ),
                date_text,
            ),
            max_size=6,
        )
    )
    return "".join(parts)


LINKS = [
    "https://example.org/n/1",
    "/relative/2",
    "//other.example/3",
    "javascript:alert(1)",
    "http://[",
    "http://[::1]:80/x",
    "https://exa mple.org/",
    "12345",
    "",
    "mailto:a@b",
    "http://example.org/?utm_source=x#ref=rss",
    "https://a.example/%zz",
]


@st.composite
def rss_entry(draw: st.DrawFn, atom: bool) -> str:
    fields = []
    for tag in draw(
        st.lists(
            st.sampled_from(
                ["title", "link", "id", "date", "summary", "content", "author", "source"]
            ),
            max_size=8,
        )
    ):
        text = draw(feed_text())
        if tag == "link":
            href = draw(st.sampled_from(LINKS))
            fields.append(
                f'<link href="{href}" rel="{draw(st.sampled_from(["alternate", "self", ""]))}"/>'
                if atom
                else f"<link>{href}</link>"
            )
        elif tag == "id":
            fields.append(f"<id>{text}</id>" if atom else f"<guid>{text}</guid>")
        elif tag == "date":
            value = draw(date_text)
            fields.append(f"<updated>{value}</updated>" if atom else f"<pubDate>{value}</pubDate>")
        elif tag == "summary":
            kind = draw(st.sampled_from(["", ' type="html"', ' type="text"', ' type="xhtml"']))
            fields.append(
                f"<summary{kind}>{text}</summary>" if atom else f"<description>{text}</description>"
            )
        elif tag == "content":
            fields.append(
                f"<content>{text}</content>"
                if atom
                else f"<content:encoded>{text}</content:encoded>"
            )
        elif tag == "source":
            fields.append(f'<source url="{draw(st.sampled_from(LINKS))}">{text}</source>')
        else:
            lang = draw(
                st.sampled_from(["", ' xml:lang="fr"', ' xml:lang="en-US"', ' xml:lang=""'])
            )
            fields.append(f"<{tag}{lang}>{text}</{tag}>")
    inner = "".join(fields)
    return f"<entry>{inner}</entry>" if atom else f"<item>{inner}</item>"


@st.composite
def feed_document(draw: st.DrawFn) -> tuple[bytes, str | None]:
    """An RSS 2.0, RDF or Atom document in some encoding, maybe cut short or corrupted."""
    kind = draw(st.sampled_from(["rss", "atom", "rdf", "none"]))
    atom = kind == "atom"
    entries = "".join(draw(st.lists(rss_entry(atom), max_size=6)))
    language = draw(st.sampled_from(["", "<language>fr</language>", "<language>en-us</language>"]))
    head = draw(st.sampled_from(["", "<title>F</title>", "<title>&bogus;</title>"]))
    if kind == "rss":
        doc = (
            f'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
            f"<channel>{head}{language}{entries}</channel></rss>"
        )
    elif atom:
        doc = f'<feed xmlns="http://www.w3.org/2005/Atom">{head}{entries}</feed>'
    elif kind == "rdf":
        doc = (
            '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
            f'xmlns="http://purl.org/rss/1.0/"><channel>{head}</channel>{entries}</rdf:RDF>'
        )
    else:
        doc = draw(st.sampled_from(["<html><body>", "<!DOCTYPE html>", "", "<x>"])) + entries
    encoding = draw(st.sampled_from(ENCODINGS))
    prolog = draw(
        st.sampled_from(
            [
                "",
                f'<?xml version="1.0" encoding="{encoding}"?>',
                '<?xml version="1.0"?>',
                "  \n" + f'<?xml version="1.0" encoding="{encoding}"?>',
                "\ufeff",
                '<!DOCTYPE rss [<!ENTITY x "xx">]>',
                "<!DOCTYPE rss>",
                "<!-- <!ENTITY -->",
            ]
        )
    )
    text = prolog + doc
    body = _encode(text, encoding)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(body)))
        body = body[:cut]
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=8)) + body[at:]
    content_type = draw(content_types)
    return body, content_type


def _encode(text: str, label: str) -> bytes:
    """``text`` in the encoding ``label`` names, else UTF-8 (the label then lies)."""
    try:
        return text.encode(label or "utf-8", "xmlcharrefreplace")
    except (LookupError, UnicodeError, TypeError):
        return text.encode("utf-8", "surrogatepass")


content_types = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "application/rss+xml",
            "text/xml; charset=iso-8859-1",
            "text/html",
            "application/atom+xml; charset=utf-16",
            "text/html; charset=shift_jis",
            "text/plain; charset=",
            'text/html; charset="utf-7"',
            ";;;",
            "charset=x",
        ]
    ),
    st.builds("text/html; charset={}".format, st.sampled_from(ENCODINGS)),
    st.text(max_size=30),
)

# --- html listings -------------------------------------------------------------------------


@st.composite
def html_listing(draw: st.DrawFn) -> bytes:
    """A listing page with nesting, attributes and bad markup, in some charset."""

    def entry() -> str:
        parts = draw(
            st.lists(
                st.sampled_from(
                    [
                        "<h3>{t}</h3>",
                        '<a href="{l}">{t}</a>',
                        '<time datetime="{d}">{t}</time>',
                        "<time>{d}</time>",
                        '<p class="summary">{t}</p>',
                        "<span>{d}</span>",
                        "<div><div><p>{t}</p>",
                        "</div>",
                        "<h3>",
                        '<a href="{l}"',
                        "<script>{t}</script>",
                        "<!-- {t} -->",
                        "<![CDATA[{t}]]>",
                        "<svg><a href='{l}'>{t}</a></svg>",
                    ]
                ),
                max_size=7,
            )
        )
        if draw(st.booleans()):  # most real entries have a title and a link
            parts.insert(0, '<h3>{t}</h3><a href="{l}">{t}</a>')
        return "".join(
            p.format(t=draw(feed_text()), l=draw(st.sampled_from(LINKS)), d=draw(date_text))
            for p in parts
        )

    items = "".join(
        f"<li{draw(st.sampled_from(['', ' class=x', '>']))}>{entry()}</li>"
        for _ in range(draw(st.integers(0, 6)))
    )
    charset = draw(st.sampled_from(ENCODINGS))
    base = draw(
        st.sampled_from(
            [
                "",
                '<base href="/sub/">',
                '<base href="http://[">',
                '<base href="">',
                '<base href="https://b.example/">',
            ]
        )
    )
    lang = draw(st.sampled_from(["", ' lang="fr"', ' lang="en-US"', " lang", ' lang=""']))
    page = (
        f'<html{lang}><head><meta charset="{charset}">{base}</head><body>'
        f'<ul class="listing">{items}</ul>{draw(st.sampled_from(["", "</body></html>", "<ul>"]))}'
    )
    return _encode(page, charset)


SELECTORS = [
    "ul.listing li",
    "li",
    "h3",
    "a@href",
    "a",
    "time@datetime",
    "time",
    "p.summary",
    "@href",
    "@",
    "li > a@href",
    "div div p",
    ":is(h3, a)",
    "a[href^=http]@href",
    "li:nth-child(2n)",
    "*",
    "p@class",
    "span@data-x",
    "a@href@x",
    "::before",
    "[",
    "li:has(> a)",
    "a@HREF",
]

# --- config ---------------------------------------------------------------------------------

ENV_NAMES = ["SECRET", "TOKEN", "MISSING", "EMPTY", "VIA_FILE", "BAD_FILE"]
env_value = st.one_of(
    st.sampled_from(
        [
            "${SECRET}",
            "${MISSING}",
            "${MISSING:-fallback}",
            "${EMPTY}",
            "$$",
            "$",
            "${VIA_FILE}",
            "${BAD_FILE}",
            "${SECRET:-}",
            "${}",
            "${1BAD}",
            "$${X}",
            "pre-${TOKEN}-post",
            "${SECRET:-${TOKEN}}",
        ]
    ),
    st.text(max_size=20),
)
SOURCE_TYPES = ["rss", "html", "sam", "ocds", "ted", "nope", 5]
NOTIFIER_TYPES = ["webhook", "email", "slack", None]
scalar = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    env_value,
    st.sampled_from(
        [
            "15m",
            "1d",
            "0s",
            "-5m",
            "99999999999d",
            "https://example.org/feed",
            "http://[",
            "10MiB",
            "Europe/Amsterdam",
            "Mars/Olympus",
            "daily 08:00",
            "clearview AND fine",
            "(",
            "a@b",
            "sqlite:///:memory:",
        ]
    ),
)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SOURCE_KEYS = [
    "name",
    "type",
    "url",
    "every",
    "language",
    "enabled",
    "item",
    "title",
    "link",
    "date",
    "summary",
    "follow",
    "follow_limit",
    "detail_selector",
    "timeout",
    "max_bytes",
    "api_key",
    "query",
    "bogus",
]
NOTIFIER_KEYS = [
    "name",
    "type",
    "url",
    "secret",
    "rules",
    "digest",
    "host",
    "port",
    "username",
    "password",
    "to",
    "from",
    "starttls",
    "tls",
    "headers",
    "bogus",
]
RULE_KEYS = ["name", "query", "sources", "on_update", "exclude", "bogus"]
MONITOR_KEYS = [
    "database",
    "user_agent",
    "baseline",
    "max_attempts",
    "timezone",
    "failing_after",
    "disable_after",
    "dedupe",
    "dedupe_threshold",
    "dedupe_window",
    "http_host",
    "http_port",
    "subscriptions_allow_private",
    "api_token",
    "bogus",
]


def table(keys: list[str], special: Mapping[str, st.SearchStrategy[Any]]) -> Any:
    pairs = st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)).flatmap(
        lambda chosen: st.fixed_dictionaries({k: special.get(k, value) for k in chosen})
    )
    return pairs


names = st.one_of(st.sampled_from(["a", "feed-1", "cv", "hook", "Bad Name", "-x", ""]), NOISE)
config_document = st.fixed_dictionaries(
    {},
    optional={
        "monitor": table(MONITOR_KEYS, {}),
        "sources": st.lists(
            table(
                SOURCE_KEYS,
                {"name": names, "type": st.sampled_from(SOURCE_TYPES), "query": query_text},
            ),
            max_size=3,
        ),
        "rules": st.lists(
            table(
                RULE_KEYS,
                {
                    "name": names,
                    "query": query_text,
                    "exclude": query_text,
                    "sources": st.lists(names, max_size=2),
                },
            ),
            max_size=3,
        ),
        "notifiers": st.lists(
            table(
                NOTIFIER_KEYS,
                {
                    "name": names,
                    "type": st.sampled_from(NOTIFIER_TYPES),
                    "rules": st.lists(names, max_size=2),
                },
            ),
            max_size=3,
        ),
        "extra": value,
    },
)


def toml_text(doc: Mapping[str, Any]) -> str:
    """``doc`` written as TOML (top-level tables and arrays of tables; inline below)."""
    lines: list[str] = []
    for key, item in doc.items():
        if isinstance(item, dict):
            lines.append(f"[{_key(key)}]")
            lines += [f"{_key(k)} = {_inline(v)}" for k, v in item.items()]
        elif isinstance(item, list) and item and all(isinstance(e, dict) for e in item):
            for entry in item:
                lines.append(f"[[{_key(key)}]]")
                lines += [f"{_key(k)} = {_inline(v)}" for k, v in entry.items()]
        else:
            lines.insert(0, f"{_key(key)} = {_inline(item)}")
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return json.dumps(key)


def _inline(item: Any) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        if item != item:
            return "nan"
        if item in (float("inf"), float("-inf")):
            return "inf" if item > 0 else "-inf"
        return repr(item)
    if isinstance(item, int):
        return str(item)
    if isinstance(item, str):
        return json.dumps(item)  # JSON's escapes are TOML's (a lone surrogate is refused)
    if isinstance(item, list):
        return "[" + ", ".join(_inline(v) for v in item) + "]"
    if item is None:
        return '""'
    return "{" + ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in item.items()) + "}"
