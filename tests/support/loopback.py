"""The suite's network fence: a test may open connections to loopback only.

Every socket ``connect`` to another address, and every name lookup other than
``localhost`` (a DNS query leaves the machine), is refused with the error a closed
network gives and recorded; the fixture then fails the test that tried. Addresses
written as numbers resolve without a query, so refusal tests can still name them.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_LOCAL_NAMES = frozenset({"localhost", "localhost.", ""})


def _is_loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host.lower() in _LOCAL_NAMES
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is loopback too
    return (mapped or address).is_loopback


def _is_number(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        try:
            socket.inet_aton(host)  # the legacy forms: 2130706433, 0x7f000001, 127.1
        except OSError:
            return False
    return True


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    tried: list[str] = []
    connect, connect_ex, getaddrinfo = (
        socket.socket.connect,
        socket.socket.connect_ex,
        socket.getaddrinfo,
    )

    def refuse(what: str) -> None:
        tried.append(what)
        raise ConnectionRefusedError(f"the test suite may only reach 127.0.0.1, not {what}")

    def fenced_connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse(str(address[0]))
        connect(sock, address)

    def fenced_connect_ex(sock: socket.socket, address: Any) -> int:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            refuse(str(address[0]))
        return connect_ex(sock, address)

    def fenced_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host or "")
        if not _is_number(name) and name.lower() not in _LOCAL_NAMES:
            tried.append(f"a DNS lookup of {name}")
            raise socket.gaierror(socket.EAI_NONAME, f"the test suite may not look up {name}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", fenced_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", fenced_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", fenced_getaddrinfo)
    yield tried
    assert not tried, f"this test tried to leave the machine: {', '.join(tried)}"
