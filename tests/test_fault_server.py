"""The fault server plays what it claims, seen from a raw socket (no HTTP client between)."""

from __future__ import annotations

import socket
import time
import zlib

import pytest

from tests.support.fault_server import (
    BOMB_DECODED_SIZE,
    HUGE_SIZE,
    Fault,
    FaultServer,
    bomb_length,
    bomb_pieces,
    fault_server,  # noqa: F401
)

pytestmark = pytest.mark.integration


def exchange(server: FaultServer, path: str) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return conn


def head_and_rest(conn: socket.socket) -> tuple[dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    headers[":status"] = lines[0].split(" ")[1]
    return headers, rest


def inflate(wire: bytes, inflater: zlib._Decompress, *, check_zeros: bool) -> int:
    """Inflate ``wire`` in bounded 16 MiB steps; the decoded size (never held at once)."""
    inflated = 0
    while wire:
        out = inflater.decompress(wire, 16 << 20)
        if check_zeros:
            assert out == bytes(len(out))
        inflated += len(out)
        wire = inflater.unconsumed_tail
    return inflated


def test_the_bomb_stream_is_valid_gzip_of_zeros_with_its_crc() -> None:
    # The 1 GiB one inflates in seconds; the same generator, 64 MiB long, in a blink.
    size = 64 << 20
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    pieces = list(bomb_pieces(size))
    inflated = sum(inflate(piece, inflater, check_zeros=True) for piece in pieces)
    assert inflater.eof and inflater.unused_data == b""  # zlib checked CRC and length
    assert inflated == size and sum(map(len, pieces)) == bomb_length(size)


def test_gzip_bomb_claims_one_gib_in_about_a_megabyte(
    fault_server: FaultServer,  # noqa: F811
) -> None:
    fault_server.fault("/bomb.gz", Fault.GZIP_BOMB)
    with exchange(fault_server, "/bomb.gz") as conn:
        headers, wire = head_and_rest(conn)
        while len(wire) < 64 * 1024:
            wire += conn.recv(65536)
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    assert inflate(wire, inflater, check_zeros=False) > 32 << 20  # 64 KiB: > 32 MiB
    assert headers["content-encoding"] == "gzip"
    assert int(headers["content-length"]) == bomb_length() < 2 * 1000 * 1000
    assert bomb_length() == bomb_length(BOMB_DECODED_SIZE)


def test_huge_body_is_200_mb_close_delimited(fault_server: FaultServer) -> None:  # noqa: F811
    fault_server.fault("/huge", Fault.HUGE_BODY)
    with exchange(fault_server, "/huge") as conn:
        headers, rest = head_and_rest(conn)
        size = len(rest)
        while chunk := conn.recv(1 << 20):
            size += len(chunk)
    assert "content-length" not in headers and "transfer-encoding" not in headers
    assert headers["connection"] == "close"
    assert size == HUGE_SIZE


def test_short_body_stops_short_of_its_content_length(
    fault_server: FaultServer,  # noqa: F811
) -> None:
    fault_server.fault("/short", Fault.SHORT_BODY, body=b"0123456789")
    with exchange(fault_server, "/short") as conn:
        headers, rest = head_and_rest(conn)
        while chunk := conn.recv(1024):
            rest += chunk
    assert (headers["content-length"], rest) == ("10", b"01234")


def test_reset_and_redirect_loop_and_burst(fault_server: FaultServer) -> None:  # noqa: F811
    fault_server.fault("/reset", Fault.RESET)
    with exchange(fault_server, "/reset") as conn, pytest.raises(ConnectionResetError):
        while conn.recv(1024):
            pass
    fault_server.fault("/loop", Fault.REDIRECT_LOOP)
    for hop in range(3):
        with exchange(fault_server, f"/loop?loop={hop}") as conn:
            headers, _ = head_and_rest(conn)
        assert (headers[":status"], headers["location"]) == ("302", f"/loop?loop={hop + 1}")
    fault_server.fault("/burst", Fault.BURST_5XX, body=b"ok", burst=2)
    statuses = []
    for _ in range(3):
        with exchange(fault_server, "/burst") as conn:
            statuses.append(head_and_rest(conn)[0][":status"])
    assert statuses == ["503", "503", "200"]
    assert fault_server.hits("/burst") == 3


def test_closing_wakes_a_hanging_and_a_trickling_connection_promptly() -> None:
    server = FaultServer().start()
    server.fault("/hang", Fault.HANG)
    server.fault("/slow", Fault.SLOW_BYTES, body=b"x" * 100)
    hang, slow = exchange(server, "/hang"), exchange(server, "/slow")
    with hang, slow:
        assert slow.recv(1) == b"H"  # one byte, then a second's wait
        while len(server.requests) < 2:
            time.sleep(0.01)
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 3  # not the 5 s join timeout
        assert hang.recv(1024) == b""


def test_routes_need_a_known_fault_and_an_absolute_path(
    fault_server: FaultServer,  # noqa: F811
) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        fault_server.fault("/x", "explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start with '/'"):
        fault_server.serve("x", b"")
    with exchange(fault_server, "/nothing-here") as conn:
        assert head_and_rest(conn)[0][":status"] == "404"
