"""The command line end to end with a listing page and a Google News copy of its release:
one signed webhook for the event, the copy visible in ``status``."""

from __future__ import annotations

import pytest

from tests.support.feeds import Entry, rss
from tests.support.html_layouts import LAYOUTS
from tests.test_dedupe_pipeline import DATA, ICO_TITLE, gnews_feed
from tests.test_e2e import Env, env  # noqa: F401 - pytest fixture

pytestmark = pytest.mark.integration


def html_source(setup: Env) -> str:
    keys = {**LAYOUTS["ico_news"]["config"], "url": setup.feeds.url("/ico"), "every": "30m"}
    lines = ['name = "ico"', 'type = "html"', *(f"{k} = {v!r}" for k, v in keys.items())]
    return "\n[[sources]]\n" + "\n".join(lines) + "\n"


def test_poll_sends_one_webhook_for_a_release_and_its_google_news_copy(env: Env) -> None:  # noqa: F811
    env.feeds.serve("/ap.xml", rss(Entry("ap-1", "AP on cookie banners", "https://ap.example/c")))
    env.feeds.serve("/ico", (DATA / "ico_news.html").read_bytes(), "text/html; charset=utf-8")
    env.feeds.serve("/gnews.xml", gnews_feed(env.feeds.url("/").rstrip("/")))
    env.write_config(baseline=False, extra=html_source(env) + env.source("gnews", "/gnews.xml"))

    poll = env.cli("poll")
    assert poll.returncode == 0, poll.stderr + poll.stdout
    (delivery,) = env.receiver.wait_for(1)
    assert delivery.verified
    data = delivery.payload["data"]
    assert data["item"]["title"] in (ICO_TITLE, ICO_TITLE + " - ICO")
    assert "<script" not in str(data) and "onerror" not in str(data)
    assert env.receiver.request_count == 1

    status = env.cli("status")
    assert status.returncode == 0, status.stderr
    assert "EVENTS SEEN MORE THAN ONCE (last 7d)" in status.stdout
    assert "(1 later copies)" in status.stdout
    assert "ico: last fetch" in status.stdout and "4 items" in status.stdout
