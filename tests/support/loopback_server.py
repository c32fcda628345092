"""The base of the loopback fault servers: asyncio on 127.0.0.1, in a thread of its own.

Running its own event loop in a daemon thread, a server serves sync tests (which call
``main(["poll"])`` and so ``asyncio.run``) and async tests alike, and controls each
connection byte by byte, which the faults need.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from types import TracebackType
from typing import Self

_READ_LIMIT = 16 * 1024 * 1024


class LoopbackServer:
    """An asyncio stream server on 127.0.0.1 with its own event loop in a daemon thread.

    A subclass implements :meth:`_serve` (one connection). Closing wakes every handler
    waiting in :meth:`_wait_stop` and aborts every open connection.
    """

    name = "loopback-server"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self._writers: set[asyncio.StreamWriter] = set()  # touched by the loop thread only

    def start(self) -> Self:
        """Bind 127.0.0.1 on an ephemeral port and serve from a background thread."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._serve_forever, args=(ready,), name=self.name, daemon=True
        )
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError(f"the {self.name} did not start within 5s")
        return self

    def close(self) -> None:
        """Stop: wake every stalled handler, cut open connections, release the port."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._begin_stop)
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError(f"the {self.name} is not running; use start() or a with block")
        return self._port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _wait_stop(self, seconds: float | None = None) -> bool:
        """Sleep ``seconds`` (None: until the server stops); True when it is stopping."""
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()

    def _serve_forever(self, ready: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main(ready))
        self._loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        # A generous line limit: an SMTP message is read as one "line" up to its final dot.
        server = await asyncio.start_server(
            self._connection, "127.0.0.1", 0, backlog=128, limit=_READ_LIMIT
        )
        self._port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        for writer in list(self._writers):  # wake handlers stalled on purpose
            writer.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 2)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _begin_stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: the point of most faults
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()


def reset(writer: asyncio.StreamWriter) -> None:
    """Reset the connection: with a zero linger, the close sends RST, not FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
