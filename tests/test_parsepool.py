"""monitor.parsepool: a body parsed in a worker process gives exactly what ``parse`` gives.

Every real and golden feed and page, and the malformed ones, go through the pool (the
size threshold set to 0 so that all of them do) and through ``source.parse`` directly:
the same items, field for field, or the same error, word for word.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.dedupe.fingerprint import key_id
from monitor.errors import ParseError
from monitor.heap import YOUNG_THRESHOLD
from monitor.models import Item
from monitor.parsepool import PARSE_THREADS, WORKER_NICENESS, ParsePool, default_workers
from monitor.prepare import prepare_items
from monitor.sources.base import Fetched, Source
from tests.support.html_layouts import LAYOUTS
from tests.test_html_parse import layout_source
from tests.test_html_parse import make_source as html_source
from tests.test_rss_parse import CASES, billion_laughs, fetched, make_source, quadratic_blowup, rss

SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real"


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    parsing = ParsePool(1, min_bytes=0, min_prepare=0)
    yield parsing
    parsing.close()


def both(pool: ParsePool, source: Source, body: Fetched) -> tuple[object, object]:
    """(direct, pooled): the items, or the error's type and text."""

    def outcome(run: object) -> object:
        try:
            items = run() if callable(run) else run
        except ParseError as e:
            return (type(e), str(e), e.source, e.what, e.hint)
        assert all(isinstance(item, Item) for item in items)
        return items

    direct = outcome(lambda: source.parse(body))
    pooled = outcome(lambda: asyncio.run(pool.parse(source, body)))
    return direct, pooled


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_and_real_feeds(pool: ParsePool, case: str) -> None:
    spec = CASES[case]
    source = make_source(language=spec.language)
    body = fetched(spec.path.read_bytes(), spec.url, spec.content_type)
    direct, pooled = both(pool, source, body)
    assert isinstance(direct, list) and direct
    assert pooled == direct


@pytest.mark.parametrize("path", sorted(SHARED_REAL.glob("*.xml")), ids=lambda p: p.name)
def test_shared_real_fixtures(pool: ParsePool, path: Path) -> None:
    direct, pooled = both(pool, make_source(), fetched(path.read_bytes()))
    assert isinstance(direct, list) and direct
    assert pooled == direct


@pytest.mark.parametrize("case", sorted(LAYOUTS))
def test_html_listings(pool: ParsePool, case: str) -> None:
    source, body = layout_source(case)
    direct, pooled = both(pool, source, body)
    assert isinstance(direct, list) and direct
    assert pooled == direct


MALFORMED = {
    "empty": b" \n",
    "html page": b"<!DOCTYPE html><html><head><title>Just a moment</title></head><body></body>",
    "cut in the channel": b'<?xml version="1.0"?><rss version="2.0"><chan',
    "not a feed": b'<?xml version="1.0"?><sitemap><url>x</url></sitemap>',
    "billion laughs": billion_laughs(),
    "quadratic blowup": quadratic_blowup(),
    "binary": bytes(range(256)) * 40,
    "truncated item": rss("<item><title>A</title><link>https://e.org/1</link></item>")[:-40]
    + b"<item><title>B</ti",
    "no items": rss(""),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_feeds_fail_or_succeed_alike(pool: ParsePool, case: str) -> None:
    direct, pooled = both(pool, make_source(name="ftc"), fetched(MALFORMED[case]))
    assert pooled == direct


def test_a_page_without_the_items_fails_alike(pool: ParsePool) -> None:
    source = html_source(item="ul.none > li", title="h3")
    page = Fetched("https://example.org/news/", 200, b"<html><body><p>x</p></body></html>")
    direct, pooled = both(pool, source, page)
    assert pooled == direct


def test_small_bodies_and_other_types_stay_in_the_process() -> None:
    lazy = ParsePool(1)  # the default threshold
    small = fetched(rss("<item><title>A</title><link>https://e.org/1</link></item>"))
    assert not lazy.pooled(make_source(), small)
    big = fetched(rss("<item><title>A</title><link>https://e.org/1</link></item>" * 2000))
    assert lazy.pooled(make_source(), big)
    assert not ParsePool(0).pooled(make_source(), big)  # no workers: always a thread
    items = asyncio.run(lazy.parse(make_source(), small))
    assert [item.title for item in items] == ["A"]
    assert lazy._pool is None  # never started for a small body
    lazy.close()


def test_small_bodies_parse_on_the_pools_own_few_threads() -> None:
    """Not on the loop's default executor, which grows to six threads, each thread
    keeping its own glibc arena in a long-lived `run`."""
    parsing = ParsePool(0)
    source = make_source()
    threads: set[str] = set()
    original = source.parse

    def recording(body: Fetched) -> list[Item]:
        threads.add(threading.current_thread().name)
        return original(body)

    source.parse = recording  # type: ignore[method-assign]
    small = fetched(rss("<item><title>A</title><link>https://e.org/1</link></item>"))

    async def many() -> list[list[Item]]:
        asyncio.get_running_loop().set_default_executor(_Refusing(1))
        return await asyncio.gather(*(parsing.parse(source, small) for _ in range(20)))

    results = asyncio.run(many())
    parsing.close()
    assert all([item.title for item in items] == ["A"] for items in results)
    assert threads and all(name.startswith("parse") for name in threads)
    assert len(threads) <= PARSE_THREADS
    assert parsing._threads is None  # closed with the pool


class _Refusing(concurrent.futures.ThreadPoolExecutor):
    """A default executor that fails the test if anything is handed to it."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        raise AssertionError(f"{fn!r} went to the loop's default executor")


def test_close_stops_the_workers_and_a_new_parse_starts_them_again() -> None:
    parsing = ParsePool(1, min_bytes=0, min_prepare=0)
    body = fetched(rss("<item><title>A</title><link>https://e.org/1</link></item>"))
    assert [i.title for i in asyncio.run(parsing.parse(make_source(), body))] == ["A"]
    workers = parsing._pool
    assert workers is not None
    parsing.close()
    assert parsing._pool is None
    assert [i.title for i in asyncio.run(parsing.parse(make_source(), body))] == ["A"]
    assert parsing._pool is not workers
    parsing.close()


def test_workers_run_below_the_event_loops_priority(pool: ParsePool) -> None:
    """When a worker and the loop both want a core, the loop (storing, deliveries) wins."""
    here = os.nice(0)
    there = pool._executor().submit(os.nice, 0).result(timeout=60)
    assert here < 19  # else nothing could run below it
    assert there == min(19, here + WORKER_NICENESS) > here


def test_default_workers_use_every_core_but_a_lone_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert default_workers() == 2
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert default_workers() == 8
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert default_workers() == 0
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert default_workers() == 0


def test_open_app_owns_the_pool_and_closes_it(tmp_path: Path) -> None:
    from monitor.app import open_app
    from monitor.config import parse_config

    raw = {
        "monitor": {"database": f"sqlite:///{tmp_path / 'n.db'}"},
        "sources": [
            {"name": "feed", "type": "rss", "url": "https://feed.example.org/rss", "every": "1h"}
        ],
    }
    config = parse_config(raw, {}, path=tmp_path / "sources.toml")
    big = fetched(rss("<item><title>A</title><link>https://e.org/1</link></item>" * 2000))

    async def poll_once() -> ParsePool:
        async with open_app(config, parse_workers=1) as app:
            pool = app.pipeline.parser
            assert pool is app.parser and pool is not None
            items = await pool.parse(app.sources["feed"], big)
            assert [item.title for item in items] == ["A"]  # one key, first occurrence
            assert pool._pool is not None  # a large body started the worker
            return pool

    assert asyncio.run(poll_once())._pool is None  # shut down with the app


def test_a_parse_worker_loads_no_notifier_and_no_database_code() -> None:
    """A worker imports what unpickling its task needs; sources reach the delivery
    guard, which must not drag in the notifiers (jinja2, aiosmtplib) or SQLAlchemy:
    each worker is a process of its own, and its memory counts in ``run``'s."""
    script = (
        "import sys\n"
        "import monitor.parsepool\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'notifiers', 'storage', "
        "'sqlalchemy', 'sqlmodel', 'jinja2', 'aiosmtplib', 'alembic'}))\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=root
    )
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("case", sorted(CASES))
def test_items_prepared_in_a_worker_are_those_prepared_in_place(pool: ParsePool, case: str) -> None:
    """Amounts, text views and fingerprints: a worker gives what the event loop would."""
    spec = CASES[case]
    items = make_source(language=spec.language).parse(
        fetched(spec.path.read_bytes(), spec.url, spec.content_type)
    )
    new = frozenset(item.key for item in items[::2])
    here = prepare_items(items, new, templated_summary=False)
    there = asyncio.run(pool.prepare(items, new, templated_summary=False))
    assert there.items == here.items and there.prints == here.prints
    assert set(there.prints) == new
    for near, far in zip(here.items, there.items, strict=True):
        # the views travel back with the item: storing it derives none of them again
        for view in ("summary", "content", "safe_summary_html"):
            assert far.__dict__[view] == near.__dict__[view]
    for key, print_ in there.prints.items():
        # and so do the fingerprints' key ids: the event loop hashes none of them
        assert print_.__dict__["key_ids"] == here.prints[key].__dict__["key_ids"]
        assert print_.__dict__["key_ids"] == {k: key_id(k) for k in print_.stored | print_.lookup}


def test_few_changed_items_are_prepared_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = CASES[sorted(CASES)[0]]
    items = make_source().parse(fetched(spec.path.read_bytes(), spec.url, spec.content_type))
    parsing = ParsePool(1, min_prepare=len(items) + 1)
    monkeypatch.setattr(parsing, "_executor", lambda: pytest.fail("sent to a worker"))
    prepared = asyncio.run(parsing.prepare(items, frozenset(), templated_summary=False))
    assert len(prepared.items) == len(items) and not prepared.prints


def test_workers_settle_their_heap(pool: ParsePool) -> None:
    """Each worker freezes its imports and collects its young objects less often."""
    workers = pool._executor()
    assert workers.submit(gc.get_threshold).result(timeout=60)[0] == YOUNG_THRESHOLD
    assert workers.submit(gc.get_freeze_count).result(timeout=60) > 0
