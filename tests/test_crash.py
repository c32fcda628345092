"""Crash and stop: ``noticewatch run`` killed with SIGKILL or stopped with SIGTERM while
it works, then started again, loses no alert and doubles none.

Every test drives ``noticewatch run`` as a separate process (the CLI's own ``main``,
forked from a helper that imported it once: tests/support/run_fork.py) against a
loopback feed and real loopback receivers that verify each Standard Webhooks signature.
After every stop the database must pass ``PRAGMA integrity_check`` and ``PRAGMA
foreign_key_check``.

The random kill moments come from a seeded RNG; the seed is printed (pytest shows it
with a failure) and named in every assertion. Run again with the same moments:
``NOTICEWATCH_CRASH_SEED=<seed> python3 -m pytest tests/test_crash.py``.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.feeds import rss
from tests.support.service_process import (
    Bench,
    GatedFeedServer,
    Service,
    SlowReceiver,
    StateWatch,
    check_database,
    main_thread_state,
    notice_feed,
    notices,
    wait_until,
)

pytestmark = pytest.mark.integration

ALERTS = 1000
ENDPOINTS = 3
KILLS = 10
SIGTERM_ALERTS = 334  # x ENDPOINTS: the 1,000 deliveries (1,002), three rounds at once
DELIVERY_DEADLINE = 240.0  # s for the deliveries awaited: a 2-core box under load is slow
SEED_ENV = "NOTICEWATCH_CRASH_SEED"
VALIDATORS_AND_COUNTS = (
    "SELECT etag, (SELECT count(*) FROM items), (SELECT count(*) FROM alerts) FROM source_state"
)


@pytest.fixture
def crash_seed() -> int:
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    print(f"crash test seed: {SEED_ENV}={seed}")
    return seed


@pytest.fixture
def receivers() -> Iterator[list[SlowReceiver]]:
    receivers = [SlowReceiver().start() for _ in range(ENDPOINTS)]
    yield receivers
    for receiver in receivers:
        receiver.close()


@pytest.fixture
def bench(tmp_path: Path, receivers: list[SlowReceiver]) -> Iterator[Bench]:
    bench = Bench(tmp_path, "", receivers)
    yield bench
    bench.close()  # no run process outlives its test, whatever happened


def serve_alerts(bench: Bench, feed_server: FeedServer, count: int) -> Bench:
    """The bench with one feed of ``count`` matching items for every receiver."""
    feed_server.serve("/feed.xml", notice_feed(count), etag='"v1"')
    bench.feed_url = feed_server.url("/feed.xml")
    bench.write_config()
    return bench


def links(count: int, start: int = 0) -> list[str]:
    return [entry.link or "" for entry in notices(count, start)]


def kill_plan(rng: random.Random, deliveries: int) -> list[tuple[int, float]]:
    """Ten moments, as (accepted deliveries to wait for, then seconds more).

    The first counts from the start-up's end (-1): it lands in the fetch of the 1,000
    items, their parse or their commit; the others at random points of the deliveries.
    """
    first = (-1, rng.uniform(0, 1.5))
    later = sorted(rng.sample(range(1, deliveries), KILLS - 1))
    return [first] + [(after, rng.uniform(0, 0.05)) for after in later]


def reached(bench: Bench, service: Service, after: int) -> bool:
    if after < 0:
        return "service=started" in service.output
    return bench.accepted() >= after


def stored(db: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(query).fetchall()
    conn.close()
    return rows


def assert_all_received(
    got: Iterable[tuple[int, str]], expected: set[tuple[int, str]], about: str
) -> None:
    missing, extra = expected - set(got), set(got) - expected
    assert not missing, (
        f"{len(missing)} (endpoint, item) pairs lost, e.g. {sorted(missing)[:3]} {about}"
    )
    assert not extra, f"pairs nobody expected: {sorted(extra)[:3]} {about}"


def settled(db: Path, total: int) -> bool:
    """Every one of ``total`` alerts is out of the queue: waiting longer brings nothing."""
    if not db.exists():
        return False
    [(count, pending)] = stored(
        db, "SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM alerts"
    )
    return count == total and pending == 0


def test_kill_9_at_ten_random_moments_loses_nothing_and_keeps_webhook_ids(
    bench: Bench, feed_server: FeedServer, crash_seed: int
) -> None:
    serve_alerts(bench, feed_server, ALERTS)
    total = ALERTS * ENDPOINTS
    plan = kill_plan(random.Random(crash_seed), total)
    about = f"seed {crash_seed}, kill plan {[(n, round(s, 3)) for n, s in plan]}"
    for number, (after, delay) in enumerate(plan, start=1):
        service = bench.start()
        wait_until(
            lambda: reached(bench, service, after) or not service.alive,  # noqa: B023 - used now
            DELIVERY_DEADLINE,
            f"{after} deliveries before kill {number} ({about})",
        )
        time.sleep(delay)  # the random moment itself, not a wait for something
        assert service.alive, (
            f"run exited by itself before kill {number} ({about}):\n" + (service.output[-3000:])
        )
        service.kill9()
        check_database(bench.db)
    last = bench.start()
    expected = bench.expected_pairs(links(ALERTS))
    wait_until(
        lambda: expected <= bench.pairs().keys() or not last.alive or settled(bench.db, total),
        DELIVERY_DEADLINE,
        f"every (alert, endpoint) pair after the restart ({about})",
    )
    code, took = last.terminate()
    assert code == 0 and took < 10, f"exit {code} after {took:.1f}s ({about})"
    check_database(bench.db)

    pairs = bench.pairs()
    assert_all_received(pairs.keys(), expected, about)
    changed = {pair: ids for pair, ids in pairs.items() if len(set(ids)) != 1}
    assert not changed, f"a repeat came with another webhook-id ({about}): {changed}"
    ids = {ids[0] for ids in pairs.values()}
    assert len(ids) == total, f"two (alert, endpoint) pairs share a webhook-id ({about})"
    repeats = sum(len(ids) - 1 for ids in pairs.values())
    assert repeats <= KILLS * ENDPOINTS, f"{repeats} repeats for {KILLS} kills ({about})"
    print(f"{repeats} repeated deliveries over {KILLS} kills")
    assert stored(bench.db, "SELECT count(*) FROM items") == [(ALERTS,)]
    rows = stored(bench.db, "SELECT status, count(*) FROM alerts GROUP BY status")
    assert rows == [("delivered", total)], about
    assert {row[0] for row in stored(bench.db, "SELECT id FROM alerts")} == ids


def test_kill_9_between_a_fetch_and_its_commit_alerts_the_new_items_once(
    bench: Bench, receivers: list[SlowReceiver]
) -> None:
    old, new = links(20), links(50, start=20)
    old_modified = "Sun, 22 Nov 2026 09:00:00 GMT"
    with GatedFeedServer() as feed:
        feed.serve("/feed.xml", notice_feed(20), etag='"v1"', last_modified=old_modified)
        bench.feed_url = feed.url("/feed.xml")
        bench.write_config()
        first = bench.start()
        wait_until(lambda: bench.expected_pairs(old) <= bench.pairs().keys(), 60, "old items")
        assert first.terminate()[0] == 0, first.output[-3000:]

        new_modified = "Sun, 22 Nov 2026 10:00:00 GMT"
        feed.serve("/feed.xml", rss(*notices(70)), etag='"v2"', last_modified=new_modified)
        feed.hold()
        # A restart respects the interval of a source fetched before the stop (every 1h);
        # here that interval has passed.
        with sqlite3.connect(bench.db) as conn:
            conn.execute("UPDATE source_leases SET next_due_at = NULL")
        conn.close()
        crashed = bench.start()
        wait_until(lambda: len(feed.requests) == 2, 60, "the second start's fetch")
        # The fetch is in; take the write lock before it gets its answer, so the run
        # fetches and parses, then waits for the lock to commit (busy_timeout).
        lock = sqlite3.connect(bench.db, isolation_level=None)
        try:
            lock.execute("BEGIN IMMEDIATE")
            feed.release()
            wait_until(
                lambda: "nanosleep" in main_thread_state(crashed.pid),
                30,
                "the run to block on its commit (main thread in SQLite's busy wait)",
            )
            crashed.kill9()
        finally:
            lock.rollback()
            lock.close()
        check_database(bench.db)
        # Nothing of that fetch is stored, its validators least of all.
        assert stored(bench.db, "SELECT etag, last_modified FROM source_state") == [
            ('"v1"', old_modified)
        ]
        assert stored(bench.db, "SELECT count(*) FROM items") == [(20,)]
        assert stored(bench.db, "SELECT count(*) FROM alerts") == [(20 * ENDPOINTS,)]

        everything = bench.expected_pairs(old + new)
        with StateWatch(bench.db, VALIDATORS_AND_COUNTS) as watch:
            again = bench.start()
            wait_until(lambda: everything <= bench.pairs().keys(), 60, "the new items' alerts")
            assert again.terminate()[0] == 0, again.output[-3000:]
        check_database(bench.db)
        refetch = feed.requests[2]
    # The validators never ran ahead: no committed state had "v2" without all it brought.
    ahead = [
        state for state in watch.seen if state[0] == '"v2"' and state[1:] != (70, 70 * ENDPOINTS)
    ]
    assert not ahead, f"the ETag advanced before its items and alerts: {watch.seen}"
    assert ('"v2"', 70, 70 * ENDPOINTS) in watch.seen
    # The server saw the old validators again, so it sent the new items again.
    assert refetch.headers.get("if-none-match") == '"v1"'
    assert refetch.headers.get("if-modified-since") == old_modified
    pairs = bench.pairs()
    assert_all_received(pairs.keys(), everything, "")
    doubled = {pair: ids for pair, ids in pairs.items() if len(ids) != 1}
    assert not doubled, f"alerted more than once: {doubled}"
    assert stored(bench.db, "SELECT etag FROM source_state") == [('"v2"',)]


def test_sigterm_during_1000_deliveries_exits_0_in_10s_losing_and_doubling_nothing(
    bench: Bench, feed_server: FeedServer, receivers: list[SlowReceiver], crash_seed: int
) -> None:
    for receiver in receivers:
        receiver.delay = 0.01  # each endpoint takes 10 ms: a request is in flight at the stop
    serve_alerts(bench, feed_server, SIGTERM_ALERTS)
    total = SIGTERM_ALERTS * ENDPOINTS
    stop_at = random.Random(crash_seed).randrange(total // 10, total * 9 // 10)
    about = f"seed {crash_seed}, SIGTERM after {stop_at} deliveries"
    service = bench.start()

    def mid_delivery() -> bool:  # past stop_at, and every endpoint has a request in flight
        return bench.accepted() >= stop_at and all(r.in_flight for r in receivers)

    wait_until(lambda: mid_delivery() or not service.alive, DELIVERY_DEADLINE, about)
    assert service.alive, service.output[-3000:]
    code, took = service.terminate()
    assert code == 0 and took < 10, f"exit {code} after {took:.1f}s ({about})"
    assert "service=stopped" in service.output
    check_database(bench.db)
    # Every delivery that got through is recorded as delivered: none is sent again.
    received = {ids[0] for ids in bench.pairs().values()}
    delivered = stored(bench.db, "SELECT id FROM alerts WHERE status = 'delivered'")
    assert {row[0] for row in delivered} == received, about
    assert len(received) < total, f"all was delivered before the stop ({about})"

    again = bench.start()
    expected = bench.expected_pairs(links(SIGTERM_ALERTS))
    wait_until(
        lambda: expected <= bench.pairs().keys() or settled(bench.db, total),
        DELIVERY_DEADLINE,
        about,
    )
    code, took = again.terminate()
    assert code == 0 and took < 10, f"exit {code} after {took:.1f}s ({about})"
    check_database(bench.db)
    pairs = bench.pairs()
    assert_all_received(pairs.keys(), expected, about)
    doubled = {pair: ids for pair, ids in pairs.items() if len(ids) != 1}
    assert not doubled, f"received more than once ({about}): {doubled}"
    rows = stored(bench.db, "SELECT status, count(*) FROM alerts GROUP BY status")
    assert rows == [("delivered", total)], about
