"""How fast the RSS source parses, and what its entity-bomb guard costs.

Run by hand from the repository root (no network; see bench/README.md)::

    python bench/bench_parse.py              # median of 21 repeats of >= 0.1 s, ~90 s
    python bench/bench_parse.py --repeats 5 --min-time 0.05   # a quick look, noisier

Every feed is built in memory or read from tests/data/real/. The process is pinned to
one CPU so the figures are per core. Each figure is the median over ``--repeats``
repeats; a repeat runs the operation as many times as fill ``--min-time`` seconds and
keeps the mean, so short operations are not swamped by timer resolution. The repeats
of the rows of one column are interleaved, so machine noise hits them alike.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import html
import io
import math
import os
import platform
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import feedparser
from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

from monitor.errors import ParseError
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import Fetched, FetchLimits
from monitor.sources.rss import RssSource, RssSourceConfig
from monitor.sources.xmlsafe import declares_entities

REAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
ITEMS = 50
SUMMARY_BYTES = 1500


@dataclass(frozen=True)
class Feed:
    name: str
    url: str
    content_type: str | None
    body: bytes


# --- Building realistic feeds -----------------------------------------------------------------

_VOCABULARY = (
    "procurement notice tender contract award authority ministry regulator guidance "
    "consultation deadline framework agreement lot supplier data protection fine decision "
    "investigation market public health transport energy digital services cloud security "
    "réglementation Behörde Ausschreibung société über große année 2025 2026 £1.2m €350,000"
)
WORDS = tuple(_VOCABULARY.split())


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 18))]
    return html.escape(" ".join(words).capitalize(), quote=False) + "."


def summary_html(rng: random.Random, index: int) -> str:
    """About SUMMARY_BYTES of the HTML feeds really carry: paragraphs, absolute and
    relative links, an image, a list, inline styles and the odd script to strip."""
    parts = [
        f'<p><img src="/media/{index}/thumb.jpg" alt="" width="120" height="80" '
        f'style="float:left;margin:0 8px 8px 0"/>{_sentence(rng)} {_sentence(rng)}</p>'
    ]
    while len("".join(parts).encode()) < SUMMARY_BYTES - 300:
        parts.append(
            f'<p>{_sentence(rng)} <a href="https://www.example.gov/notices/{rng.randint(1, 99999)}'
            f'?utm_source=rss&amp;utm_medium=feed">{_sentence(rng)}</a> '
            f"<strong>{rng.choice(WORDS)}</strong> {_sentence(rng)}</p>"
        )
    parts.append(
        f'<ul><li><a href="../documents/{index}.pdf">Documents</a></li>'
        f'<li><a href="mailto:tenders@example.gov">Contact</a></li></ul>'
        f'<script>track("{index}")</script><p>&copy; Example &amp; Co&nbsp;2026</p>'
    )
    return "".join(parts)


def rss_feed(items: int = ITEMS, seed: int = 1) -> bytes:
    """RSS 2.0 as WordPress writes it: HTML summaries in CDATA, guids, RFC 822 dates."""
    rng = random.Random(seed)
    entries = []
    for i in range(items):
        entries.append(
            f"<item><title>{_sentence(rng)[:90]}</title>"
            f"<link>https://www.example.gov/news/{i}-notice?utm_source=rss</link>"
            f'<guid isPermaLink="false">urn:example:notice:{seed}:{i}</guid>'
            f"<pubDate>Tue, {1 + i % 28:02d} Sep 2026 {i % 24:02d}:15:00 +0000</pubDate>"
            f"<dc:creator>Press office</dc:creator><category>{rng.choice(WORDS)}</category>"
            f"<description><![CDATA[{summary_html(rng, i)}]]></description></item>\n"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<channel><title>Example notices</title><link>https://www.example.gov/</link>"
        "<description>Notices</description><language>en-gb</language>\n"
        + "".join(entries)
        + "</channel></rss>\n"
    ).encode()


def atom_feed(items: int = ITEMS, seed: int = 2) -> bytes:
    """Atom 1.0 with escaped ``type="html"`` summaries, ids and RFC 3339 dates."""
    rng = random.Random(seed)
    entries = []
    for i in range(items):
        day = 1 + i % 28
        entries.append(
            f"<entry><title>{_sentence(rng)[:90]}</title>"
            f'<link rel="alternate" href="https://blog.example.org/posts/{i}"/>'
            f"<id>tag:blog.example.org,2026:post-{i}</id>"
            f"<published>2026-09-{day:02d}T08:00:00Z</published>"
            f"<updated>2026-09-{day:02d}T09:30:00+02:00</updated>"
            f"<author><name>Editor {i % 5}</name></author>"
            f'<summary type="html">{html.escape(summary_html(rng, i), quote=False)}</summary>'
            "</entry>\n"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en">'
        "<title>Example blog</title><id>tag:blog.example.org,2026:feed</id>"
        '<link rel="self" href="https://blog.example.org/feed.atom"/>'
        "<updated>2026-09-28T09:30:00Z</updated>\n" + "".join(entries) + "</feed>\n"
    ).encode()


def feeds() -> list[Feed]:
    return [
        Feed("rss50", "https://www.example.gov/feed/", "application/rss+xml", rss_feed()),
        Feed("atom50", "https://blog.example.org/feed.atom", "application/atom+xml", atom_feed()),
        Feed(
            "googlenews",
            "https://news.google.com/rss/search?q=breaking&hl=en-US&gl=US&ceid=US:en",
            "application/xml; charset=utf-8",
            (REAL / "googlenews_search_rss_trimmed_2026-09-25.xml").read_bytes(),
        ),
        Feed(
            "spiegel",
            "http://www.spiegel.de/schlagzeilen/index.rss",
            "text/xml; charset=ISO-8859-1",
            (REAL / "spiegel_rss_2015-03-31_declared-iso8859-1_actually-utf8.xml").read_bytes(),
        ),
        Feed(
            "meteor",
            "https://www.meteor.com/blog/feed.atom.xml",
            "application/atom+xml",
            (REAL / "meteor_blog_atom_2015-03-31.xml").read_bytes(),
        ),
    ]


def billion_laughs() -> bytes:
    """Ten levels of ten references, padded with items to ~100 KB."""
    levels = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">\n' for i in range(1, 10))
    items = "<item><title>x</title><description>&lol9;</description></item>" * 1500
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY lol0 "lol">\n'
        f'{levels}]>\n<rss version="2.0"><channel><title>t</title>{items}</channel></rss>'
    ).encode()


def quadratic_blowup() -> bytes:
    """One 50 KB entity referenced 15,000 times: the bomb feedparser's loose parser
    really expands (to a 750 MB summary) when nothing refuses it first."""
    refs = "&a;" * 15_000
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE rss [\n<!ENTITY a "{"A" * 50_000}">\n]>\n'
        f'<rss version="2.0"><channel><title>t</title>'
        f"<item><title>x</title><description>{refs}</description></item></channel></rss>"
    ).encode()


def grown(body: bytes, target: int) -> bytes:
    """A feed of about ``target`` bytes: the items of ``body`` repeated, still well-formed."""
    head, _, rest = body.partition(b"<item>")
    items, _, tail = rest.rpartition(b"</item>")
    block = b"<item>" + items + b"</item>"
    return head + block * math.ceil((target - len(head) - len(tail)) / len(block)) + tail


# --- Measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    seconds: float  # median time of one operation
    spread: float  # (slowest - fastest repeat) / median: how noisy the machine was

    @property
    def per_second(self) -> float:
        return 1 / self.seconds


def measure(operations: list[Callable[[], object]], repeats: int, min_time: float) -> list[Timing]:
    """For each operation, the median over ``repeats`` of the mean time of one call.

    Each repeat of an operation loops for at least ``min_time``. The repeats of the
    operations are interleaved, so a slow spell of a shared machine (other processes,
    CPU steal on a VM) hits every row of a column alike instead of one row.
    """
    loops = []
    for operation in operations:
        operation()  # warm up: imports, regex compilation, caches
        started = time.perf_counter()
        operation()
        once = max(time.perf_counter() - started, 1e-9)
        loops.append(max(1, math.ceil(min_time / once)))
    results: list[list[float]] = [[] for _ in operations]
    for _ in range(repeats):
        for operation, n, times in zip(operations, loops, results, strict=True):
            gc.collect()  # garbage of the last repeat is not billed to this one
            started = time.perf_counter()
            for _ in range(n):
                operation()
            times.append((time.perf_counter() - started) / n)
    timings = []
    for times in results:
        median = statistics.median(times)
        timings.append(Timing(median, (max(times) - min(times)) / median))
    return timings


def peak_memory(operation: Callable[[], object]) -> int:
    """Bytes tracemalloc saw allocated at the peak of one call (timed separately: tracing
    slows every allocation)."""
    gc.collect()
    tracemalloc.start()
    try:
        operation()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def make_source() -> RssSource:
    config = RssSourceConfig.model_validate(
        {"name": "bench", "type": "rss", "url": "https://bench.example.org/feed", "every": "15m"}
    )
    source = SOURCE_TYPES["rss"].build(config, FetchLimits())
    assert isinstance(source, RssSource)
    return source


def feedparser_parse(feed: Feed, **options: bool) -> Callable[[], object]:
    headers = {"content-location": feed.url, "content-type": feed.content_type or ""}

    def run() -> object:
        return feedparser.parse(io.BytesIO(feed.body), response_headers=headers, **options)

    return run


def source_parse(source: RssSource, feed: Feed, derive: float = 0.0) -> Callable[[], object]:
    """RssSource.parse, then the derived views of the first ``derive`` share of the items
    (what a poll pays for the items that are new and get stored, matched and alerted)."""
    # Built once: the sha256 in Fetched.__post_init__ is paid by the fetch, not by parse.
    fetched = Fetched(url=feed.url, status=200, body=feed.body, content_type=feed.content_type)

    def run() -> object:
        items = source.parse(fetched)
        for item in items[: math.ceil(len(items) * derive)]:
            _ = (item.summary, item.content, item.safe_summary_html)
        return items

    return run


def refuse(source: RssSource, body: bytes) -> Callable[[], object]:
    fetched = Fetched(url="https://bench.example.org/feed", status=200, body=body)

    def run() -> object:
        try:
            source.parse(fetched)
        except ParseError as e:
            if "declares XML entities" not in e.what:  # refused, but not by the guard
                raise
            return e
        raise AssertionError("the entity bomb was not refused")

    return run


# --- Report -----------------------------------------------------------------------------------


def rate(timing: Timing) -> str:
    ms = timing.seconds * 1000
    duration = f"{ms:.3f} ms" if ms < 1 else f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"
    return f"{timing.per_second:,.0f}/s ({duration})"


def size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:.1f} MB"
    return f"{n / 1024:.0f} KB" if n >= 10 * 1024 else f"{n / 1024:.1f} KB"


def pin_to_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="repeats per figure (median)")
    parser.add_argument("--min-time", type=float, default=0.1, help="seconds per repeat")
    args = parser.parse_args()
    pinned = pin_to_one_cpu()

    spreads: list[float] = []

    def bench(operations: list[Callable[[], object]]) -> list[Timing]:
        timings = measure(operations, args.repeats, args.min_time)
        spreads.extend(timing.spread for timing in timings)
        return timings

    print(
        f"Python {platform.python_version()}, feedparser {version('feedparser')}, "
        f"nh3 {version('nh3')}, "
        f"{cpu_model()}, {os.cpu_count()} CPUs, {pinned}; "
        f"median of {args.repeats} repeats of >= {args.min_time} s\n"
    )

    source = make_source()
    all_feeds = feeds()
    counts = [
        len(source.parse(Fetched(f.url, 200, f.body, content_type=f.content_type)))
        for f in all_feeds
    ]
    rows: list[tuple[str, Callable[[Feed], Callable[[], object]]]] = [
        ("1. `feedparser.parse`, defaults", lambda f: feedparser_parse(f)),
        (
            "2. `feedparser.parse`, no sanitize / no resolve",
            lambda f: feedparser_parse(f, sanitize_html=False, resolve_relative_uris=False),
        ),
        ("3. `RssSource.parse`", lambda f: source_parse(source, f)),
        ("4a. 3 + text and safe HTML for 10 % of items", lambda f: source_parse(source, f, 0.1)),
        ("4b. 3 + text and safe HTML for 100 % of items", lambda f: source_parse(source, f, 1.0)),
        ("5. sha256 of the body (byte-identical skip)", lambda f: lambda: hashlib.sha256(f.body)),
    ]
    header = [
        f"{f.name} ({size(len(f.body))}, {n} items)" for f, n in zip(all_feeds, counts, strict=True)
    ]
    columns = [bench([make(f) for _, make in rows]) for f in all_feeds]
    print("| feeds/s, one core (ms per feed) | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(all_feeds))
    for row, (label, _) in enumerate(rows):
        cells = [rate(column[row]) for column in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")

    rss50 = all_feeds[0].body
    big = grown(rss50, 10 * 1024 * 1024)  # the default max_bytes of an rss source
    big_utf16 = grown(rss50, 5 * 1024 * 1024).decode("utf-8").encode("utf-16")
    laughs, quadratic = billion_laughs(), quadratic_blowup()
    guards = [
        (
            f"6a. `declares_entities`, {size(len(rss50))} rss50 feed (UTF-8)",
            lambda: declares_entities(rss50, "application/rss+xml"),
        ),
        (
            f"6b. `declares_entities`, {size(len(big))} feed (UTF-8)",
            lambda: declares_entities(big, "application/rss+xml"),
        ),
        (
            f"6c. `declares_entities`, {size(len(big_utf16))} feed (UTF-16, BOM)",
            lambda: declares_entities(big_utf16, "application/rss+xml"),
        ),
        (
            f"6d. `RssSource.parse` refuses billion laughs ({size(len(laughs))})",
            refuse(source, laughs),
        ),
        (
            f"6e. `RssSource.parse` refuses one 50 KB entity x 15,000 ({size(len(quadratic))})",
            refuse(source, quadratic),
        ),
    ]
    print("\n| entity-bomb guard | time (median) | tracemalloc peak |")
    print("|---|---:|---:|")
    timings = bench([op for _, op in guards])
    for (label, op), timing in zip(guards, timings, strict=True):
        ms = timing.seconds * 1000
        print(f"| {label} | {ms:.3f} ms | {size(peak_memory(op))} |")
    print(
        f"\nSpread between the fastest and slowest repeat of a figure: median "
        f"{statistics.median(spreads):.0%}, worst {max(spreads):.0%}."
    )


if __name__ == "__main__":
    main()
