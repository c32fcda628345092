"""Every fetch path meets every fault of the fault server, in a real ``poll`` cycle.

The matrix is fault x path: for each, ``noticewatch poll`` (in process) runs a faulty
source next to a healthy one of the same type (see ``tests/support/fault_cycle.py``).
The faulty source ends with a recorded, readable error naming it (the poll's line, the
exit code, its ``last_error`` in the database), within its 0.5 s ``timeout`` for the slow
faults; the healthy one still alerts and its alert reaches the webhook receiver; the
poll's traced memory stays far below what the gzip bomb or the 200 MB body would take.
A detail page is not the source: its fault leaves the item as the listing had it, says
why in a warning, and the item still alerts.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path as FsPath

import pytest

from monitor.cli import main
from storage.db import create_db_engine
from tests.support.fault_cycle import (
    ENV,
    LONG_TIMEOUT,
    PATHS,
    SAM_KEY,
    SHORT_TIMEOUT,
    Path,
    shared_tls_contexts,  # noqa: F401 - a pytest fixture
    write_config,
)
from tests.support.fault_server import Fault, FaultServer, fault_server  # noqa: F401
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("shared_tls_contexts")]
MB = 1000 * 1000
MEMORY_BOUND = 100 * MB  # generous: the bomb inflates to 1 GiB, the body is 200 MB
CAP = 10 * 1024 * 1024  # every source's default max_bytes
# At most the cap plus a few chunks is held, never a copy per chunk nor the whole body.
HEAVY_BOUND = 3 * CAP
HEAVY = frozenset({Fault.GZIP_BOMB, Fault.HUGE_BODY})
SLOW = frozenset({Fault.LATENCY, Fault.HANG, Fault.SLOW_BYTES})  # ended by the deadline
TIMED_OUT = r"timed out after 0.5s \(overall deadline\)"

# What the faulty source's error says, per fault (a regular expression).
EXPECTED: dict[Fault, str] = {
    Fault.LATENCY: TIMED_OUT,
    Fault.RESET: r"connection lost while reading: Connection reset by peer",
    Fault.HANG: TIMED_OUT,
    Fault.SLOW_BYTES: TIMED_OUT,
    Fault.SHORT_BODY: r"the server broke the connection or the protocol: "
    r"peer closed connection without sending complete message body",
    Fault.BURST_5XX: r"HTTP 503\b",
    # A POST (TED) follows no redirect; a GET gives up after max_redirects hops.
    Fault.REDIRECT_LOOP: r"more than 5 redirects \(the last to http://127\.0\.0\.1:\d+/bad/|"
    r"POST http://127\.0\.0\.1:\d+/bad/v3/notices/search: HTTP 302 redirect to .* not followed",
    Fault.GZIP_BOMB: r"body larger than the 10 MiB cap",
    Fault.HUGE_BODY: r"body larger than the 10 MiB cap",
}


@dataclass(frozen=True)
class Cycle:
    code: int
    out: str
    err: str
    seconds: float
    peak: int  # traced memory growth, bytes


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> FsPath:
    """A migrated, empty database to copy: migrating one costs a quarter second.

    Before it, one fault-free cycle per path, untraced, so that no traced cycle pays for
    the first imports and compiled selectors (and a broken harness fails here, plainly).
    """
    empty = tmp_path_factory.mktemp("empty") / "nw.db"
    create_db_engine(f"sqlite:///{empty}").dispose()
    with FaultServer() as server, WebhookReceiver() as receiver:
        for path in PATHS:
            tmp = tmp_path_factory.mktemp(f"warm-{path.name}")
            path.serve_good(server, "bad")
            path.serve_good(server, "good")
            config = write_config(tmp, server, path, receiver.url, bad_timeout=LONG_TIMEOUT)
            code = main(["poll"], {**ENV, "NOTICEWATCH_CONFIG": str(config)})
            assert code == 0, path.name
        assert len(receiver.deliveries) == 2 * len(PATHS)
    return empty


def poll(config: FsPath, capsys: pytest.CaptureFixture[str], *, trace: bool) -> Cycle:
    """``noticewatch poll`` in process; with ``trace``, its peak traced memory growth.

    Tracing slows Python down a lot, so only the cycles meeting a large body pay it.
    """
    env = {**ENV, "NOTICEWATCH_CONFIG": str(config)}
    capsys.readouterr()
    if trace:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        started = time.monotonic()
        code = main(["poll"], env)
        seconds = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    captured = capsys.readouterr()
    return Cycle(code, captured.out, captured.err, seconds, peak - before)


def last_error(config: FsPath, source: str) -> str | None:
    with sqlite3.connect(config.parent / "nw.db") as db:
        row = db.execute("SELECT last_error FROM source_state WHERE name = ?", (source,)).fetchone()
    return row[0] if row else None


def line_of(out: str, source: str) -> str:
    return next((line for line in out.splitlines() if line.startswith(f"{source}: ")), "")


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
@pytest.mark.parametrize("fault", list(Fault), ids=[f.value for f in Fault])
def test_fault_on_one_source_is_recorded_and_leaves_the_other_alone(
    fault: Fault,
    path: Path,
    tmp_path: FsPath,
    fault_server: FaultServer,  # noqa: F811
    webhook_receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
    empty_db: FsPath,
) -> None:
    shutil.copyfile(empty_db, tmp_path / "nw.db")
    path.play(fault_server, fault)
    timeout = SHORT_TIMEOUT if fault in SLOW else LONG_TIMEOUT
    config = write_config(tmp_path, fault_server, path, webhook_receiver.url, bad_timeout=timeout)
    cycle = poll(config, capsys, trace=fault in HEAVY)
    bad, good = f"bad-{path.name}", f"good-{path.name}"
    print(f"{fault.value} x {path.name}: {cycle.seconds:.2f}s, peak {cycle.peak / MB:.1f} MB")
    print(line_of(cycle.out, bad))

    if fault in HEAVY:
        assert 0 < cycle.peak < MEMORY_BOUND, f"{cycle.peak / MB:.0f} MB traced"
        assert cycle.peak < HEAVY_BOUND, f"{cycle.peak / MB:.0f} MB traced"
    assert line_of(cycle.out, good).startswith(f"{good}: ok: 1 items, 1 new, 0 updated, 1 alerts")
    titles = alerted(webhook_receiver)
    assert any("(good)" in title for title in titles), titles
    assert SAM_KEY not in cycle.out + cycle.err
    if path.degrades is not None:
        # The item is kept as it was without its document, alerts, and a warning says why.
        assert cycle.code == 0, cycle.out
        assert line_of(cycle.out, bad).startswith(f"{bad}: ok: 1 items, 1 new")
        assert any("(bad)" in title for title in titles), titles
        [warning] = [line for line in cycle.out.splitlines() if path.degrades in line]
        assert f"source={bad}" in warning
        assert_matches(EXPECTED[fault], warning)
        return
    assert cycle.code == 1, cycle.out
    failed = line_of(cycle.out, bad)
    assert failed.startswith(f"{bad}: FAILED: fetch: source '{bad}': ")
    assert_matches(EXPECTED[fault], failed)
    recorded = last_error(config, bad)
    assert recorded is not None and recorded in failed
    assert not any("(bad)" in title for title in titles)
    assert SAM_KEY not in recorded
    if fault is Fault.BURST_5XX:  # the burst passes (two 503s): the source recovers
        assert "HTTP 503" in line_of(poll(config, capsys, trace=False).out, bad)
        again = poll(config, capsys, trace=False)
        assert again.code == 0, again.out
        assert line_of(again.out, bad).startswith(f"{bad}: ok: 1 items, 1 new, 0 updated, 1 alerts")
        assert last_error(config, bad) is None
        assert any("(bad)" in title for title in alerted(webhook_receiver))


def alerted(receiver: WebhookReceiver) -> list[str]:
    """The titles of the items alerted to ``receiver`` (health messages have none)."""
    return [
        str(r.payload["data"]["item"]["title"])
        for r in receiver.deliveries
        if "item" in r.payload.get("data", {})
    ]


def assert_matches(pattern: str, text: str) -> None:
    assert re.search(pattern, text), f"{pattern!r} not in {text!r}"


def test_status_shows_the_faulty_sources_error_without_the_api_key(
    tmp_path: FsPath,
    fault_server: FaultServer,  # noqa: F811
    webhook_receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
    empty_db: FsPath,
) -> None:
    [sam] = [path for path in PATHS if path.name == "sam"]
    shutil.copyfile(empty_db, tmp_path / "nw.db")
    sam.play(fault_server, Fault.RESET)
    config = write_config(
        tmp_path, fault_server, sam, webhook_receiver.url, bad_timeout=LONG_TIMEOUT
    )
    assert poll(config, capsys, trace=False).code == 1
    assert main(["status"], {**ENV, "NOTICEWATCH_CONFIG": str(config)}) == 0
    report = capsys.readouterr().out
    assert "bad-sam: last fetch" in report and "1 consecutive failures" in report
    assert re.search(
        r"last error: fetch: source 'bad-sam': GET http://127\.0\.0\.1:\d+/bad/opportunities/"
        r"v2/search\?api_key=\*\*\*&.*: connection lost while reading: Connection reset by peer",
        report,
    ), report
    assert SAM_KEY not in report


@pytest.mark.parametrize("fault", [Fault.RESET, Fault.SHORT_BODY, Fault.GZIP_BOMB])
def test_a_fault_on_a_later_page_loses_nothing(
    fault: Fault,
    tmp_path: FsPath,
    fault_server: FaultServer,  # noqa: F811
    webhook_receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
    empty_db: FsPath,
) -> None:
    """OCDS page 2 fails: the poll fails, nothing of page 1 is committed, and once the
    page is back the next poll alerts both pages' notices, once each."""
    [ocds] = [path for path in PATHS if path.name == "ocds"]
    shutil.copyfile(empty_db, tmp_path / "nw.db")
    ocds.serve_good(fault_server, "good")
    first = json.loads(ocds.body("bad"))
    first["links"] = {"next": fault_server.url("/bad/page2.json")}
    fault_server.serve("/bad/releases.json", json.dumps(first).encode())
    second = json.loads(
        ocds.body("bad").replace(b"bad-1", b"bad-2").replace(b"licence", b"renewal")
    )
    fault_server.fault("/bad/page2.json", fault, body=json.dumps(second).encode())
    config = write_config(
        tmp_path, fault_server, ocds, webhook_receiver.url, bad_timeout=LONG_TIMEOUT
    )

    failed = poll(config, capsys, trace=False)
    assert failed.code == 1
    assert_matches(r"bad-ocds: FAILED: .*GET http://127\.0\.0\.1:\d+/bad/page2\.json", failed.out)
    assert not any("(bad)" in title for title in alerted(webhook_receiver))

    fault_server.serve("/bad/page2.json", json.dumps(second).encode())
    again = poll(config, capsys, trace=False)
    expected = "bad-ocds: ok: 2 items, 2 new, 0 updated, 2 alerts"
    assert line_of(again.out, "bad-ocds").startswith(expected), again.out
    bad_titles = [title for title in alerted(webhook_receiver) if "(bad)" in title]
    assert len(bad_titles) == 2


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_latency_within_the_timeout_is_no_fault(
    path: Path,
    tmp_path: FsPath,
    fault_server: FaultServer,  # noqa: F811
    webhook_receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
    empty_db: FsPath,
) -> None:
    shutil.copyfile(empty_db, tmp_path / "nw.db")
    path.play(fault_server, Fault.LATENCY, delay=0.2)
    config = write_config(
        tmp_path, fault_server, path, webhook_receiver.url, bad_timeout=LONG_TIMEOUT
    )
    cycle = poll(config, capsys, trace=False)
    assert cycle.code == 0, cycle.out
    expected = f"bad-{path.name}: ok: 1 items, 1 new, 0 updated, 1 alerts"
    assert line_of(cycle.out, f"bad-{path.name}").startswith(expected), cycle.out
    if path.degrades is not None:  # the late document arrived and went into the item
        assert path.degrades not in cycle.out
        with sqlite3.connect(tmp_path / "nw.db") as db:
            [row] = db.execute("SELECT * FROM items WHERE source = ?", (f"bad-{path.name}",))
        assert "decision text" in str(row)
    assert sorted(t.rpartition("(")[2] for t in alerted(webhook_receiver)) == ["bad)", "good)"]
