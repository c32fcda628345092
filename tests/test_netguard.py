"""Safe endpoints: notifier requests never reach internal addresses unless allowed.

Every refusal is proven against a real loopback listener that counts zero requests;
the same request with ``allow_private`` reaches it, so the tests can fail.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import ValidationError

from monitor.netguard import (
    ALLOW_PRIVATE,
    DeliveryTransport,
    GuardedBackend,
    blocked_kind,
    literal_address,
    system_resolver,
)
from notifiers.base import Delivery, Outcome
from notifiers.webhook import WebhookConfig, build
from tests.support.feed_server import FeedServer
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

NUMERIC_LOOPBACK = ["2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.5", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
    ],
)
def test_blocked_kinds(address: str, kind: str | None) -> None:
    assert blocked_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("host", [*NUMERIC_LOOPBACK, "0177.0.0.1"])  # httpx refuses the last
def test_numeric_hosts_are_read_as_the_resolver_reads_them(host: str) -> None:
    address = literal_address(host)
    assert address is not None
    assert blocked_kind(address) == "loopback"


def webhook_config(url: str, **keys: Any) -> WebhookConfig:
    return WebhookConfig.model_validate(
        {"name": "hook", "type": "webhook", "url": url, "secret": WEBHOOK_SECRET, **keys}
    )


@pytest.mark.parametrize(
    "url",
    [
        *(f"http://{host}/" for host in NUMERIC_LOOPBACK),
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:8080/hook",
        "https://10.0.0.5/hook",
    ],
)
def test_config_refuses_internal_hosts_unless_allowed(url: str) -> None:
    with pytest.raises(ValidationError) as e:
        webhook_config(url)
    assert "url: the host" in str(e.value) and "allow_private = true" in str(e.value)
    assert webhook_config(url, allow_private=True).allow_private


class FakeInternet(httpcore.AsyncNetworkBackend):
    """Pretends every public address is a loopback server, so nothing leaves 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connected: list[str] = []
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        return await self.inner.connect_tcp("127.0.0.1", self.port, timeout)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def resolver_for(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host] if host in table else await system_resolver(host, port)

    return resolve


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=DeliveryTransport(), trust_env=False) as client:
        yield client


class CountingListener:
    """Accepts TCP connections on 127.0.0.1 and counts them; answers each with a 204."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    yield counting
    counting.close()


@pytest.mark.integration
@pytest.mark.anyio
@pytest.mark.parametrize("host", [*NUMERIC_LOOPBACK, "127.0.0.1", "localhost"])
async def test_loopback_in_any_spelling_is_refused_at_connect_time(
    host: str, listener: CountingListener, guarded: httpx.AsyncClient
) -> None:
    url = f"http://{host}:{listener.port}/webhook"
    with pytest.raises(httpx.ConnectError, match=r"refused: .* a loopback address"):
        await guarded.post(url, content=b"{}")
    assert listener.connections == 0
    # The same request with allow_private reaches the listener: the test can fail.
    answer = await guarded.post(url, content=b"{}", extensions={ALLOW_PRIVATE: True})
    assert answer.status_code == 204
    assert listener.connections == 1


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_name_that_resolves_to_loopback_is_refused_dns_rebinding(
    listener: CountingListener,
) -> None:
    # The name passes the config check; only the address it resolves to when
    # connecting gives it away.
    url = f"http://hooks.rebind.test:{listener.port}/webhook"
    config = webhook_config(url)
    transport = DeliveryTransport(resolver_for({"hooks.rebind.test": ["127.0.0.1"]}))
    async with httpx.AsyncClient(transport=transport, trust_env=False) as client:
        delivery = Delivery("msg_1", "alert.created", datetime.now(UTC), {"x": 1}, 1)
        result = await build(config).send(client, delivery, datetime.now(UTC))
    assert result.outcome is Outcome.RETRY
    assert result.error is not None
    assert "refused: hooks.rebind.test resolves to 127.0.0.1, a loopback address" in result.error
    assert listener.connections == 0


@pytest.mark.integration
@pytest.mark.anyio
async def test_one_internal_address_among_public_ones_is_enough_to_refuse(
    feed_server: FeedServer,
) -> None:
    internet = FakeInternet(feed_server.port)
    backend = GuardedBackend(
        resolver_for({"mixed.test": ["8.8.8.8", "169.254.169.254"]}), inner=internet
    )
    with pytest.raises(httpcore.ConnectError, match="cloud metadata"):
        await backend.connect_tcp("mixed.test", 80)
    assert internet.connected == []


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_redirect_to_an_internal_address_is_refused(feed_server: FeedServer) -> None:
    with FeedServer() as internal:
        internal.serve("/secret", b"metadata")
        feed_server.redirect("/hook", f"http://127.0.0.1:{internal.port}/secret")
        internet = FakeInternet(feed_server.port)
        transport = DeliveryTransport()
        transport._guarded._pool = httpcore.AsyncConnectionPool(
            network_backend=GuardedBackend(
                resolver_for({"hooks.example.com": ["93.184.216.34"]}), inner=internet
            )
        )
        async with httpx.AsyncClient(
            transport=transport, trust_env=False, follow_redirects=True
        ) as client:
            with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.1, a loopback address"):
                await client.get(f"http://hooks.example.com:{feed_server.port}/hook")
        assert internet.connected == ["93.184.216.34"]  # the first hop went "out"
        assert [r.path for r in feed_server.requests] == ["/hook"]
        assert internal.requests == []  # the redirect target was never contacted


@pytest.mark.integration
@pytest.mark.anyio
async def test_webhook_with_allow_private_delivers_to_loopback(
    webhook_receiver: WebhookReceiver, guarded: httpx.AsyncClient
) -> None:
    notifier = build(webhook_config(webhook_receiver.url, allow_private=True))
    delivery = Delivery("msg_2", "alert.created", datetime.now(UTC), {"x": 1}, 1)
    result = await notifier.send(guarded, delivery, datetime.now(UTC))
    assert result.outcome is Outcome.DELIVERED
    assert webhook_receiver.unique_ids() == ["msg_2"]


@pytest.mark.integration
@pytest.mark.anyio
async def test_a_receiver_that_resets_the_connection_is_a_retry(
    guarded: httpx.AsyncClient,
) -> None:
    """Through the production transport: read the request, then answer with a TCP RST."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def reset_one() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    thread = threading.Thread(target=reset_one, daemon=True)
    thread.start()
    notifier = build(webhook_config(f"http://127.0.0.1:{port}/hook", allow_private=True))
    delivery = Delivery("msg_3", "alert.created", datetime.now(UTC), {"x": 1}, 1)
    result = await notifier.send(guarded, delivery, datetime.now(UTC))
    thread.join(timeout=5)
    listener.close()
    assert result.outcome is Outcome.RETRY
    assert result.error is not None
    assert result.error.startswith(("the receiver broke", "reading the reply failed"))
