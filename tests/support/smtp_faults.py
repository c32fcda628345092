"""A loopback SMTP server that plays the faults that make sense at the SMTP level.

It speaks just enough plain SMTP (no TLS: the notifier under test uses ``tls = "none"``)
to accept a message: greeting, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT. A fault is
set for the whole server; messages accepted are kept in :attr:`messages`::

    with SmtpFaultServer(SmtpFault.CUT_SHORT) as smtp:
        ... smtp_host = "127.0.0.1", smtp_port = smtp.port ...

=================  ===========================================================================
``LATENCY``        the greeting after ``delay`` seconds, then a normal session
``RESET``          accepts the connection, then resets it (TCP RST) before any greeting
``HANG``           accepts the connection and never says a word
``SLOW_BYTES``     the greeting one byte per ``interval`` seconds
``REPLY_4XX``      ``451 4.3.0`` at the end of DATA: a transient refusal of the message
``REPLY_5XX``      ``554 5.7.1`` to MAIL FROM: a permanent refusal of the sender
``CUT_SHORT``      the EHLO reply cut in the middle of a line, then the connection closes
``BURST_4XX``      ``burst`` connections greeted with ``421 4.3.2`` and closed, then normal
``ENDLESS_REPLY``  an EHLO reply of continuation lines (``250-``) that never ends
=================  ===========================================================================

The HTTP faults with no SMTP counterpart: a redirect loop (SMTP has no redirects), a gzip
bomb (SMTP replies are never compressed) and a body without length (an SMTP client reads
reply lines, not bodies: ``ENDLESS_REPLY`` is the nearest thing, an unbounded reply).
"""

from __future__ import annotations

import asyncio
import enum

from tests.support.loopback_server import LoopbackServer, reset

_GREETING = b"220 loopback ESMTP fault server\r\n"
_LINE_LIMIT = 64 * 1024


class SmtpFault(enum.StrEnum):
    """The faults a server can play (see the module docstring)."""

    LATENCY = "latency"
    RESET = "reset"
    HANG = "hang"
    SLOW_BYTES = "slow-bytes"
    REPLY_4XX = "reply-4xx"
    REPLY_5XX = "reply-5xx"
    CUT_SHORT = "cut-short"
    BURST_4XX = "burst-4xx"
    ENDLESS_REPLY = "endless-reply"


class SmtpFaultServer(LoopbackServer):
    """A plain SMTP server on 127.0.0.1 playing ``fault`` (None: a healthy server)."""

    name = "smtp-fault-server"

    def __init__(
        self,
        fault: SmtpFault | None = None,
        *,
        delay: float = 3.0,
        interval: float = 1.0,
        burst: int = 1,
    ) -> None:
        super().__init__()
        self.fault = fault
        self.delay = delay
        self.interval = interval
        self.burst = burst
        self.connections = 0
        self.messages: list[bytes] = []  # the DATA of every message accepted

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.connections += 1
            number = self.connections
        fault = self.fault
        if fault is SmtpFault.RESET:
            reset(writer)
            return
        if fault is SmtpFault.HANG:
            await self._wait_stop()
            return
        if fault is SmtpFault.BURST_4XX and number <= self.burst:
            await _say(writer, b"421 4.3.2 Service not available, closing channel\r\n")
            return
        if fault is SmtpFault.LATENCY and await self._wait_stop(self.delay):
            return
        if fault is SmtpFault.SLOW_BYTES:
            for i in range(len(_GREETING)):
                await _say(writer, _GREETING[i : i + 1])
                if await self._wait_stop(self.interval):
                    return
        else:
            await _say(writer, _GREETING)
        await self._session(reader, writer)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readuntil(b"\n")
            if len(line) > _LINE_LIMIT:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                if not await self._hello(writer):
                    return
            elif verb == b"MAIL" and self.fault is SmtpFault.REPLY_5XX:
                await _say(writer, b"554 5.7.1 Sender refused by policy\r\n")
            elif verb == b"DATA":
                await _say(writer, b"354 End data with <CR><LF>.<CR><LF>\r\n")
                data = await reader.readuntil(b"\r\n.\r\n")
                if self.fault is SmtpFault.REPLY_4XX:
                    await _say(writer, b"451 4.3.0 Temporary local problem, try again later\r\n")
                else:
                    with self._lock:
                        self.messages.append(data)
                    await _say(writer, b"250 2.0.0 Ok: queued\r\n")
            elif verb == b"QUIT":
                await _say(writer, b"221 2.0.0 Bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                await _say(writer, b"250 2.0.0 Ok\r\n")

    async def _hello(self, writer: asyncio.StreamWriter) -> bool:
        """Answer EHLO; False when the fault ends the session here."""
        if self.fault is SmtpFault.CUT_SHORT:
            await _say(writer, b"250-loopback\r\n250-SIZE 102")
            return False
        if self.fault is SmtpFault.ENDLESS_REPLY:
            line = b"250-" + b"x" * 70 + b"\r\n"
            while not self._stopping_now():
                await _say(writer, line * 256)
            return False
        await _say(writer, b"250-loopback\r\n250 8BITMIME\r\n")
        return True

    def _stopping_now(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()


async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()
