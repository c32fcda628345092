"""Dead letters, replay, enable and notify-test through the command line (in process)."""

from __future__ import annotations

import logging
import sqlite3
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from tests.support.feed_server import FeedServer
from tests.support.feeds import Entry, rss
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

ENV = {"SECRET": WEBHOOK_SECRET}


@pytest.fixture(autouse=True)
def keep_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver) -> str:
    feed_server.serve("/ap.xml", rss(Entry("ap-1", "Clearview fined", "https://ap.example/1")))
    path = tmp_path / "sources.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [monitor]
            database = "sqlite:///{tmp_path / "nw.db"}"
            baseline = false
            max_attempts = 1

            [[sources]]
            name = "ap-nl"
            type = "rss"
            url = "{feed_server.url("/ap.xml")}"
            every = "15m"

            [[rules]]
            name = "cv"
            query = "clearview"

            [[notifiers]]
            name = "newsroom"
            type = "webhook"
            url = "{webhook_receiver.url}"
            secret = "${{SECRET}}"
            allow_private = true
            timeout = "2s"
            """
        )
    )
    return str(path)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args), ENV)
    return code, capsys.readouterr().out


@pytest.mark.integration
def test_dead_letter_is_listed_and_replayed_with_the_same_webhook_id(
    config: str, webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    webhook_receiver.set_status(500)
    code, out = cli(capsys, "poll", "--config", config)
    assert code == 0 and "dead 1" in out
    code, out = cli(capsys, "deliveries", "--dead", "--config", config)
    assert code == 0
    assert "newsroom  alert.created  dead  attempts 1" in out
    assert "ap-nl: Clearview fined" in out and "last error: HTTP 500" in out
    dead_id = out.split()[0]
    failed_id = webhook_receiver.requests[0].webhook_id
    assert dead_id == failed_id

    webhook_receiver.set_status(204)
    code, out = cli(capsys, "replay", "--dead", "--config", config)
    assert code == 0 and f"queued {dead_id}" in out and "1 queued again" in out
    code, out = cli(capsys, "poll", "--config", config)
    assert webhook_receiver.ids() == [dead_id]  # the same webhook-id as the failed try
    code, out = cli(capsys, "deliveries", "--dead", "--config", config)
    assert out.strip() == "no deliveries"

    # Replaying one delivered alert by id sends it again, still with its id.
    code, out = cli(capsys, "replay", dead_id, "--config", config)
    assert code == 0
    cli(capsys, "poll", "--config", config)
    assert webhook_receiver.ids() == [dead_id, dead_id]


def test_replay_of_an_unknown_id_or_notifier_is_a_usage_error(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli(capsys, "replay", "msg_nope", "--config", config)
    assert code == 2 and "no delivery with id 'msg_nope'" in out
    code, out = cli(capsys, "deliveries", "--notifier", "nope", "--config", config)
    assert code == 2 and "no notifier named 'nope'; known notifiers: newsroom" in out
    code, out = cli(capsys, "enable", "nope", "--config", config)
    assert code == 2


def test_replay_needs_an_id_or_dead(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["replay", "--config", config], ENV)
    assert e.value.code == 2


@pytest.mark.integration
def test_enable_turns_a_gone_endpoint_back_on(
    config: str,
    tmp_path: Path,
    webhook_receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    webhook_receiver.set_status(410)
    cli(capsys, "poll", "--config", config)
    code, out = cli(capsys, "status", "--config", config)
    assert "DISABLED" in out
    alert_id = webhook_receiver.requests[0].webhook_id
    assert alert_id is not None
    code, out = cli(capsys, "replay", alert_id, "--config", config)
    assert "warning: notifier newsroom is disabled; run `noticewatch enable newsroom`" in out
    webhook_receiver.set_status(204)
    code, out = cli(capsys, "enable", "newsroom", "--config", config)
    assert code == 0 and "notifier newsroom: enabled" in out
    cli(capsys, "poll", "--config", config)
    assert len(webhook_receiver.deliveries) == 1
    with sqlite3.connect(tmp_path / "nw.db") as db:
        assert db.execute("SELECT status FROM alerts").fetchall() == [("delivered",)]


@pytest.mark.integration
def test_notify_test_sends_one_signed_test_message(
    config: str, webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = cli(capsys, "notify-test", "newsroom", "--config", config)
    assert code == 0 and "test message delivered (HTTP 204)" in out
    [delivery] = webhook_receiver.deliveries
    assert delivery.payload["type"] == "notifier.test"
    assert delivery.payload["data"]["notifier"] == "newsroom"
    webhook_receiver.set_status(503)
    code, out = cli(capsys, "notify-test", "newsroom", "--config", config)
    assert code == 1 and "NOT delivered: HTTP 503" in out


@pytest.mark.integration
def test_a_failing_source_reaches_source_health_subscribers_once_through_poll(
    config: str,
    feed_server: FeedServer,
    webhook_receiver: WebhookReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = Path(config)
    path.write_text(
        path.read_text().replace("max_attempts = 1", "failing_after = 2")
        + 'rules = ["source_health"]\n'  # newsroom now only hears about health
    )
    feed_server.serve("/ap.xml", b"gone", status=500)
    for _ in range(4):
        code, _ = cli(capsys, "poll", "--config", config)
        assert code == 1
    [failing] = webhook_receiver.deliveries
    assert failing.payload["type"] == "source.failing"
    assert failing.payload["data"]["source"] == "ap-nl"
    assert "HTTP 500" in failing.payload["data"]["last_error"]
    feed_server.serve("/ap.xml", rss(Entry("ap-1", "Clearview fined", "https://ap.example/1")))
    cli(capsys, "poll", "--config", config)
    cli(capsys, "poll", "--config", config)
    types = [r.payload["type"] for r in webhook_receiver.deliveries]
    assert types == ["source.failing", "source.recovered"]


def test_deliveries_never_prints_terminal_control_sequences() -> None:
    """Titles (a JSON source can carry any character) and endpoint errors are untrusted."""
    from datetime import UTC, datetime

    from monitor.cli_delivery import deliveries_table
    from storage.tables import AlertRow

    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    row = AlertRow(
        id="msg_1", item_id=1, notifier="hook", event_type="alert.created", rules=["cv"],
        data={"item": {"source": "sam", "title": "Clearview\x1b[2J\x1b]0;owned\x07\nfake row"}},
        status="pending", attempts=1, created_at=now, next_attempt_at=now,
        last_error="HTTP 500: \x1b[31mred\u2028\x9bX",
    )  # fmt: skip
    table = deliveries_table([row])
    assert not any(ch in table for ch in "\x1b\x07\x9b\u2028")
    assert table.count("\n") == 2  # the row, its subject, its last error
    assert "Clearview [2J ]0;owned fake row" in table
