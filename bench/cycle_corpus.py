"""The sources bench_cycle.py serves: RSS, Atom, SAM-style JSON and HTML listings.

Source ``i`` has the kind ``KINDS[i % len(KINDS)]`` (two in five RSS, one in five each of
Atom, HTML and SAM). Version ``v`` of a source is its newest ``items`` items, newest first;
each version adds NEW_SHARE new items on top and drops as many off the end, and the items
two versions share are byte-identical. About CLEARVIEW_SHARE of the items are about a fine
against Clearview, so that some rules match. Every body is built from a seed, so a version
is the same bytes every time it is built.

Sizes are those of real sources: an RSS or Atom item carries a ~1.5 KB HTML summary
(WordPress style, the summaries of bench_parse.py), an HTML listing page wraps ~20 KB of
navigation and footer around its items, and a SAM.gov record is a real record's ~1.7 KB of
JSON (tests/data/real/samgov_v2_search_2026-02-02_limit10.json) with its own id and title.
"""

from __future__ import annotations

import html
import json
import random
from dataclasses import dataclass
from pathlib import Path

from bench_parse import SUMMARY_BYTES, WORDS  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("rss", "atom", "rss", "html", "sam")
NEW_SHARE = 0.10
CLEARVIEW_SHARE = 0.05
SAM_KEY = "bench-sam-key"  # a made-up key: the loopback server accepts any
_SAM_TEMPLATE = json.loads(
    (ROOT / "tests/data/real/samgov_v2_search_2026-02-02_limit10.json").read_text()
)["opportunitiesData"][0]

_REGULATORS = ("CNIL", "Autoriteit Persoonsgegevens", "ICO", "Garante", "the FTC", "AEPD")
_AMOUNTS = ("€20 million", "€30.5 million", "£7.5m", "€5.2 million", "$1.1m", "€250,000")
_CLEARVIEW_TITLES = (
    "{reg} fines Clearview AI {amount} over its facial recognition database",
    "Clearview AI hit with {amount} penalty by {reg}",
    "{reg} legt Clearview boete op van {amount}",
    "{reg} inflige une amende de {amount} à Clearview AI",
    "Clearview ordered to pay {amount} fine after {reg} investigation",
)

RULES = """
[[rules]]
name = "clearview-fines"
query = '''clearview AND (fine* OR penalt* OR boete* OR amende* OR sanction* OR sanzion*
         OR multa OR reprimand* OR "cease and desist" OR settlement)'''

[[rules]]
name = "clearview-sole-source"
query = '''(clearview OR "facial recognition") AND ("sole source" OR "intent to award"
         OR "6.302-1" OR "justification and approval" OR "only one responsible source")'''

[[rules]]
name = "biometrics-enforcement"
query = 'title:("facial recognition" OR biometric*) AND (fine* OR reprimand* OR "data protection")'

[[rules]]
name = "procurement-notices"
query = '("intent to award" OR "sole source" OR "justification and approval") NOT title:cancelled'
"""


def _vocabulary(size: int = 20_000) -> tuple[tuple[str, ...], list[float]]:
    """Words drawn with a Zipf law, like the words of news text (as in bench_dedupe.py):
    the real words of bench_parse.py rank first, then seeded pseudo-words. A vocabulary
    of a few dozen words would make every item a near duplicate of every other one."""
    rng = random.Random(20_000)
    letters = "abcdefghijklmnopqrstuvwxyzéü"
    pseudo = ("".join(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(size))
    vocabulary = (*WORDS, *pseudo)
    cumulative, total = [], 0.0
    for rank in range(1, len(vocabulary) + 1):
        total += 1 / rank
        cumulative.append(total)
    return vocabulary, cumulative


VOCABULARY, _CUMULATIVE = _vocabulary()


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(VOCABULARY, cum_weights=_CUMULATIVE, k=count))


def _sentence(rng: random.Random) -> str:
    return html.escape(_words(rng, rng.randint(8, 18)).capitalize(), quote=False) + "."


def summary_html(rng: random.Random, index: int) -> str:
    """About SUMMARY_BYTES of the HTML feeds really carry, shaped as bench_parse.py's:
    paragraphs, absolute and relative links, an image, a list, inline styles, a script."""
    parts = [
        f'<p><img src="/media/{index}/thumb.jpg" alt="" width="120" height="80" '
        f'style="float:left;margin:0 8px 8px 0"/>{_sentence(rng)} {_sentence(rng)}</p>'
    ]
    size = len(parts[0])
    while size < SUMMARY_BYTES - 300:
        parts.append(
            f'<p>{_sentence(rng)} <a href="https://www.example.gov/notices/{rng.randint(1, 99999)}'
            f'?utm_source=rss&amp;utm_medium=feed">{_sentence(rng)}</a> '
            f"<strong>{rng.choice(WORDS)}</strong> {_sentence(rng)}</p>"
        )
        size += len(parts[-1])
    parts.append(
        f'<ul><li><a href="../documents/{index}.pdf">Documents</a></li>'
        f'<li><a href="mailto:tenders@example.gov">Contact</a></li></ul>'
        f'<script>track("{index}")</script><p>&copy; Example &amp; Co&nbsp;2026</p>'
    )
    return "".join(parts)


@dataclass(frozen=True)
class Entry:
    """One item of one source, in the words every format carries."""

    feed: int
    number: int
    title: str
    summary_html: str
    day: int
    hour: int


def entry(feed: int, number: int) -> Entry:
    rng = random.Random(feed * 1_000_003 + number)
    summary = summary_html(rng, number)
    if rng.random() < CLEARVIEW_SHARE:
        reg, amount = rng.choice(_REGULATORS), rng.choice(_AMOUNTS)
        title = rng.choice(_CLEARVIEW_TITLES).format(reg=reg, amount=amount)
        summary = (
            f"<p>{html.escape(reg)} said Clearview AI must pay a fine of {amount} for "
            f"scraping faces without a legal basis; the company may appeal.</p>{summary}"
        )
    else:
        title = _words(rng, rng.randint(6, 12)).capitalize()
    return Entry(feed, number, title, summary, 1 + number % 28, number % 24)


def new_per_version(items: int) -> int:
    return max(1, round(items * NEW_SHARE))


def entries(feed: int, items: int, version: int) -> list[Entry]:
    first = version * new_per_version(items)
    return [entry(feed, n) for n in reversed(range(first, first + items))]


def kind_of(feed: int) -> str:
    return KINDS[feed % len(KINDS)]


def _rss(feed: int, items: list[Entry]) -> bytes:
    body = "".join(
        f"<item><title>{html.escape(e.title, quote=False)}</title>"
        f"<link>https://www.example.gov/feed{feed}/news/{e.number}-notice?utm_source=rss</link>"
        f'<guid isPermaLink="false">urn:example:feed{feed}:notice:{e.number}</guid>'
        f"<pubDate>Tue, {e.day:02d} Sep 2026 {e.hour:02d}:15:00 +0000</pubDate>"
        f"<dc:creator>Press office</dc:creator><category>notices</category>"
        f"<description><![CDATA[{e.summary_html}]]></description></item>\n"
        for e in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Example notices {feed}</title>"
        f"<link>https://www.example.gov/feed{feed}/</link>"
        "<description>Notices</description><language>en-gb</language>\n"
        f"{body}</channel></rss>\n"
    ).encode()


def _atom(feed: int, items: list[Entry]) -> bytes:
    body = "".join(
        f"<entry><title>{html.escape(e.title, quote=False)}</title>"
        f'<link rel="alternate" href="https://blog{feed}.example.org/posts/{e.number}"/>'
        f"<id>tag:blog{feed}.example.org,2026:post-{e.number}</id>"
        f"<published>2026-09-{e.day:02d}T{e.hour:02d}:00:00Z</published>"
        f"<updated>2026-09-{e.day:02d}T{e.hour:02d}:30:00+02:00</updated>"
        f"<author><name>Editor {e.number % 5}</name></author>"
        f'<summary type="html">{html.escape(e.summary_html, quote=False)}</summary>'
        "</entry>\n"
        for e in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">'
        f"<title>Example blog {feed}</title><id>tag:blog{feed}.example.org,2026:feed</id>"
        f'<link rel="self" href="https://blog{feed}.example.org/feed.atom"/>'
        f"<updated>2026-09-28T09:30:00Z</updated>\n{body}</feed>\n"
    ).encode()


_NAV = "".join(
    f'<li class="menu-item"><a href="/section/{i}" title="Section {i}">{WORDS[i % len(WORDS)]} '
    f"{WORDS[(i * 7) % len(WORDS)]}</a></li>"
    for i in range(120)
)
_FOOTER = "".join(
    f'<p class="legal">{" ".join(WORDS[(i + j) % len(WORDS)] for j in range(40))}</p>'
    for i in range(25)
)


def _html(feed: int, items: list[Entry]) -> bytes:
    rows = "".join(
        f'<li class="notice"><h3><a href="/feed{feed}/news/{e.number}-notice">'
        f"{html.escape(e.title, quote=False)}</a></h3>"
        f'<time datetime="2026-09-{e.day:02d}T{e.hour:02d}:15:00Z">{e.day} September 2026</time>'
        f"<p>{html.escape(_text(e.summary_html)[:400], quote=False)}</p></li>\n"
        for e in items
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>News and press releases {feed}</title>"
        '<link rel="stylesheet" href="/static/site.css"><script src="/static/site.js"></script>'
        f'</head><body><header><nav><ul class="menu">{_NAV}</ul></nav></header>'
        f'<main><h1>News</h1><ul class="listing">\n{rows}</ul></main>'
        f"<footer>{_FOOTER}</footer></body></html>\n"
    ).encode()


def _text(markup: str) -> str:
    out, inside = [], False
    for ch in markup:
        if ch == "<":
            inside = True
        elif ch == ">":
            inside = False
        elif not inside:
            out.append(ch)
    return html.unescape("".join(out))


def _sam(feed: int, items: list[Entry]) -> bytes:
    records = []
    for e in items:
        notice = f"{feed:08x}{e.number:024x}"
        record = dict(_SAM_TEMPLATE)
        # One source is one search (an agency's notices of some types): the records of a
        # search share their agency and codes, and those of two searches do not.
        record.update(
            fullParentPathName=f"DEPT OF {_words(random.Random(feed), 2).upper()}.OFFICE {feed}",
            naicsCode=f"{541000 + feed % 997}",
            type=("Special Notice", "Justification", "Award Notice")[e.number % 3],
            noticeId=notice,
            title=e.title,
            solicitationNumber=f"BENCH{feed:05d}-{e.number:06d}",
            postedDate=f"2026-09-{e.day:02d}",
            description=f"https://api.sam.gov/prod/opportunities/v1/noticedesc?noticeid={notice}",
            uiLink=f"https://sam.gov/workspace/contract/opp/{notice}/view",
        )
        records.append(record)
    page = {"totalRecords": len(records), "limit": 1000, "offset": 0, "opportunitiesData": records}
    return json.dumps(page).encode()


BUILDERS = {"rss": _rss, "atom": _atom, "html": _html, "sam": _sam}
CONTENT_TYPES = {
    "rss": "application/rss+xml; charset=utf-8",
    "atom": "application/atom+xml; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "sam": "application/json",
}


def path_of(feed: int) -> str:
    """The path the server answers for source ``feed`` (SAM: its search, under a prefix)."""
    kind = kind_of(feed)
    if kind == "sam":
        return f"/sam/{feed:05d}/opportunities/v2/search"
    return f"/{kind}/{feed:05d}"


def body(feed: int, items: int, version: int) -> tuple[bytes, int]:
    """The bytes of ``version`` of source ``feed`` and how many of its new items are about
    Clearview (new: not in the version before)."""
    listed = entries(feed, items, version)
    fresh = listed[: new_per_version(items)] if version else []
    clearview = sum(1 for e in fresh if "Clearview" in e.title)
    return BUILDERS[kind_of(feed)](feed, listed), clearview


def source_toml(feed: int, base: str, every: str) -> str:
    kind = kind_of(feed)
    source_type = "rss" if kind == "atom" else kind  # one source type reads RSS and Atom
    head = f'\n[[sources]]\nname = "src-{feed:05d}"\ntype = "{source_type}"\nevery = "{every}"\n'
    if kind == "sam":
        return head + (
            f'base_url = "{base}/sam/{feed:05d}"\napi_key = "{SAM_KEY}"\n'
            'notice_types = ["s", "u", "a"]\ndaily_quota = 1000000\n'
        )
    head += f'url = "{base}{path_of(feed)}"\nlanguage = "en"\n'
    if kind == "html":
        head += (
            'item = "ul.listing > li"\ntitle = "h3"\nlink = "h3 a@href"\n'
            'date = "time@datetime"\nsummary = "p"\n'
        )
    return head


def config_toml(
    database: Path, feeds: int, base: str, hook_url: str, secret_env: str, every: str = "15m"
) -> str:
    sources = "".join(source_toml(i, base, every) for i in range(feeds))
    return (
        "[monitor]\n"
        f'database = "sqlite:///{database}"\n'
        'user_agent = "noticewatch-bench/0.1 (+loopback only)"\n'
        "baseline = true\n"
        "http_port = 0\n"
        f"{sources}{RULES}\n"
        '[[notifiers]]\nname = "bench"\ntype = "webhook"\n'
        f'url = "{hook_url}"\nsecret = "${{{secret_env}}}"\nallow_private = true\n'
    )
