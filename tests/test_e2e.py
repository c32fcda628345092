"""End to end over loopback: the real CLI, a real feed server, a real signed-webhook receiver."""

from __future__ import annotations

import base64
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.feeds import Entry, rss
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parent.parent

OLD = Entry("ap-1", "AP publishes annual report", "https://ap.example/report")
FINE = Entry(
    "ap-2",
    "AP legt Clearview boete op",
    "https://ap.example/clearview?utm_source=rss",
    "Boete van 30,5 miljoen euro voor Clearview AI",
)
OTHER = Entry("ap-3", "AP on cookie banners", "https://ap.example/cookies")
FINE2 = Entry("ap-4", "Clearview fined again", "https://ap.example/clearview-2", "A fine.")


@dataclass
class Env:
    tmp: Path
    feeds: FeedServer
    receiver: WebhookReceiver

    @property
    def db(self) -> Path:
        return self.tmp / "data" / "noticewatch.db"

    def write_config(self, *, baseline: bool = True, extra: str = "", http_port: int = 0) -> Path:
        path = self.tmp / "sources.toml"
        path.write_text(
            textwrap.dedent(
                f"""
                [monitor]
                database = "sqlite:///{self.db}"
                baseline = {str(baseline).lower()}
                http_port = {http_port}

                [[sources]]
                name = "ap-nl"
                type = "rss"
                url = "{self.feeds.url("/ap.xml")}"
                every = "30s"
                language = "nl"

                [[rules]]
                name = "clearview-fines"
                query = 'clearview AND (fine* OR boete OR amende OR sanction*)'

                [[notifiers]]
                name = "newsroom"
                type = "webhook"
                url = "{self.receiver.url}"
                secret = "${{TEST_WEBHOOK_SECRET}}"
                allow_private = true
                timeout = "2s"
                """
            )
            + textwrap.dedent(extra)
        )
        return path

    def source(self, name: str, path: str, **keys: str) -> str:
        """A [[sources]] table for an rss feed served at ``path`` on the feed server."""
        lines = [f'name = "{name}"', 'type = "rss"', f'url = "{self.feeds.url(path)}"']
        lines += [f'{key} = "{value}"' for key, value in {"every": "15m", **keys}.items()]
        return "\n[[sources]]\n" + "\n".join(lines) + "\n"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args],
            cwd=self.tmp,
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTICEWATCH_")}
        env["PYTHONPATH"] = str(ROOT)
        env["TEST_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        env["NOTICEWATCH_CONFIG"] = str(self.tmp / "sources.toml")
        return env

    def time_passes(self) -> None:
        """Make every pending retry due now, as if its backoff had elapsed."""
        with sqlite3.connect(self.db) as conn:
            conn.execute("UPDATE alerts SET next_attempt_at = '2000-01-01 00:00:00.000000'")


@pytest.fixture
def env(tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver) -> Env:
    return Env(tmp_path, feed_server, webhook_receiver)


def test_poll_end_to_end_one_signed_webhook_per_new_matching_item(env: Env) -> None:
    env.write_config()
    env.feeds.serve("/ap.xml", rss(OLD), etag='"v1"')
    first = env.cli("poll")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "ap-nl: baseline: 1 items, 1 new" in first.stdout
    assert env.receiver.request_count == 0

    link = f"{OLD.link}?utm_medium=feed"
    moved_old = Entry(OLD.guid, OLD.title, link, pub_date="Mon, 23 Nov 2026 09:00:00 GMT")
    env.feeds.serve("/ap.xml", rss(FINE, OTHER, moved_old), etag='"v2"')
    second = env.cli("poll")
    assert second.returncode == 0, second.stderr + second.stdout
    (delivery,) = env.receiver.wait_for(1)
    assert delivery.verified  # standardwebhooks verified the signature
    event = delivery.payload
    assert event["type"] == "alert.created"
    data = event["data"]
    assert data["rules"] == ["clearview-fines"]
    assert data["alert_id"] == delivery.webhook_id
    item = data["item"]
    assert item["title"] == "AP legt Clearview boete op"
    assert item["source"] == "ap-nl" and item["source_type"] == "rss"
    assert item["language"] == "nl"
    assert item["published"] == "2026-11-22T09:00:00Z"
    assert item["summary"] == "Boete van 30,5 miljoen euro voor Clearview AI"
    matched = {(m["field"], m["text"]) for m in data["matches"]}
    assert ("title", "Clearview") in matched and ("title", "boete") in matched
    for m in data["matches"]:
        assert item[m["field"]][m["start"] : m["end"]] == m["text"]
    assert data["also_seen_in"] == []

    third = env.cli("poll")  # the server answers 304 now
    assert third.returncode == 0
    assert "ap-nl: not_modified" in third.stdout
    assert env.feeds.requests[-1].headers.get("if-none-match") == '"v2"'
    assert env.receiver.request_count == 1

    status = env.cli("status")
    assert status.returncode == 0, status.stderr
    assert "ap-nl: last fetch" in status.stdout and "3 items" in status.stdout
    assert "newsroom: 0 pending, 1 delivered, 0 dead" in status.stdout


def test_receiver_down_for_the_first_attempts_still_gets_each_alert_once(env: Env) -> None:
    env.write_config()
    env.feeds.serve("/ap.xml", rss(OLD))
    assert env.cli("poll").returncode == 0
    env.feeds.serve("/ap.xml", rss(OLD, FINE, FINE2))
    env.receiver.down()
    for _ in range(3):
        run = env.cli("poll")
        assert run.returncode == 0, run.stderr  # a failing endpoint is not a failing source
        env.time_passes()
    assert "newsroom: 2 pending, 0 delivered" in env.cli("status").stdout
    env.receiver.up()
    env.receiver.fail_next(1, status=500)
    assert env.cli("poll").returncode == 0
    env.time_passes()
    assert env.cli("poll").returncode == 0
    env.receiver.wait_for(2)
    assert len(env.receiver.ids()) == 2 == len(env.receiver.unique_ids())
    last = env.cli("poll")
    assert last.returncode == 0
    assert len(env.receiver.ids()) == 2
    status = env.cli("status")
    assert "newsroom: 0 pending, 2 delivered, 0 dead" in status.stdout
    # The failures above went through logs, error texts and the database: no secret anywhere.
    key = base64.b64decode(WEBHOOK_SECRET.removeprefix("whsec_"))
    stored = [path.read_bytes() for path in env.db.parent.iterdir()]  # the db and its WAL
    for blob in (*stored, last.stdout.encode(), status.stdout.encode()):
        assert WEBHOOK_SECRET.encode() not in blob and key not in blob


def test_a_failing_source_does_not_stop_the_others(env: Env) -> None:
    env.write_config(
        baseline=False,
        extra=env.source("broken", "/missing.xml") + env.source("not-a-feed", "/page.html"),
    )
    env.feeds.serve("/ap.xml", rss(FINE))
    env.feeds.fault("/page.html", "html")
    run = env.cli("poll")
    assert run.returncode == 1, run.stdout
    assert "broken: FAILED: fetch: source 'broken': GET http://127.0.0.1:" in run.stdout
    assert "HTTP 404 Not Found" in run.stdout
    assert "not-a-feed: FAILED: parse: source 'not-a-feed'" in run.stdout
    assert "ap-nl: ok: 1 items, 1 new" in run.stdout
    env.receiver.wait_for(1)
    status = env.cli("status").stdout
    assert "broken: last fetch" in status and "1 consecutive failures" in status
    assert "last error: fetch: source 'broken':" in status and "HTTP 404" in status


def test_check_lists_every_problem_and_exits_2(env: Env) -> None:
    env.write_config(extra='[[rules]]\nname = "bad"\nquery = "clearview AND"\nsources = ["x"]\n')
    result = env.cli("check")
    assert result.returncode == 2
    assert 'rules[1] "bad": query:' in result.stderr
    assert "rules[1] \"bad\": sources: no source named 'x'" in result.stderr
    env.write_config()
    ok = env.cli("check")
    assert ok.returncode == 0 and "1 sources (1 enabled), 1 rules, 1 notifiers" in ok.stdout


def test_missing_secret_is_named_never_shown(env: Env) -> None:
    env.write_config()
    environ = env.environ()
    del environ["TEST_WEBHOOK_SECRET"]
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "check"], cwd=env.tmp, env=environ,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "TEST_WEBHOOK_SECRET is not set" in result.stderr


def test_dry_run_sends_and_writes_nothing(env: Env) -> None:
    env.write_config(baseline=False)
    env.feeds.serve("/ap.xml", rss(FINE, OTHER))
    result = env.cli("poll", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would alert newsroom [clearview-fines]: AP legt Clearview boete op" in result.stdout
    assert env.receiver.request_count == 0
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)


def test_run_delivers_then_stops_cleanly_on_sigterm(env: Env) -> None:
    env.write_config(baseline=False)
    env.feeds.serve("/ap.xml", rss(FINE, FINE2))
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"], cwd=env.tmp, env=env.environ(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        env.receiver.wait_for(2, timeout=30)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "service=stopped" in output
    assert WEBHOOK_SECRET not in output
    # A restart re-fetches but neither re-alerts nor re-delivers.
    assert env.cli("poll").returncode == 0
    assert len(env.receiver.ids()) == 2 == len(env.receiver.unique_ids())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_during_a_hanging_delivery_loses_and_doubles_nothing(
    env: Env, sig: signal.Signals
) -> None:
    env.write_config(baseline=False)
    env.feeds.serve("/ap.xml", rss(FINE, FINE2))
    env.receiver.hang_next(1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor", "run"], cwd=env.tmp, env=env.environ(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        env.receiver.wait_for_requests(1, timeout=30)  # a delivery is in flight, unanswered
        started = time.monotonic()
        proc.send_signal(sig)
        output, _ = proc.communicate(timeout=10)
        stopped_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert stopped_in < 10
    # Whatever was cut off is still in the outbox and goes out after a restart.
    env.time_passes()
    assert env.cli("poll").returncode == 0
    env.receiver.wait_for(2)
    assert len(env.receiver.unique_ids()) == 2
    with sqlite3.connect(env.db) as conn:
        assert conn.execute("SELECT status, count(*) FROM alerts GROUP BY status").fetchall() == [
            ("delivered", 2)
        ]


def test_real_feeds_end_to_end(env: Env) -> None:
    """The real Google News and Spiegel samples (a bozo feed) through fetch, match and delivery."""
    real = ROOT / "tests" / "data" / "real"
    env.write_config(
        baseline=False,
        extra=env.source("gnews", "/gnews.xml")
        + env.source("spiegel", "/spiegel.xml", language="de")
        + """
        [[rules]]
        name = "courts"
        query = '"emergency docket" OR (urteil AND beamter) OR aerztliche'
        """,
    )
    env.feeds.serve("/ap.xml", rss(OLD))
    google = real / "googlenews_search_rss_trimmed_2026-09-25.xml"
    spiegel = real / "spiegel_rss_2015-03-31_declared-iso8859-1_actually-utf8.xml"
    env.feeds.serve("/gnews.xml", google.read_bytes())
    env.feeds.serve("/spiegel.xml", spiegel.read_bytes(), content_type="text/xml")
    run = env.cli("poll")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "gnews: ok: 2 items, 2 new" in run.stdout
    assert "spiegel: ok: 30 items, 30 new" in run.stdout
    deliveries = env.receiver.wait_for(3)
    by_title = {d.payload["data"]["item"]["title"]: d.payload["data"] for d in deliveries}
    guardian = by_title[
        "Ketanji Brown Jackson criticizes supreme court’s handling of emergency docket"
        " - The Guardian"
    ]
    assert guardian["item"]["fields"]["source_title"] == "The Guardian"
    assert guardian["item"]["url"].startswith("https://news.google.com/rss/articles/")
    spiegel_alert = by_title["Urteil in Thüringen: Beamter muss auch unter Ramelow dienen"]
    assert spiegel_alert["item"]["language"] == "de"
    assert {m["text"] for m in spiegel_alert["matches"]} >= {"Urteil", "Beamter"}
    # Folding alone maps Ä to A, not to AE; the German stemmer (the source's language)
    # also reads "ae" as "ä", so the unquoted "aerztliche" finds "Ärztliche".
    pressekompass = by_title[
        "Pressekompass: Ärztliche Schweigepflicht lockern? Das sagen die Medien"
    ]
    assert "Ärztliche" in {m["text"] for m in pressekompass["matches"]}
    assert len(env.receiver.unique_ids()) == 3


def test_a_source_answering_429_is_left_alone_until_retry_after(env: Env) -> None:
    env.write_config()
    env.feeds.serve("/ap.xml", b"slow down", status=429, headers={"Retry-After": "3600"})
    first = env.cli("poll")
    assert first.returncode == 1
    assert "HTTP 429" in first.stdout and "Retry-After: 3600" in first.stdout
    asked = len(env.feeds.requests)
    second = env.cli("poll")
    assert second.returncode == 0, second.stdout
    assert "ap-nl: paused until" in second.stdout
    assert len(env.feeds.requests) == asked  # no request before the time the server named
    assert "paused until" in env.cli("status").stdout
