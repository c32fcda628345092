"""SAM.gov end to end over loopback: the real CLI against a SAM.gov stand-in that pages and
enforces a quota, a real signed-webhook receiver, and the API key nowhere to be found."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from storage.db import create_db_engine
from storage.requests import RequestCounter
from storage.store import Store
from tests.support.feed_server import FeedServer
from tests.support.feeds import Entry, rss
from tests.support.sam_server import SamServer, record
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parent.parent
KEY = "SAM-e2e-key-0123456789abcdef"

SPECIAL = record(
    "aa01", "Special Notice", "s",
    title="Notice of Intent to Sole Source: facial recognition services",
    responseDeadLine="2026-12-01T16:00:00-05:00",
)  # fmt: skip
JUSTIFICATION = record("aa02", "Justification", "u", title="J&A: biometric licences, FAR 6.302-1")
AWARD = record(
    "aa03", "Award Notice", "a", title="Award: case management",
    award={"date": "2026-11-19", "amount": "1250000.00",
           "awardee": {"name": "ACME ANALYTICS LLC", "ueiSAM": "ABCDEF123456"}},
)  # fmt: skip
PRESOL = record("aa04", "Presolicitation", "p", title="Sole source presolicitation (filtered)")


@dataclass
class Env:
    tmp: Path
    sam: SamServer
    receiver: WebhookReceiver

    @property
    def db(self) -> Path:
        return self.tmp / "noticewatch.db"

    def write_config(self, *, daily_quota: int = 10, page_size: int = 2, extra: str = "") -> None:
        (self.tmp / "sources.toml").write_text(
            textwrap.dedent(
                f"""
                [monitor]
                database = "sqlite:///{self.db}"
                baseline = false

                [[sources]]
                name = "sam-dhs"
                type = "sam"
                api_key = "${{TEST_SAM_API_KEY}}"
                base_url = "{self.sam.base_url}"
                notice_types = ["s", "u", "a"]
                organization = "HOMELAND SECURITY, DEPARTMENT OF"
                every = "6h"
                daily_quota = {daily_quota}
                page_size = {page_size}

                [[rules]]
                name = "sole-source"
                query = '"sole source" OR "6.302-1" OR "intent to award"'

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

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTICEWATCH_")}
        env |= {
            "PYTHONPATH": str(ROOT),
            "TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TEST_SAM_API_KEY": KEY,
            "NOTICEWATCH_CONFIG": str(self.tmp / "sources.toml"),
            "NOTICEWATCH_LOG_LEVEL": "DEBUG",  # the key must not leak even at DEBUG
        }
        result = subprocess.run(
            [sys.executable, "-m", "monitor", *args],
            cwd=self.tmp, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert KEY not in result.stdout + result.stderr
        return result

    def assert_key_not_stored(self) -> None:
        for path in self.tmp.iterdir():
            assert KEY.encode() not in path.read_bytes(), path


@pytest.fixture
def env(tmp_path: Path, webhook_receiver: WebhookReceiver) -> Iterator[Env]:
    with SamServer(keys={KEY: 1000}) as sam:
        yield Env(tmp_path, sam, webhook_receiver)


def test_paging_alerts_updates_and_the_key_stays_secret(env: Env) -> None:
    env.sam.records = [SPECIAL, PRESOL, JUSTIFICATION, AWARD]
    env.write_config()
    first = env.cli("poll")
    assert first.returncode == 0, first.stderr + first.stdout
    assert "sam-dhs: ok: 3 items, 3 new" in first.stdout
    searches = [r.query for r in env.sam.requests]
    assert [q["offset"] for q in searches] == ["0", "2"]  # 3 notices, pages of 2
    today = datetime.now(UTC).date()
    assert searches[0]["postedTo"] == today.strftime("%m/%d/%Y")
    assert searches[0]["postedFrom"] == (today - timedelta(days=7)).strftime("%m/%d/%Y")
    assert searches[0]["ptype"] == "s,u,a" and searches[0]["api_key"] == KEY
    deliveries = env.receiver.wait_for(2)
    titles = sorted(d.payload["data"]["item"]["title"] for d in deliveries)
    assert titles == [JUSTIFICATION["title"], SPECIAL["title"]]
    special = next(d for d in deliveries if d.payload["data"]["item"]["key"] == "id:aa01")
    fields = special.payload["data"]["item"]["fields"]
    assert fields["notice_type"] == "Special Notice" and fields["response_deadline"] == (
        "2026-12-01T21:00:00+00:00"
    )
    assert fields["solicitation_number"] == "70CMSD26aa01"

    # the notice is amended: a new deadline. One alert.updated, with what changed.
    env.sam.records = [
        SPECIAL | {"responseDeadLine": "2026-12-15T16:00:00-05:00"},
        JUSTIFICATION,
        AWARD,
    ]
    second = env.cli("poll")
    assert "sam-dhs: ok: 3 items, 0 new, 1 updated, 1 alerts" in second.stdout, second.stdout
    updated = env.receiver.wait_for(3)[-1]
    assert updated.verified and updated.payload["type"] == "alert.updated"
    changes = updated.payload["data"]["changes"]
    assert changes["response_deadline"] == {
        "old": "2026-12-01T21:00:00+00:00",
        "new": "2026-12-15T21:00:00+00:00",
    }
    assert updated.webhook_id not in {d.webhook_id for d in deliveries}

    third = env.cli("poll")  # re-served unchanged: nothing new to say
    assert "sam-dhs: unchanged" in third.stdout
    assert env.receiver.request_count == 3

    status = env.cli("status")
    assert "requests today (UTC): 6 of daily_quota 10" in status.stdout, status.stdout
    env.assert_key_not_stored()
    assert all(KEY.encode() not in r.body for r in env.receiver.requests)  # nor in an alert


def test_daily_quota_stops_requests_and_status_says_so(env: Env) -> None:
    env.sam.records = [SPECIAL, JUSTIFICATION, AWARD]
    env.write_config(daily_quota=3, page_size=2)
    assert env.cli("poll").returncode == 0  # 2 requests
    cut_short = env.cli("poll")  # 1 request left: page 1 is kept, page 2 would go over
    assert cut_short.returncode == 0 and "sam-dhs: ok: 2 items" in cut_short.stdout
    assert "quota ran out after 2 of 3 notices" in cut_short.stdout
    assert env.sam.searches == 3
    # the second poll's window started the day before the first poll's success
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert env.sam.requests[-1].query["postedFrom"] == yesterday.strftime("%m/%d/%Y")
    # the quota is spent: paused until the next UTC midnight, waiting is not failing
    again = env.cli("poll")
    assert again.returncode == 0 and "sam-dhs: paused until" in again.stdout
    assert env.sam.searches == 3
    status = env.cli("status")
    assert "paused until" in status.stdout and "0 consecutive failures" in status.stdout
    assert "requests today (UTC): 3 of daily_quota 3" in status.stdout
    env.assert_key_not_stored()


def test_server_throttle_pauses_until_next_access_time(env: Env) -> None:
    env.sam.keys[KEY] = 1  # the gateway allows one request today
    env.sam.records = [SPECIAL, JUSTIFICATION, AWARD]
    env.write_config(page_size=2)
    cut_short = env.cli("poll")  # page 1 answered, page 2 throttled: page 1 is kept
    assert cut_short.returncode == 0 and "sam-dhs: ok: 2 items" in cut_short.stdout
    assert "SAM.gov throttled this API key (code 900804)" in cut_short.stdout
    assert len(env.sam.requests) == 2
    # nothing is sent before nextAccessTime (the next UTC midnight), and it is no failure
    again = env.cli("poll")
    assert again.returncode == 0 and "sam-dhs: paused until" in again.stdout
    assert len(env.sam.requests) == 2
    status = env.cli("status")
    assert "paused until" in status.stdout and "0 consecutive failures" in status.stdout
    env.assert_key_not_stored()


def test_a_throttled_first_page_pauses_and_says_why(env: Env) -> None:
    env.sam.keys[KEY] = 0  # the gateway allows nothing today
    env.sam.records = [SPECIAL]
    env.write_config()
    paused = env.cli("poll")
    assert paused.returncode == 0, paused.stdout
    assert "sam-dhs: paused until" in paused.stdout
    assert "SAM.gov throttled this API key (code 900804)" in paused.stdout
    again = env.cli("poll")
    assert "sam-dhs: paused until" in again.stdout and len(env.sam.requests) == 1
    status = env.cli("status")
    assert "throttled this API key" in status.stdout and "0 consecutive failures" in status.stdout
    env.assert_key_not_stored()


def test_a_bad_key_is_named_as_the_problem_and_never_echoed(
    env: Env, feed_server: FeedServer
) -> None:
    env.sam.keys = {"another-key": 10}
    feed_server.serve("/news.xml", rss(Entry("n1", "DHS sole source award", "https://n.example/1")))
    env.write_config(
        extra=f"""
        [[sources]]
        name = "news"
        type = "rss"
        url = "{feed_server.url("/news.xml")}"
        every = "15m"
        """
    )
    failed = env.cli("poll")
    assert failed.returncode == 1
    assert "HTTP 401: SAM.gov refused the API key" in failed.stdout
    assert "api_key=***" in failed.stdout
    # the other source ran and alerted as usual
    assert "news: ok: 1 items, 1 new" in failed.stdout
    (delivery,) = env.receiver.wait_for(1)
    assert delivery.payload["data"]["item"]["source"] == "news"
    env.assert_key_not_stored()


def test_the_store_never_overspends_a_key(tmp_path: Path) -> None:
    store = Store(create_db_engine(f"sqlite:///{tmp_path / 'nw.db'}"))
    counter = RequestCounter(store)
    day = date(2026, 11, 22)
    spent = [counter.spend_request("sam:abc", day, 3) for _ in range(5)]
    assert spent == [True, True, True, False, False]
    assert counter.requests_spent("sam:abc", day) == 3
    assert counter.requests_spent("sam:abc", day + timedelta(days=1)) == 0
    assert counter.spend_request("sam:abc", day + timedelta(days=1), 3)  # a new UTC day
    assert not counter.spend_request("sam:abc", day, 0)
    # SAM.gov's 429 marks the day spent: raised to the limit, never lowered
    later = day + timedelta(days=2)
    counter.exhaust("sam:abc", later, 3)
    assert counter.requests_spent("sam:abc", later) == 3
    assert not counter.spend_request("sam:abc", later, 3)
    counter.exhaust("sam:abc", day, 2)
    assert counter.requests_spent("sam:abc", day) == 3
    store.engine.dispose()


def test_field_rules_fetch_descriptions_only_when_a_rule_reads_them(env: Env) -> None:
    """The seed example end to end: a Special Notice whose *description* (a metered
    document) names the vendor and FAR 6.302-1, matched by field-scoped terms."""
    quiet = record("bb01", "Special Notice", "s", title="Notice of intent: licences")
    telling = record("bb02", "Special Notice", "s", title="Notice of intent: software renewal")
    award = record(
        "bb03", "Award Notice", "a", title="Award: software renewal",
        award={"date": "2026-11-19", "amount": "2500000.00",
               "awardee": {"name": "CLEARVIEW AI INC", "ueiSAM": "CV0000000001"}},
    )  # fmt: skip
    for rec in (quiet, telling):
        rec["description"] = env.sam.description_url(rec["noticeId"])
    env.sam.descriptions = {
        "bb01": "<p>Brand-name licences for office software.</p>",
        "bb02": "<p>DHS intends to award a sole source contract to Clearview AI, Inc. under "
        "FAR 6.302-1 (only one responsible source).</p>",
    }
    env.sam.records = [quiet, telling, award]
    env.write_config(
        page_size=10,
        extra="""
        [[rules]]
        name = "seed"
        query = '''notice_type:"Special Notice" AND description:("6.302-1" OR "sole source")
                   AND description:clearview'''

        [[rules]]
        name = "big-award"
        query = 'awardee:clearview AND award_amount>=1000000'
        """,
    )
    first = env.cli("poll")
    assert first.returncode == 0, first.stderr + first.stdout
    described = sorted(r.query["noticeid"] for r in env.sam.requests if "noticeid" in r.query)
    assert described == ["bb01", "bb02"]  # one request each; the award has no description
    deliveries = env.receiver.wait_for(2)
    by_key = {d.payload["data"]["item"]["key"]: d.payload["data"] for d in deliveries}
    assert set(by_key) == {"id:bb02", "id:bb03"}
    assert {m["rule"] for m in by_key["id:bb02"]["matches"]} == {"seed"}
    assert "Clearview AI" in by_key["id:bb02"]["item"]["fields"]["description"]
    assert by_key["id:bb03"]["rules"] == ["big-award"]
    assert by_key["id:bb03"]["item"]["fields"]["award_amount"] == 2500000.0

    requests = len(env.sam.requests)
    assert "sam-dhs: unchanged" in env.cli("poll").stdout
    assert len(env.sam.requests) == requests + 1  # the search only: no description again
    env.assert_key_not_stored()
