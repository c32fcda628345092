"""Every notifier meets every fault that applies to it, in a real ``poll`` cycle.

One source alerts once; the alert goes to a faulty endpoint and a healthy one of the same
type. The faulty delivery ends with a readable error on its outbox row and its attempt
record (or is delivered, where the endpoint did answer), within the notifier's 0.5 s
``timeout`` for the slow faults; the healthy endpoint receives its alert in the same cycle;
memory stays bounded when the reply is a gzip bomb or a 200 MB body (or, over SMTP, a
reply that never ends). Faults x notifiers: webhook (HTTP, tests/support/fault_server.py)
and email (SMTP, tests/support/smtp_faults.py, whose docstring says which HTTP faults
have no SMTP counterpart).
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import textwrap
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.cli import main
from storage.db import create_db_engine
from tests.support.fault_cycle import shared_tls_contexts  # noqa: F401 - a pytest fixture
from tests.support.fault_server import Fault, FaultServer, fault_server  # noqa: F401
from tests.support.smtp_faults import SmtpFault, SmtpFaultServer
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("shared_tls_contexts")]
MB = 1000 * 1000
MEMORY_BOUND = 100 * MB
RSS = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
    b"<title>Clearview AI fined</title><guid>n-1</guid><link>https://n.example.org/1</link>"
    b"</item></channel></rss>"
)
ENV = {"TEST_WEBHOOK_SECRET": WEBHOOK_SECRET}
TIMED_OUT = r"timed out after 0\.5s"
SLOW_HTTP = frozenset({Fault.LATENCY, Fault.HANG, Fault.SLOW_BYTES})
SLOW_SMTP = frozenset({SmtpFault.LATENCY, SmtpFault.HANG, SmtpFault.SLOW_BYTES})

# The webhook's record of each fault: (outbox status after one cycle, error pattern).
# A reply cut short after its status line was an answer: 200 is delivered, once.
WEBHOOK: dict[Fault, tuple[str, str]] = {
    Fault.LATENCY: ("pending", TIMED_OUT),
    Fault.RESET: ("pending", r"^reading the reply failed: .*[Cc]onnection reset"),
    Fault.HANG: ("pending", TIMED_OUT),
    Fault.SLOW_BYTES: ("pending", TIMED_OUT),
    Fault.SHORT_BODY: ("delivered", r"^$"),
    Fault.BURST_5XX: ("pending", r"^HTTP 503 Service Unavailable: upstream unavailable"),
    Fault.REDIRECT_LOOP: (
        "pending",
        r"^HTTP 302 Found: redirect to http://127\.0\.0\.1:\d+ not followed; "
        r"set url to the final address",
    ),
    Fault.GZIP_BOMB: ("pending", r"^HTTP 500 Internal Server Error"),
    Fault.HUGE_BODY: ("pending", r"^HTTP 500 Internal Server Error: x{100}"),
}
SMTP_WHERE = r"^SMTP 127\.0\.0\.1:\d+ "
SMTP_TIMED_OUT = SMTP_WHERE + r"connecting: " + TIMED_OUT  # the greeting never completed
EMAIL: dict[SmtpFault, str] = {
    SmtpFault.LATENCY: SMTP_TIMED_OUT,
    # Reset before or after the connect call returned: both say so.
    SmtpFault.RESET: SMTP_WHERE + r"connecting failed: SMTPConnectError: Error connecting to "
    r"127\.0\.0\.1 on port \d+: (Connection lost|\[Errno 104\])",
    SmtpFault.HANG: SMTP_TIMED_OUT,
    SmtpFault.SLOW_BYTES: SMTP_TIMED_OUT,
    SmtpFault.REPLY_4XX: SMTP_WHERE + r"sending failed: SMTPDataError: \(451, '4\.3\.0 Temporary",
    SmtpFault.REPLY_5XX: SMTP_WHERE
    + r"sending failed: SMTPSenderRefused: \(554, '5\.7\.1 Sender refused",
    SmtpFault.CUT_SHORT: SMTP_WHERE + r"(connecting|sending) failed: SMTPServerDisconnected",
    SmtpFault.BURST_4XX: SMTP_WHERE + r"connecting failed: .*421",
    SmtpFault.ENDLESS_REPLY: SMTP_WHERE + r"(connecting|sending) failed: .*[Rr]esponse too long",
}


@dataclass(frozen=True)
class Outbox:
    status: str
    attempts: int
    error: str
    attempt_errors: list[str]


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty database to copy (migrating one costs a quarter second)."""
    empty = tmp_path_factory.mktemp("empty") / "nw.db"
    create_db_engine(f"sqlite:///{empty}").dispose()
    return empty


def write_config(tmp: Path, feed_url: str, notifiers: str, empty_db: Path) -> Path:
    shutil.copyfile(empty_db, tmp / "nw.db")
    head = f"""
        [monitor]
        database = "sqlite:///{tmp / "nw.db"}"
        baseline = false
        max_attempts = 3

        [[sources]]
        name = "news"
        type = "rss"
        url = "{feed_url}"
        every = "1h"

        [[rules]]
        name = "clearview"
        query = "clearview"
        """
    config = tmp / "sources.toml"
    config.write_text(textwrap.dedent(head) + textwrap.dedent(notifiers))
    return config


def webhook(name: str, url: str, timeout: str) -> str:
    return f"""
        [[notifiers]]
        name = "{name}"
        type = "webhook"
        url = "{url}"
        secret = "${{TEST_WEBHOOK_SECRET}}"
        allow_private = true
        timeout = "{timeout}"
        """


def email(name: str, port: int, timeout: str) -> str:
    return f"""
        [[notifiers]]
        name = "{name}"
        type = "email"
        to = ["desk@example.org"]
        from = "noticewatch@example.org"
        smtp_host = "127.0.0.1"
        smtp_port = {port}
        tls = "none"
        timeout = "{timeout}"
        """


def poll(config: Path, *, trace: bool = False) -> tuple[int, int]:
    """``noticewatch poll`` in process: (exit code, peak traced memory growth)."""
    env = {**ENV, "NOTICEWATCH_CONFIG": str(config)}
    if trace:
        tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        code = main(["poll"], env)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return code, peak - before


def outbox(config: Path, notifier: str) -> Outbox:
    with sqlite3.connect(config.parent / "nw.db") as db:
        [(ident, status, attempts, error)] = db.execute(
            "SELECT id, status, attempts, last_error FROM alerts WHERE notifier = ?", (notifier,)
        ).fetchall()
        errors = [
            row[0] or ""
            for row in db.execute(
                "SELECT error FROM delivery_attempts WHERE alert_id = ? ORDER BY attempt", (ident,)
            )
        ]
    return Outbox(status, attempts, error or "", errors)


def time_passes(config: Path) -> None:
    """Make every pending retry due now, as if its backoff had elapsed."""
    with sqlite3.connect(config.parent / "nw.db") as db:
        db.execute("UPDATE alerts SET next_attempt_at = '2000-01-01 00:00:00.000000'")


def assert_recorded(box: Outbox, status: str, pattern: str) -> None:
    assert box.status == status, box
    assert re.search(pattern, box.error), f"{pattern!r} not in {box.error!r}"
    assert box.attempt_errors == [box.error] * box.attempts or status == "delivered", box


@pytest.mark.parametrize("fault", list(Fault), ids=[f.value for f in Fault])
def test_webhook_fault_is_recorded_and_the_other_endpoint_receives(
    fault: Fault,
    tmp_path: Path,
    fault_server: FaultServer,  # noqa: F811
    webhook_receiver: WebhookReceiver,
    empty_db: Path,
) -> None:
    fault_server.serve("/feed.xml", RSS, content_type="application/rss+xml")
    # A failing reply's body is read (for the error text): the heavy ones come as a 500.
    status = 500 if fault in (Fault.GZIP_BOMB, Fault.HUGE_BODY) else 200
    fault_server.fault("/hook", fault, body=b'{"ok": true}', status=status)
    timeout = "500ms" if fault in SLOW_HTTP else "10s"
    hooks = webhook("bad", fault_server.url("/hook"), timeout)
    hooks += webhook("good", webhook_receiver.url, "10s")
    config = write_config(tmp_path, fault_server.url("/feed.xml"), hooks, empty_db)

    code, peak = poll(config, trace=fault in (Fault.GZIP_BOMB, Fault.HUGE_BODY))

    assert code == 0  # the source polled fine; a delivery failure is the outbox's business
    assert [r.payload["data"]["item"]["title"] for r in webhook_receiver.deliveries] == [
        "Clearview AI fined"
    ]
    assert fault_server.hits("/hook") == 1
    expected_status, pattern = WEBHOOK[fault]
    assert_recorded(outbox(config, "bad"), expected_status, pattern)
    assert peak < 16 * MB, f"{peak / MB:.0f} MB traced"  # an error text reads 8 KiB at most
    if fault is Fault.BURST_5XX:  # the burst passes: retried with the same id, delivered
        for _ in range(2):
            time_passes(config)
            assert poll(config)[0] == 0
        box = outbox(config, "bad")
        assert (box.status, box.attempts) == ("delivered", 3), box
        ids = {r.headers["webhook-id"] for r in fault_server.requests if r.path == "/hook"}
        assert len(ids) == 1


@pytest.mark.parametrize("fault", list(SmtpFault), ids=[f.value for f in SmtpFault])
def test_email_fault_is_recorded_and_the_other_server_receives(
    fault: SmtpFault,
    tmp_path: Path,
    fault_server: FaultServer,  # noqa: F811
    empty_db: Path,
) -> None:
    fault_server.serve("/feed.xml", RSS, content_type="application/rss+xml")
    with SmtpFaultServer(fault) as bad, SmtpFaultServer() as good:
        timeout = "500ms" if fault in SLOW_SMTP else "10s"
        mails = email("bad", bad.port, timeout) + email("good", good.port, "10s")
        config = write_config(tmp_path, fault_server.url("/feed.xml"), mails, empty_db)

        code, peak = poll(config, trace=fault is SmtpFault.ENDLESS_REPLY)

        assert code == 0
        assert len(good.messages) == 1 and b"Clearview AI fined" in good.messages[0]
        assert bad.messages == []
        assert_recorded(outbox(config, "bad"), "pending", EMAIL[fault])
        assert peak < MEMORY_BOUND, f"{peak / MB:.0f} MB traced"
        if fault is SmtpFault.BURST_4XX:  # the burst passes: retried, delivered once
            time_passes(config)
            assert poll(config)[0] == 0
            assert outbox(config, "bad").status == "delivered"
            assert len(bad.messages) == 1
        if fault is SmtpFault.REPLY_5XX:  # refused every time: a dead letter, every try kept
            for _ in range(2):
                time_passes(config)
                assert poll(config)[0] == 0
            box = outbox(config, "bad")
            assert (box.status, box.attempts) == ("dead", 3), box
            assert_recorded(box, "dead", EMAIL[fault])
            assert len(good.messages) == 1  # the healthy server got it once, not per retry
