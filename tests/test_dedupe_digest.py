"""``also_seen_in`` reaches the reader: a regulator's release alerts, its Google News copy
arrives before the hourly digest, and the digest (email over a real SMTP server, and a
signed webhook) lists the copy under the release. Real sources, store, pipeline and
notifiers, over 127.0.0.1 only."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.alerts import NotifierRoute
from monitor.dedupe import DedupePolicy
from monitor.delivery import Deliverer, RetryPolicy
from monitor.matching import Matcher, compile_rule
from monitor.pipeline import PipelineContext, run_source
from notifiers.mail import EmailConfig
from notifiers.mail import build as build_email
from notifiers.webhook import WebhookConfig
from notifiers.webhook import build as build_webhook
from storage.db import create_db_engine
from storage.store import Store
from tests.support.fakes import Clock
from tests.support.feed_server import FeedServer
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver
from tests.test_dedupe_pipeline import ICO_TITLE, ico_source, rss_source, serve_ico_and_gnews

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_the_digest_lists_the_copies_of_an_event_in_email_and_webhook(
    db_url: str, tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver
) -> None:
    serve_ico_and_gnews(feed_server)
    store = Store(create_db_engine(db_url))
    # The receiver checks signature timestamps against the real clock: run at real time,
    # half an hour before the next hourly digest.
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    clock = Clock(this_hour - timedelta(minutes=30))
    with SmtpServer(tmp_path, "starttls") as smtp:
        mail = EmailConfig.model_validate(
            {"name": "mail", "type": "email", "to": ["team@example.org"],
             "from": "nw@example.org", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
             "ca_file": str(smtp.ca_file), "digest": "hourly"}
        )  # fmt: skip
        hook = WebhookConfig.model_validate(
            {"name": "hook", "type": "webhook", "url": webhook_receiver.url,
             "secret": webhook_receiver.secret, "allow_private": True, "digest": "hourly"}
        )  # fmt: skip
        notifiers = {"mail": build_email(mail), "hook": build_webhook(hook)}
        async with httpx.AsyncClient() as http:
            routes = (NotifierRoute("mail", None), NotifierRoute("hook", None))
            ctx = PipelineContext(
                store,
                http,
                Matcher([compile_rule("clearview", "clearview")]),
                routes,
                clock,
                baseline=False,
                dedupe=DedupePolicy(),
            )
            deliverer = Deliverer(
                store, notifiers, http, clock, RetryPolicy(jitter=0), random.Random(1)
            )
            await deliverer.deliver_all()  # the first digest time only starts the clock
            ico = await run_source(ico_source(feed_server.url("/ico")), ctx)
            assert ico.counts.alerts == 2, ico.error
            clock.advance(timedelta(minutes=10))
            gnews = await run_source(rss_source("gnews", feed_server.url("/gnews")), ctx)
            assert (gnews.counts.new, gnews.counts.alerts) == (1, 0), gnews.error
            clock.now = datetime.now(UTC)
            await deliverer.deliver_all()
        store.engine.dispose()
        [message] = smtp.messages

    copy = f"gnews – {ICO_TITLE} - ICO – https://news.google.com/rss/articles/"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "1 alert" in str(message["Subject"])
    assert f"Also seen in: {copy}" in text
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Also seen in: gnews" in html

    [request] = webhook_receiver.deliveries
    assert request.verified and request.payload["type"] == "alert.digest"
    [group] = request.payload["data"]["groups"]
    [alert] = group["alerts"]
    assert alert["item"]["title"] == ICO_TITLE
    [seen] = alert["also_seen_in"]
    assert (seen["source"], seen["match"]) == ("gnews", "same_title")
