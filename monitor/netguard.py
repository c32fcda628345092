"""Safe endpoints: outgoing notifier requests never reach private or internal addresses.

A webhook URL is written by whoever edits sources.toml, but the request is made from
inside the network noticewatch runs in. Checking the host name is not enough: a name
can resolve to 127.0.0.1, or resolve to a public address when checked and to a
private one when connected (DNS rebinding), and ``2130706433``, ``0x7f000001`` and
``127.1`` are all 127.0.0.1 to the system resolver. So the check happens where the
socket is opened: :class:`GuardedBackend` resolves the host once, refuses if *any*
address is not public, and connects to the address it checked, never re-resolving.

:class:`DeliveryTransport` routes each request either through that guard or, when
the request carries the ``allow_private`` extension (a notifier with
``allow_private = true``), through a plain connection pool.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import httpcore
import httpx

ALLOW_PRIVATE = "noticewatch.allow_private"  # request extension set by the notifier
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


def blocked_kind(address: Address) -> str | None:
    """Why ``address`` must not be contacted ("loopback", ...), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return blocked_kind(mapped)
    checks = (
        (address in _METADATA, "cloud metadata"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_unspecified, "unspecified"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "non-public"),
    )
    return next((kind for hit, kind in checks if hit), None)


def literal_address(host: str) -> Address | None:
    """The address a host written as a number stands for, in every form resolvers accept.

    ``inet_aton`` reads the legacy forms too (``2130706433``, ``0x7f000001``,
    ``127.1``, ``0177.0.0.1``), exactly as the system resolver will when connecting.
    """
    text = host.strip("[]")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def host_problem(host: str) -> str | None:
    """A config-time refusal for a host that is plainly internal (no DNS lookup)."""
    if host.lower().rstrip(".") == "localhost" or host.lower().endswith(".localhost"):
        return f"the host {host} is loopback"
    address = literal_address(host)
    if address is None:
        return None
    kind = blocked_kind(address)
    return f"the host {host} is {address}, a {kind} address" if kind else None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class RefusedAddressError(httpcore.ConnectError):
    """The endpoint resolved to an address notifiers may not reach."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to a checked address only."""

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolve = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError) as e:
            raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        for text in addresses:
            kind = blocked_kind(ipaddress.ip_address(text.split("%", 1)[0]))
            if kind is not None:
                raise RefusedAddressError(
                    f"refused: {host} resolves to {text}, a {kind} address "
                    "(set allow_private = true on the notifier if this is intended)"
                )
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedAddressError("refused: unix sockets are not an allowed endpoint")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class DeliveryTransport(httpx.AsyncBaseTransport):
    """The transport of notifier requests: guarded unless the request allows private."""

    def __init__(self, resolver: Resolver = system_resolver) -> None:
        self._open = httpx.AsyncHTTPTransport()
        self._guarded = httpx.AsyncHTTPTransport()
        # httpx has no public switch for the network backend; the pool it builds is
        # replaced by the same pool with the guarded backend (same TLS verification).
        self._guarded._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=GuardedBackend(resolver),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        route = self._open if request.extensions.get(ALLOW_PRIVATE) else self._guarded
        return await route.handle_async_request(request)

    async def aclose(self) -> None:
        await self._open.aclose()
        await self._guarded.aclose()
