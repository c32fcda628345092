"""The HTTP endpoints and the JSON API, over httpx's ASGI transport (no sockets)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from monitor.api import token_matches
from monitor.errors import ConfigError
from monitor.scheduler import Service
from monitor.web import WebSettings, api_token, build_web
from tests.conftest import FIXED_NOW
from tests.support.feeds import Entry, rss
from tests.support.running import FEED, HOOK, Web, config_text, fire, running, source_toml
from tests.support.webhook_receiver import WEBHOOK_SECRET

pytestmark = pytest.mark.anyio

TOKEN = "t0ken-for-the-api-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PUBLIC = "https://hooks.example.org/sub"
ADDRESSES = {
    "hooks.example.org": ["93.184.216.34"],
    "intranet.example.org": ["93.184.216.34", "10.1.2.3"],
    "metadata.example.org": ["169.254.169.254"],
}


async def fake_resolver(host: str) -> list[str]:
    if host not in ADDRESSES:
        raise OSError(-2, "Name or service not known")
    return ADDRESSES[host]


def verified(secret: str, request: httpx.Request) -> Any:
    """The JSON body, after checking its Standard Webhooks signature (at the test clock)."""
    headers = request.headers
    expected = Webhook(secret).sign(headers["webhook-id"], FIXED_NOW, request.content.decode())
    assert headers["webhook-signature"] == expected
    return json.loads(request.content)


@asynccontextmanager
async def serving(
    tmp_path: Path,
    web: Web | None = None,
    token: str | None = TOKEN,
    on_secrets: Callable[[list[str]], None] | None = None,
    own_secrets: Sequence[str] = (),
) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    web = web or Web(feeds={FEED.format(name="ap"): rss(Entry("a", "Cookies", "u"))})
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "sources.toml"
    path.write_text(config_text(tmp_path / "nw.db", source_toml("ap")))
    async with running(path, web, on_secrets=on_secrets, own_secrets=own_secrets) as service:
        asgi = build_web(service, WebSettings(token, resolver=fake_resolver))
        transport = httpx.ASGITransport(app=asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://nw") as client:
            yield service, client


async def test_healthz_and_readyz(tmp_path: Path) -> None:
    async with serving(tmp_path) as (service, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert {k: v["ok"] for k, v in ready.json()["checks"].items()} == {
            "database": True, "scheduler": True, "config": True,
        }  # fmt: skip
        service.stop.set()  # stopping: no longer ready
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["scheduler"]["ok"] is False


async def test_readyz_fails_when_the_database_is_unreachable(tmp_path: Path) -> None:
    async with serving(tmp_path) as (service, client):
        (tmp_path / "nw.db").unlink()
        (tmp_path / "nw.db").mkdir()  # the file is gone and cannot be recreated
        service.app.store.engine.dispose()
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "storage" in ready.json()["checks"]["database"]["error"]


async def test_metrics_has_every_series_in_a_registry_of_its_own(tmp_path: Path) -> None:
    feed = rss(Entry("a", "Cookies", "u"), Entry("b", "Clearview fined", "u2"))
    web = Web(feeds={FEED.format(name="ap"): feed})
    async with serving(tmp_path, web) as (service, client):
        await fire(service, "ap")  # the baseline
        web.feeds[FEED.format(name="ap")] = feed + b" "  # same items, new bytes: all seen
        await fire(service, "ap")
        web.feeds[FEED.format(name="ap")] = rss(
            Entry("a", "Cookies", "u"), Entry("b", "Clearview fined", "u2"),
            Entry("c", "Clearview fined again", "u3"),
        )  # fmt: skip
        await fire(service, "ap")
        web.status = 503
        await service._deliver("newsroom")
        text = (await client.get("/metrics")).text
    for line in (
        'noticewatch_fetches_total{outcome="baseline",source="ap"} 1.0',
        'noticewatch_fetches_total{outcome="ok",source="ap"} 2.0',
        'noticewatch_fetch_duration_seconds_count{source="ap"} 3.0',
        'noticewatch_items_total{kind="new",source="ap"} 3.0',
        'noticewatch_items_total{kind="seen",source="ap"} 4.0',
        'noticewatch_matches_total{rule="cv"} 1.0',
        'noticewatch_deliveries_total{notifier="newsroom",outcome="retry"} 1.0',
        'noticewatch_outbox_pending{notifier="newsroom"} 1.0',
        'noticewatch_oldest_pending_alert_age_seconds{notifier="newsroom"} 0.0',
        'noticewatch_source_consecutive_failures{source="ap"} 0.0',
    ):
        assert line in text, line
    # Two apps in one process do not share series.
    async with serving(tmp_path / "other") as (_, other):
        assert "noticewatch_fetches_total{" not in (await other.get("/metrics")).text


async def test_the_api_is_off_without_a_token_and_says_so(tmp_path: Path) -> None:
    async with serving(tmp_path, token=None) as (_, client):
        reply = await client.get("/api/sources", headers=AUTH)
    assert reply.status_code == 403
    assert "the API is off: set NOTICEWATCH_API_TOKEN" in reply.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}],
    ids=["none", "wrong", "no-scheme", "basic", "longer"],
)  # fmt: skip
async def test_a_missing_or_wrong_token_is_refused(tmp_path: Path, headers: dict[str, str]) -> None:
    async with serving(tmp_path) as (_, client):
        reply = await client.get("/api/sources", headers=headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in reply.text


def test_token_comparison() -> None:
    assert token_matches(TOKEN, f"Bearer {TOKEN}")
    assert token_matches(TOKEN, f"bearer  {TOKEN}")
    assert not token_matches(TOKEN, None)
    assert not token_matches(TOKEN, f"Bearer {TOKEN[:-1]}")


def test_api_token_from_the_environment(tmp_path: Path) -> None:
    assert api_token({}) is None
    assert api_token({"NOTICEWATCH_API_TOKEN": TOKEN}) == TOKEN
    (tmp_path / "token").write_text(TOKEN + "\n")
    assert api_token({"NOTICEWATCH_API_TOKEN_FILE": str(tmp_path / "token")}) == TOKEN
    with pytest.raises(ConfigError, match="at least 16 characters"):
        api_token({"NOTICEWATCH_API_TOKEN": "short"})


async def test_sources_lists_state_and_health(tmp_path: Path) -> None:
    async with serving(tmp_path) as (service, client):
        (source,) = (await client.get("/api/sources", headers=AUTH)).json()["sources"]
        assert (source["name"], source["health"], source["last_fetch_at"]) == (
            "ap",
            "pending",
            None,
        )
        await fire(service, "ap")
        (source,) = (await client.get("/api/sources", headers=AUTH)).json()["sources"]
    assert (source["health"], source["items"], source["every_seconds"]) == ("ok", 1, 900)
    assert source["last_outcome"] == "ok" and source["consecutive_failures"] == 0


async def test_alerts_by_rule_and_since(tmp_path: Path) -> None:
    web = Web(feeds={FEED.format(name="ap"): rss(Entry("a", "Cookies", "u"))})
    async with serving(tmp_path, web) as (service, client):
        await fire(service, "ap")
        web.feeds[FEED.format(name="ap")] = rss(
            Entry("a", "Cookies", "u"), Entry("b", "Clearview fined", "u2")
        )
        await fire(service, "ap")
        (alert,) = (await client.get("/api/alerts?rule=cv&since=1h", headers=AUTH)).json()["alerts"]
        assert alert["rules"] == ["cv"] and alert["item"]["title"] == "Clearview fined"
        assert alert["matches"][0]["rule"] == "cv" and alert["notifier"] == "newsroom"
        assert (await client.get("/api/alerts?rule=other", headers=AUTH)).json() == {"alerts": []}
        later = "2026-11-22T11:00:00Z"
        assert (await client.get(f"/api/alerts?since={later}", headers=AUTH)).json()["alerts"] == []
        bad = await client.get("/api/alerts?since=yesterday", headers=AUTH)
        assert bad.status_code == 400 and bad.json()["error"].startswith("since:")
        bad = await client.get("/api/alerts?rule=a%25b", headers=AUTH)
        assert bad.status_code == 400 and bad.json()["error"].startswith("rule:")
        bad = await client.get("/api/alerts?limit=0", headers=AUTH)
        assert bad.status_code == 400 and bad.json()["error"].startswith("limit:")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ftp://hooks.example.org/x", "url: must be an http:// or https:// URL"),
        ("hooks.example.org/x", "url: must be an http:// or https:// URL"),
        ("http://10.0.0.8/hook", "url: 10.0.0.8 is a private or local address"),
        ("http://127.0.0.1:9000/hook", "url: 127.0.0.1 is a private or local address"),
        ("http://[::1]/hook", "url: ::1 is a private or local address"),
        ("http://[::ffff:192.168.1.1]/hook", "is a private or local address"),
        ("http://169.254.169.254/latest", "url: 169.254.169.254 is a private or local address"),
        ("https://intranet.example.org/h", "resolves to 10.1.2.3: a private or local address"),
        ("https://metadata.example.org/h", "resolves to 169.254.169.254"),
        ("https://nowhere.example.org/h", "url: cannot resolve host nowhere.example.org"),
    ],
)
async def test_a_subscription_to_a_bad_url_is_refused(
    tmp_path: Path, url: str, expected: str
) -> None:
    async with serving(tmp_path) as (service, client):
        reply = await client.post("/api/subscriptions", json={"url": url}, headers=AUTH)
        assert reply.status_code == 422 and expected in reply.json()["error"], reply.text
        assert service.app.store.subscriptions() == []


async def test_subscription_body_errors_name_the_field(tmp_path: Path) -> None:
    async with serving(tmp_path) as (_, client):
        post = client.post
        reply = await post("/api/subscriptions", content=b"{not json", headers=AUTH)
        assert reply.status_code == 400 and reply.json()["error"].startswith("body:")
        reply = await post("/api/subscriptions", json={"url": PUBLIC, "rules": ["nope"]},
                           headers=AUTH)  # fmt: skip
        assert reply.status_code == 422 and "rules: no rule named nope" in reply.json()["error"]
        reply = await post("/api/subscriptions", json={"url": PUBLIC, "secret": "x"}, headers=AUTH)
        assert reply.status_code == 422 and reply.json()["error"].startswith("secret: unknown")


async def test_a_private_url_is_allowed_when_the_config_says_so(tmp_path: Path) -> None:
    async with serving(tmp_path) as (service, client):
        text = service.watcher.path.read_text()  # type: ignore[union-attr]
        service.watcher.path.write_text(  # type: ignore[union-attr]
            text.replace("http_port = 0", "http_port = 0\nsubscriptions_allow_private = true")
        )
        await service.reload()
        reply = await client.post(
            "/api/subscriptions", json={"url": "http://10.0.0.8/hook"}, headers=AUTH
        )
        assert reply.status_code == 201


async def test_subscriptions_deliver_like_config_webhooks(tmp_path: Path) -> None:
    web = Web(feeds={FEED.format(name="ap"): rss(Entry("a", "Cookies", "u"))})
    async with serving(tmp_path, web) as (service, client):
        await fire(service, "ap")  # baseline
        reply = await client.post(
            "/api/subscriptions",
            json={"url": PUBLIC, "rules": ["cv"], "description": "desk"},
            headers=AUTH,
        )
        assert reply.status_code == 201
        created = reply.json()
        secret, ident = created["secret"], created["id"]
        assert secret.startswith("whsec_") and created["rules"] == ["cv"]
        assert ident in service.app.notifiers and f"deliver:{ident}" in {
            job.id for job in service.scheduler.get_jobs()
        }
        listed = (await client.get("/api/subscriptions", headers=AUTH)).json()["subscriptions"]
        assert listed[0]["id"] == ident and listed[0]["secret"] == "whsec_…(50 chars)"
        assert secret not in json.dumps(listed)

        web.feeds[FEED.format(name="ap")] = rss(
            Entry("a", "Cookies", "u"), Entry("b", "Clearview fined", "u2")
        )
        await fire(service, "ap")
        await service._deliver(ident)
        await service._deliver("newsroom")
        by_url = {str(r.url): r for r in web.sent}
        assert set(by_url) == {PUBLIC, HOOK}
        sent = by_url[PUBLIC]
        payload = verified(secret, sent)
        assert payload["type"] == "alert.created"
        assert payload["data"]["item"]["title"] == "Clearview fined"
        # Same body shape as the config notifier's, only the alert id differs.
        config_payload = json.loads(by_url[HOOK].content)
        assert config_payload["data"]["item"] == payload["data"]["item"]

        test = await client.post(f"/api/subscriptions/{ident}/test", headers=AUTH)
        assert test.status_code == 200 and test.json()["delivered"] is True
        assert verified(secret, web.sent[-1])["type"] == "notifier.test"
        web.status = 500
        failed = await client.post(f"/api/subscriptions/{ident}/test", headers=AUTH)
        assert failed.status_code == 502 and failed.json()["status_code"] == 500

        assert (await client.delete(f"/api/subscriptions/{ident}", headers=AUTH)).status_code == 204
        assert ident not in service.app.notifiers
        assert (await client.delete(f"/api/subscriptions/{ident}", headers=AUTH)).status_code == 404
        missing = await client.post(f"/api/subscriptions/{ident}/test", headers=AUTH)
        assert missing.status_code == 404


async def test_openapi_lists_exactly_the_served_paths(tmp_path: Path) -> None:
    async with serving(tmp_path) as (service, client):
        document = (await client.get("/openapi.json")).json()
        asgi = build_web(service, WebSettings(TOKEN))
    served = {route.path for route in asgi.routes}  # type: ignore[attr-defined]
    assert set(document["paths"]) == served
    assert document["openapi"].startswith("3.1")


def test_healthcheck_asks_where_the_service_listens(tmp_path: Path) -> None:
    from monitor.healthcheck import service_host

    config = tmp_path / "sources.toml"
    assert service_host(config, {}) == "127.0.0.1"  # no file: the default
    config.write_text('[monitor]\nhttp_host = "10.1.2.3"\n')
    assert service_host(config, {}) == "10.1.2.3"
    assert service_host(config, {"NOTICEWATCH_HTTP_HOST": "0.0.0.0"}) == "127.0.0.1"
    config.write_text('[monitor]\nhttp_host = "::"\n')
    assert service_host(config, {}) == "::1"
    config.write_text("broken [")
    assert service_host(config, {}) == "127.0.0.1"


def test_healthcheck_port_and_summary(tmp_path: Path) -> None:
    from monitor.healthcheck import describe, service_port

    config = tmp_path / "sources.toml"
    assert service_port(config, {}) == 8080  # no file: the default
    config.write_text("[monitor]\nhttp_port = 9123\n")
    assert service_port(config, {}) == 9123
    assert service_port(config, {"NOTICEWATCH_HTTP_PORT": "9200"}) == 9200
    config.write_text("broken [")
    assert service_port(config, {}) == 8080
    stale = {
        "checks": {
            "database": {"ok": True},
            "config": {"ok": False, "path": "/config/sources.toml", "stale_since": "t",
                       "errors": ["sources[0]: every: bad"]},
        }
    }  # fmt: skip
    assert describe(stale, False) == (
        "not ready: database ok, config FAILING "
        "(/config/sources.toml STALE since t: sources[0]: every: bad)"
    )


async def test_a_subscription_secret_is_scrubbed_from_logs_from_then_on(tmp_path: Path) -> None:
    scrubbed: list[list[str]] = []
    async with serving(tmp_path, on_secrets=scrubbed.append) as (_, client):
        reply = await client.post("/api/subscriptions", json={"url": PUBLIC}, headers=AUTH)
        secret = reply.json()["secret"]
    assert secret in scrubbed[-1]
    assert WEBHOOK_SECRET in scrubbed[-1]  # the config's own secrets stay in the list


async def test_the_api_token_and_deleted_secrets_stay_scrubbed_after_changes(
    tmp_path: Path,
) -> None:
    scrubbed: list[list[str]] = []
    async with serving(tmp_path, on_secrets=scrubbed.append, own_secrets=[TOKEN]) as (
        service,
        client,
    ):
        reply = await client.post("/api/subscriptions", json={"url": PUBLIC}, headers=AUTH)
        created = reply.json()
        assert TOKEN in scrubbed[-1]
        await client.delete(f"/api/subscriptions/{created['id']}", headers=AUTH)
        await service.reload(force=True)
    assert TOKEN in scrubbed[-1]  # the token is no config secret, yet never forgotten
    assert created["secret"] in scrubbed[-1]  # late log lines about it are scrubbed too


async def test_a_test_event_goes_through_the_delivery_guard_like_real_deliveries(
    tmp_path: Path,
) -> None:
    """DNS can change after a subscription is made: the test event, like every delivery,
    must go through the notifier client that refuses private addresses at connect time."""
    from dataclasses import replace

    from monitor.netguard import DeliveryTransport

    async def now_private(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]  # hooks.example.org was public at creation, is loopback now

    web = Web(feeds={FEED.format(name="ap"): rss(Entry("a", "Cookies", "u"))})
    async with serving(tmp_path, web) as (service, client):
        reply = await client.post("/api/subscriptions", json={"url": PUBLIC}, headers=AUTH)
        ident = reply.json()["id"]
        guarded = httpx.AsyncClient(transport=DeliveryTransport(now_private))
        service.app = replace(service.app, notify_http=guarded)
        try:
            test = await client.post(f"/api/subscriptions/{ident}/test", headers=AUTH)
        finally:
            await guarded.aclose()
        assert test.status_code == 502 and test.json()["delivered"] is False
        assert "127.0.0.1" in test.json()["error"]
        assert not web.sent  # nothing went out over the unguarded source client


async def test_a_subscription_to_source_health_gets_the_health_messages(tmp_path: Path) -> None:
    """Like a config notifier with rules = ["source_health"]: the API takes the reserved
    rule, the subscription gets source.failing, and /api/alerts finds it with its details."""
    web = Web(feeds={})  # the feed is gone: every poll of "ap" fails
    async with serving(tmp_path, web) as (service, client):
        reply = await client.post(
            "/api/subscriptions", json={"url": PUBLIC, "rules": ["source_health"]}, headers=AUTH
        )
        assert reply.status_code == 201, reply.text
        ident = reply.json()["id"]
        for _ in range(3):  # failing_after = 3 by default
            await fire(service, "ap")
        assert service.app.store.alert_counts() == {(ident, "pending"): 1}
        listed = await client.get("/api/alerts?rule=source_health", headers=AUTH)
        assert listed.status_code == 200, listed.text
        (alert,) = listed.json()["alerts"]
        assert (alert["notifier"], alert["event_type"]) == (ident, "source.failing")
        assert alert["details"]["source"] == "ap"
        assert alert["details"]["consecutive_failures"] == 3


async def test_turning_private_subscriptions_off_skips_them_instead_of_breaking_the_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A subscription made while subscriptions_allow_private was on cannot be built once
    it is off: the reload (and every later start) must still work, naming it."""
    import logging

    from monitor.app import open_app
    from monitor.config import load_config
    from tests.support.running import ENV

    async with serving(tmp_path) as (service, client):
        assert service.watcher is not None
        path = service.watcher.path
        plain = path.read_text()
        path.write_text(
            plain.replace("http_port = 0", "http_port = 0\nsubscriptions_allow_private = true")
        )
        await service.reload()
        reply = await client.post(
            "/api/subscriptions", json={"url": "http://10.0.0.8/hook"}, headers=AUTH
        )
        ident = reply.json()["id"]
        assert ident in service.app.notifiers
        path.write_text(plain)  # private subscriptions off again
        with caplog.at_level(logging.ERROR):
            changes = await service.reload()
        assert changes is not None and changes.notifiers_removed == (ident,)
        assert not service.watcher.status.stale
        (line,) = [
            r.getMessage()
            for r in caplog.records
            if ident in r.getMessage() and r.levelno >= logging.ERROR
        ]
        assert f"notifier={ident}" in line and "subscriptions_allow_private" in line
        assert f"DELETE /api/subscriptions/{ident}" in line
        listed = (await client.get("/api/subscriptions", headers=AUTH)).json()["subscriptions"]
        assert [s["id"] for s in listed] == [ident]  # kept: turning the setting on restores it
        test = await client.post(f"/api/subscriptions/{ident}/test", headers=AUTH)
        assert test.status_code == 409 and test.json()["error"].startswith("id: ")
        assert "subscriptions_allow_private" in test.json()["error"]
    async with open_app(load_config(path, ENV)) as app:  # the next start works too
        assert ident not in app.notifiers and "newsroom" in app.notifiers


async def test_a_subscription_deleted_during_a_fetch_gets_no_alert_left_pending(
    tmp_path: Path,
) -> None:
    """A fetch that began before DELETE still routes to the subscription; what it queues
    for it must not sit in the outbox (and the backlog metrics) for ever."""
    import asyncio

    gate, in_flight = asyncio.Event(), asyncio.Event()

    class SlowWeb(Web):
        def handler(self, request: httpx.Request) -> Any:
            answer = super().handler(request)
            if request.method != "GET" or gate.is_set():
                return answer

            async def later() -> httpx.Response:
                in_flight.set()
                await gate.wait()
                return answer

            return later()

    web = SlowWeb(feeds={FEED.format(name="ap"): rss(Entry("a", "Cookies", "u"))})
    async with serving(tmp_path, web) as (service, client):
        gate.set()
        await fire(service, "ap")  # baseline
        gate.clear()
        reply = await client.post("/api/subscriptions", json={"url": PUBLIC}, headers=AUTH)
        ident = reply.json()["id"]
        web.feeds[FEED.format(name="ap")] = rss(
            Entry("a", "Cookies", "u"), Entry("b", "Clearview fined", "u2")
        )
        fetch = asyncio.create_task(fire(service, "ap"))
        await asyncio.wait_for(in_flight.wait(), timeout=30)  # the fetch waits for the feed
        assert (await client.delete(f"/api/subscriptions/{ident}", headers=AUTH)).status_code == 204
        gate.set()
        await fetch
        counts = service.app.store.alert_counts()
        assert (ident, "pending") not in counts
        assert sum(n for (name, _), n in counts.items() if name == "newsroom") == 1  # intact
        dead = service.app.store.alert_counts()[(ident, "dead")]
        assert dead == 1  # kept for the record, like those the DELETE itself retired


async def test_a_subscription_deleted_during_its_delivery_is_not_left_pending(
    tmp_path: Path,
) -> None:
    """DELETE while a delivery to it is in flight: a failed attempt would put the alert
    back to pending, for a notifier that no longer exists."""
    import asyncio

    gate, in_flight = asyncio.Event(), asyncio.Event()

    class SlowHook(Web):
        def handler(self, request: httpx.Request) -> Any:
            if request.method == "GET" or str(request.url) != PUBLIC:
                return super().handler(request)

            async def later() -> httpx.Response:
                in_flight.set()
                await gate.wait()
                return httpx.Response(503)  # the endpoint fails: a retry is planned

            return later()

    web = SlowHook(feeds={FEED.format(name="ap"): rss(Entry("a", "Cookies", "u"))})
    async with serving(tmp_path, web) as (service, client):
        await fire(service, "ap")  # baseline
        reply = await client.post("/api/subscriptions", json={"url": PUBLIC}, headers=AUTH)
        ident = reply.json()["id"]
        web.feeds[FEED.format(name="ap")] = rss(
            Entry("a", "Cookies", "u"), Entry("b", "Clearview fined", "u2")
        )
        await fire(service, "ap")
        delivery = asyncio.create_task(service._deliver(ident))
        await asyncio.wait_for(in_flight.wait(), timeout=30)
        assert (await client.delete(f"/api/subscriptions/{ident}", headers=AUTH)).status_code == 204
        gate.set()
        await delivery
        counts = service.app.store.alert_counts()
        assert (ident, "pending") not in counts and counts[(ident, "dead")] == 1
