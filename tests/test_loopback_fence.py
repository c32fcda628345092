"""The suite's fence (tests/support/loopback.py) refuses before anything leaves."""

from __future__ import annotations

import socket

import httpx
import pytest


def test_a_connection_elsewhere_is_refused_and_recorded(loopback_only: list[str]) -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match=r"192\.0\.2\.1"):
        sock.connect(("192.0.2.1", 80))  # TEST-NET-1: never routed anywhere
    assert loopback_only == ["192.0.2.1"]
    loopback_only.clear()  # recorded on purpose here; any other test would fail


def test_a_name_lookup_is_refused_and_numbers_and_localhost_resolve(
    loopback_only: list[str],
) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("example.org", 443)
    assert loopback_only == ["a DNS lookup of example.org"]
    loopback_only.clear()
    assert socket.getaddrinfo("127.0.0.1", 80)
    assert socket.getaddrinfo("localhost", 80)


async def test_httpx_meets_the_fence_too(loopback_only: list[str]) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://192.0.2.1/")
    assert loopback_only == ["192.0.2.1"]
    loopback_only.clear()


pytestmark = pytest.mark.anyio
