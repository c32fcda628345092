"""Leases, on SQLite and PostgreSQL: claiming a source or an alert, expiry, takeover, and a
stale holder (its lease ran out and was taken over) never overwriting the new holder's state.
Time is the injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from monitor import scheduler
from monitor.app import open_app
from monitor.config import load_config
from monitor.errors import LeaseLost, StorageError
from monitor.lease_status import leases_report
from monitor.pipeline import PipelineContext, run_source
from monitor.replicas import (
    REPLICA_ENV,
    Replica,
    delivery_lease,
    due_again,
    gone_from_this_host,
    pid_alive,
    replica_id,
    source_jitter,
    source_lease,
)
from monitor.scheduler import SOURCES_IN_FLIGHT, Service
from monitor.sources.base import Fetched
from storage.db import create_db_engine
from storage.store import Change, Store
from storage.tables import AlertRow, SourceLease
from tests.conftest import FIXED_NOW
from tests.support.fakes import Clock, FakeSource, make_item, source_config
from tests.support.feeds import Entry, rss
from tests.support.running import ENV, FEED, Web, config_text, running, source_toml

pytestmark = pytest.mark.anyio

LEASE = timedelta(seconds=90)
EVERY = timedelta(minutes=15)
AGAIN = due_again(EVERY)


@pytest.fixture
def store(db_url: str) -> Store:
    return Store(create_db_engine(db_url))


def _fetched(body: bytes = b"<rss/>") -> Fetched:
    return Fetched(url="https://example.org/feed", status=200, body=body, etag='"e1"')


# --- the policy ---------------------------------------------------------------------------


def test_replica_id_comes_from_the_environment_else_host_pid_and_random() -> None:
    assert replica_id({REPLICA_ENV: " web-2 "}, "host", 7) == "web-2"
    one, two = replica_id({}, "host", 7), replica_id({}, "host", 7)
    assert one.startswith("host-7-") and two.startswith("host-7-") and one != two


def test_lease_lengths_cover_the_work_they_guard() -> None:
    assert source_lease(timedelta(seconds=30)) == timedelta(seconds=90)
    assert delivery_lease(timedelta(seconds=15)) >= 2 * timedelta(seconds=15)
    # Due again earlier than `every` by at most the jitter plus a margin, so the timer of
    # the replica that fetched it (which may fire up to one jitter early) still claims it.
    assert source_jitter(EVERY) == timedelta(seconds=60)
    assert EVERY - source_jitter(EVERY) - timedelta(seconds=5) == AGAIN
    assert due_again(timedelta(minutes=1)) == timedelta(seconds=51)


# --- source leases ------------------------------------------------------------------------


def test_one_replica_claims_a_source_and_the_other_skips_it(store: Store) -> None:
    first = store.claim_source("ap-nl", "r1", FIXED_NOW, LEASE, AGAIN)
    assert first is not None and first.expires_at == FIXED_NOW + LEASE
    assert store.claim_source("ap-nl", "r2", FIXED_NOW + timedelta(seconds=1), LEASE, AGAIN) is None
    assert store.release_source(first)
    # Released, but not due: a timer firing a moment later finds nothing to do.
    assert store.claim_source("ap-nl", "r2", FIXED_NOW + timedelta(seconds=2), LEASE, AGAIN) is None
    assert store.claim_source("ap-nl", "r2", FIXED_NOW + AGAIN, LEASE, AGAIN) is not None
    assert store.last_holders() == {"ap-nl": "r1"}


def test_an_expired_lease_is_taken_over_before_the_next_due_time(store: Store) -> None:
    dead = store.claim_source("ap-nl", "r1", FIXED_NOW, LEASE, AGAIN)
    assert dead is not None
    assert store.claim_source("ap-nl", "r2", FIXED_NOW + LEASE / 2, LEASE, AGAIN) is None
    taken = store.claim_source("ap-nl", "r2", FIXED_NOW + LEASE, LEASE, AGAIN)
    assert taken is not None and taken.holder == "r2"
    assert not store.renew_source(dead, FIXED_NOW + LEASE, LEASE)
    assert store.renew_source(taken, FIXED_NOW + LEASE * 1.5, LEASE)
    [view] = store.leases(FIXED_NOW + LEASE)
    assert (view.holder, view.expires_at) == ("r2", FIXED_NOW + LEASE * 2.5)


def test_a_stale_holder_cannot_overwrite_the_new_holders_results(store: Store) -> None:
    stale = store.claim_source("ap-nl", "r1", FIXED_NOW, LEASE, AGAIN)
    fresh = store.claim_source("ap-nl", "r2", FIXED_NOW + LEASE, LEASE, AGAIN)
    assert stale is not None and fresh is not None
    item = make_item("ap-nl", "id:1", "Clearview contract")
    later = FIXED_NOW + LEASE
    store.commit_batch(
        "ap-nl", "rss", _fetched(), [item], [(item, Change.NEW)], [], later, lease=fresh
    )
    old = make_item("ap-nl", "id:2", "Something stale")
    with pytest.raises(LeaseLost, match="r1 lost its lease"):
        store.commit_batch(
            "ap-nl", "rss", _fetched(b"stale"), [old], [(old, Change.NEW)], [],
            later, lease=stale,
        )  # fmt: skip
    for record in (
        lambda: store.record_failure("ap-nl", "rss", "boom", later, lease=stale),
        lambda: store.record_fetch("ap-nl", "rss", _fetched(), "unchanged", later, lease=stale),
        lambda: store.record_pause("ap-nl", "rss", "quota", later, None, lease=stale),
    ):
        with pytest.raises(LeaseLost):
            record()
    [state] = store.source_states()
    assert (state.body_hash, state.consecutive_failures, state.last_outcome) == (
        _fetched().body_hash, 0, "ok",
    )  # fmt: skip
    assert store.known_hashes("ap-nl", ["id:1", "id:2"]).keys() == {"id:1"}
    with store.session() as s:
        row = s.get(SourceLease, "ap-nl")
        assert row is not None and row.holder is None and row.last_holder == "r2"
        assert row.next_due_at == FIXED_NOW + LEASE + AGAIN  # from the new holder's claim


async def test_a_run_whose_lease_was_taken_over_records_nothing(store: Store) -> None:
    from monitor.matching import Matcher

    source = FakeSource(source_config("ap-nl"))
    source.items = [make_item("ap-nl", "id:1", "Clearview contract")]
    ctx = PipelineContext(store, None, Matcher([]), (), lambda: FIXED_NOW + LEASE)  # type: ignore[arg-type]
    stale = store.claim_source("ap-nl", "r1", FIXED_NOW, LEASE, AGAIN)
    assert store.claim_source("ap-nl", "r2", FIXED_NOW + LEASE, LEASE, AGAIN) is not None
    run = await run_source(source, ctx, lease=stale)
    assert run.outcome == "lease_lost" and "another replica took the source over" in (
        run.error or ""
    )
    assert store.source_states() == [] and store.item_counts() == {}


# --- outbox claims ------------------------------------------------------------------------


def _queue(store: Store, count: int) -> None:
    with store.session() as s:
        for n in range(count):
            s.add(
                AlertRow(
                    id=f"msg_{n:03d}", notifier="newsroom", data={"n": n},
                    created_at=FIXED_NOW, next_attempt_at=FIXED_NOW + timedelta(seconds=n),
                )
            )  # fmt: skip
        s.commit()


def _attempt(store: Store, alert: AlertRow, holder: str, status: str = "delivered") -> None:
    store.record_attempt(
        alert, outcome=status, status=status, now=FIXED_NOW, next_attempt_at=None,
        status_code=204, error=None, duration=0.1, holder=holder,
    )  # fmt: skip


def test_claims_split_the_outbox_between_replicas(store: Store) -> None:
    _queue(store, 5)
    now = FIXED_NOW + timedelta(minutes=1)
    mine = store.claim_alerts("newsroom", "r1", now, LEASE, 3)
    theirs = store.claim_alerts("newsroom", "r2", now, LEASE, 3)
    assert [a.id for a in mine] == ["msg_000", "msg_001", "msg_002"]  # oldest due first
    assert [a.id for a in theirs] == ["msg_003", "msg_004"]
    assert store.claim_alerts("newsroom", "r3", now, LEASE, 3) == []
    assert store.release_alerts(["msg_001", "msg_002", "msg_003"], "r1") == 2  # only its own
    assert [a.id for a in store.claim_alerts("newsroom", "r3", now, LEASE, 3)] == [
        "msg_001",
        "msg_002",
    ]


def test_an_expired_claim_is_taken_over_and_only_the_holder_records(store: Store) -> None:
    _queue(store, 1)
    [dead] = store.claim_alerts("newsroom", "r1", FIXED_NOW, LEASE, 10)
    assert store.claim_alerts("newsroom", "r2", FIXED_NOW + LEASE / 2, LEASE, 10) == []
    [taken] = store.claim_alerts("newsroom", "r2", FIXED_NOW + LEASE, LEASE, 10)
    assert taken.id == dead.id and taken.claimed_by == "r2"
    assert not store.renew_alert(dead.id, "r1", FIXED_NOW + LEASE, LEASE)
    with pytest.raises(LeaseLost, match="r1's claim ran out"):
        _attempt(store, dead, "r1")
    [row] = store.deliveries()
    assert (row.status, row.attempts, row.claimed_by) == ("pending", 0, "r2")
    assert store.renew_alert(taken.id, "r2", FIXED_NOW + LEASE, LEASE)
    _attempt(store, taken, "r2")
    [row] = store.deliveries()
    assert (row.status, row.attempts, row.claimed_by, row.claim_expires_at) == (
        "delivered", 1, None, None,
    )  # fmt: skip
    assert store.leases(FIXED_NOW) == []


def _about_an_item(store: Store, alert_id: str) -> None:
    item = make_item("ap-nl", alert_id, "Clearview contract")
    store.commit_batch("ap-nl", "rss", _fetched(), [item], [(item, Change.NEW)], [], FIXED_NOW)
    [item_id] = [row.id for row in store.items_by_key(alert_id)]
    with store.session() as s:
        row = s.get(AlertRow, alert_id)
        assert row is not None
        row.item_id = item_id
        s.add(row)
        s.commit()


def test_a_digest_notifiers_item_alerts_are_not_claimed(store: Store) -> None:
    _queue(store, 2)
    _about_an_item(store, "msg_000")
    claimed = store.claim_alerts("newsroom", "r1", FIXED_NOW + LEASE, LEASE, 10, with_items=False)
    assert [a.id for a in claimed] == ["msg_001"]


def test_status_shows_who_holds_what(store: Store) -> None:
    _queue(store, 2)
    claim = store.claim_source("ap-nl", "web-1", FIXED_NOW, LEASE, AGAIN)
    assert claim is not None
    store.claim_alerts("newsroom", "web-2", FIXED_NOW, timedelta(seconds=45), 1)
    now = FIXED_NOW + timedelta(seconds=60)
    report = "\n".join(leases_report(store.leases(now), store.last_holders(), now))
    assert "  web-1: fetching 1 sources, delivering 0 alerts now" in report
    assert "  web-2: fetching 0 sources, delivering 1 alerts now" in report
    assert "  source ap-nl: web-1, until 2026-11-22T10:01:30Z (30s left)" in report
    assert "  alert newsroom msg_000: web-2, EXPIRED at 2026-11-22T10:00:45Z" in report


# --- rows two replicas create at once -----------------------------------------------------


def _together(count: int, work: Callable[[], object]) -> list[BaseException]:
    """Run ``work`` in ``count`` threads released at once; the exceptions they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            work()
        except Exception as e:  # collected for the assert
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_replicas_failing_on_one_notifier_at_once_do_not_collide(pg_url: str) -> None:
    """Before the fix, each created the notifier's row: one died on a duplicate key."""
    for round_ in range(5):
        store = Store(create_db_engine(pg_url))
        name = f"hook-{round_}"
        errors = _together(4, lambda: store.notifier_failing(name, "fp", FIXED_NOW))  # noqa: B023
        assert errors == []
        store.engine.dispose()


def test_replicas_building_one_digest_slot_build_it_once(pg_url: str) -> None:
    store = Store(create_db_engine(pg_url))
    store.make_digest("newsroom", FIXED_NOW - timedelta(days=1), FIXED_NOW)  # starts the clock
    _queue(store, 1)
    _about_an_item(store, "msg_000")
    built: list[list[str]] = []
    slot = FIXED_NOW + timedelta(hours=1)
    errors = _together(4, lambda: built.append(store.make_digest("newsroom", slot, slot)))
    assert errors == []
    assert sorted(len(ids) for ids in built) == [0, 0, 0, 1]


def test_a_notifier_disabled_by_two_replicas_is_announced_once(store: Store) -> None:
    from monitor.system import SystemDraft

    for n, now in enumerate((FIXED_NOW, FIXED_NOW + timedelta(seconds=3))):
        # Each replica's round met the 410 at its own moment: the ids differ.
        draft = SystemDraft(f"sys_{n}", "ops", "notifier.disabled", {"notifier": "newsroom"})
        store.disable_notifier("newsroom", "fp", "HTTP 410", now, [draft])
    assert [row.id for row in store.deliveries()] == ["sys_0"]
    assert store.notifier_disabled("newsroom", "fp") == "HTTP 410"


def test_a_serialised_block_holds_other_replicas_back_until_it_ends(pg_url: str) -> None:
    """Dedupe decides "is this event new?" from reads and writes later: replicas take turns."""
    first, second = Store(create_db_engine(pg_url)), Store(create_db_engine(pg_url))
    inside, release, entered = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with first.serialised("dedupe"):
            inside.set()
            release.wait(timeout=30)

    def wait_turn() -> None:
        with second.serialised("dedupe"):
            entered.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(timeout=10)
    waiter = threading.Thread(target=wait_turn)
    waiter.start()
    assert not entered.wait(timeout=0.5)  # still held by the first replica
    release.set()
    assert entered.wait(timeout=10)
    holder.join()
    waiter.join()
    with second.serialised("dedupe", enabled=False):  # no lock taken: nothing to wait for
        pass
    first.engine.dispose()
    second.engine.dispose()


async def test_a_claim_the_database_refuses_skips_the_run_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = Web(feeds={FEED.format(name="ap"): rss(Entry("g1", "Clearview"))})
    path = tmp_path / "sources.toml"
    path.write_text(config_text(tmp_path / "nw.db", source_toml("ap")))
    async with running(path, web) as service:

        def refuse(*args: object, **kwargs: object) -> None:
            raise StorageError("storage: OperationalError: connection refused")

        monkeypatch.setattr(service.app.store, "claim_source", refuse)
        await service._source("ap")  # neither raises nor fetches
    assert web.fetched == []
    assert "source=ap outcome=error could not claim it: storage: OperationalError" in caplog.text


async def _until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_long_run_keeps_its_lease_by_renewing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder renews every third of the lease while the run lasts: past the first
    expiry, another replica still cannot take the source, and the run's results count."""
    release = asyncio.Event()

    async def slow_feed(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, content=rss(Entry("g1", "Clearview contract")))

    path = tmp_path / "sources.toml"
    path.write_text(config_text(tmp_path / "nw.db", source_toml("ap")))
    # A 0.3s lease, renewed every 0.1s, while the (30s-deadline) request waits longer.
    monkeypatch.setattr(scheduler, "source_lease", lambda _timeout: timedelta(seconds=0.3))
    clock = Clock(FIXED_NOW)
    transport = httpx.MockTransport(slow_feed)
    config = load_config(path, ENV)
    async with open_app(config, clock=clock, transport=transport) as opened:
        app = dataclasses.replace(opened, replica=Replica("r1"))
        store = app.store
        running_ = asyncio.create_task(Service(app)._source("ap"))
        await _until(lambda: len(store.leases(clock())) == 1)
        [claimed] = store.leases(clock())
        clock.advance(timedelta(seconds=1))  # the first expiry has passed
        await _until(lambda: (store.leases(clock())[0].expires_at or clock()) > clock())
        assert store.claim_source("ap", "r2", clock(), LEASE, AGAIN) is None
        release.set()
        await running_
        assert claimed.holder == "r1" and store.leases(clock()) == []
        [state] = store.source_states()
        assert state.last_outcome == "ok" and store.last_holders() == {"ap": "r1"}


async def test_a_source_held_by_a_dead_replica_is_tried_again_when_its_lease_runs_out(
    tmp_path: Path,
) -> None:
    """A replica killed mid-fetch (or this replica's own previous process) leaves a live
    lease; the source is tried again just after it runs out, not a whole interval later."""
    web = Web(feeds={FEED.format(name="ap"): rss(Entry("g1", "Clearview"))})
    path = tmp_path / "sources.toml"
    path.write_text(config_text(tmp_path / "nw.db", source_toml("ap", every="1h")))
    async with running(path, web) as service:
        store, now = service.app.store, service.app.clock()
        dead = store.claim_source("ap", "dead-replica", now, LEASE, AGAIN)
        assert dead is not None
        job = service.scheduler.get_job("source:ap")
        assert job is not None
        job.modify(next_run_time=now + timedelta(hours=1))  # as when the timer has just fired
        await service._source("ap")
        assert web.fetched == []
        job = service.scheduler.get_job("source:ap")
        assert job is not None and job.next_run_time == dead.expires_at + timedelta(seconds=1)
        service.app.clock.advance(LEASE + timedelta(seconds=1))  # type: ignore[attr-defined]
        await service._source("ap")
    assert web.fetched == [FEED.format(name="ap")]


def test_only_ended_processes_of_this_host_are_judged_gone() -> None:
    alive = {4242}
    holders = [
        "web-1-4242-abcdef",  # alive on this host
        "web-1-999-abcdef",  # ended on this host
        "web-1-1-a1b2c3",  # this very pid under another id: a restarted container
        "web-2-999-abcdef",  # another host: only its expiry tells
        "replica-a",  # set with NOTICEWATCH_REPLICA_ID: only its expiry tells
        "web-1-999-abc",  # not a generated id
    ]
    gone = gone_from_this_host(holders, "web-1", 1, lambda pid: pid in alive)
    assert gone == ["web-1-999-abcdef", "web-1-1-a1b2c3"]


async def test_a_restart_frees_what_its_killed_predecessor_held_at_once(tmp_path: Path) -> None:
    """The single replica of a small deployment, killed mid-fetch and mid-delivery, gets its
    source and its alerts back when it starts again, not 90s and 45s later."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = f"{socket.gethostname()}-{ended.pid}-abcdef"
    web = Web(feeds={FEED.format(name="ap"): rss(Entry("g1", "Clearview"))})
    path = tmp_path / "sources.toml"
    path.write_text(config_text(tmp_path / "nw.db", source_toml("ap")))
    async with running(path, web) as service:
        store, now = service.app.store, service.app.clock()
        assert store.claim_source("ap", dead, now, LEASE, AGAIN) is not None
        assert store.claim_source("other", "elsewhere-1-abcdef", now, LEASE, AGAIN) is not None
        service._free_ended_replicas()
        assert [(v.subject, v.holder) for v in store.leases(now)] == [
            ("other", "elsewhere-1-abcdef")
        ]
        await service._source("ap")
    assert web.fetched == [FEED.format(name="ap")]


def test_release_holders_frees_leases_and_claims_of_those_replicas_only(store: Store) -> None:
    _queue(store, 4)
    now = FIXED_NOW + timedelta(minutes=1)
    assert len(store.claim_alerts("newsroom", "gone-1-abcdef", now, LEASE, 3)) == 3
    assert len(store.claim_alerts("newsroom", "live-2-abcdef", now, LEASE, 3)) == 1
    assert store.claim_source("a", "gone-1-abcdef", now, LEASE, AGAIN) is not None
    assert store.claim_source("b", "live-2-abcdef", now, LEASE, AGAIN) is not None
    assert store.holders() == ["gone-1-abcdef", "live-2-abcdef"]
    assert store.release_holders(["gone-1-abcdef"]) == (1, 3)
    assert store.holders() == ["live-2-abcdef"]
    assert store.claim_source("a", "new-3-abcdef", now, LEASE, AGAIN) is not None
    assert len(store.claim_alerts("newsroom", "new-3-abcdef", now, LEASE, 5)) == 3


def test_a_killed_process_not_reaped_yet_counts_as_ended() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not pid_alive(child.pid)  # a zombie until wait() below
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)


@dataclasses.dataclass
class HeldWeb(Web):
    """Feeds that answer only once released, counting the requests waiting at once."""

    release: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    in_flight: int = 0
    peak: int = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:  # type: ignore[override]
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return super().handler(request)


async def test_at_most_sources_in_flight_run_at_once_and_the_rest_wait_unclaimed(
    tmp_path: Path,
) -> None:
    """Hundreds of sources due at once (a first start) must not all fetch at once: their
    deadlines would run out waiting for the event loop. The waiting ones hold no lease."""
    names = [f"s{i:02d}" for i in range(20)]
    web = HeldWeb(feeds={FEED.format(name=n): rss(Entry(f"g-{n}", "Clearview")) for n in names})
    path = tmp_path / "sources.toml"
    path.write_text(config_text(tmp_path / "nw.db", *(source_toml(n) for n in names)))
    async with running(path, web) as service:
        for name in names:
            await service._trigger_source(name)
        await _until(lambda: web.in_flight == SOURCES_IN_FLIGHT)
        assert len(service.app.store.leases(service.app.clock())) == SOURCES_IN_FLIGHT
        web.release.set()
        await asyncio.gather(*service.tasks.values())
    assert web.peak == SOURCES_IN_FLIGHT
    assert sorted(web.fetched) == sorted(FEED.format(name=n) for n in names)
