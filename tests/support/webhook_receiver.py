"""A real webhook receiver on 127.0.0.1 for integration tests.

It checks every request's Standard Webhooks signature with the independent
``standardwebhooks`` package and records what arrived. A test can also script
failures, hangs and outages. Use it through the fixtures::

    # tests/conftest.py
    from tests.support.webhook_receiver import (  # noqa: F401 - pytest fixtures
        webhook_receiver,
        webhook_receiver_factory,
    )

    def test_delivery(webhook_receiver):
        config = {"url": webhook_receiver.url, "secret": webhook_receiver.secret, ...}
        webhook_receiver.fail_next(2, status=503, retry_after=30)
        ...  # let the worker deliver
        [delivery] = webhook_receiver.wait_for(1, timeout=5)
        assert delivery.payload["type"] == "..."
        assert webhook_receiver.unique_ids() == [delivery.webhook_id]

or directly, as a context manager::

    with WebhookReceiver(WEBHOOK_SECRET) as receiver:
        ...

How a request is answered
    1. Every request is counted and its signature is checked. Note that
       ``standardwebhooks`` rejects a ``webhook-timestamp`` more than 5 minutes from
       the real clock, so send with the real current time, not a fixed one.
    2. A bad signature gets ``401`` and is recorded in :attr:`WebhookReceiver.rejected`.
       The scripted controls below are not used up by it.
    3. A correctly signed request takes the next scripted step, in the order the steps
       were queued: ``fail_next`` (answer with that status) or ``hang_next`` (never
       answer; the connection is dropped when the receiver goes down or closes).
    4. Otherwise it gets the current status: ``204`` by default, or what ``set_status``
       chose.
    A correctly signed request answered with a 2xx status is an *accepted delivery*.
    Every response closes its connection, so ``down()`` really refuses the next
    request.

API (every method is thread-safe)
    url, port, secret                   where to send and how to sign
    requests / request_count            every request, in arrival order
    deliveries                          accepted deliveries (signed, answered 2xx)
    rejected                            requests with a bad or missing signature
    ids() / unique_ids()                webhook-ids of accepted deliveries
    wait_for(n, timeout)                block until n accepted deliveries
    wait_for_requests(n, timeout)       block until n requests of any kind
    fail_next(n, status, retry_after)   answer the next n signed requests with status
    hang_next(n)                        never answer the next n signed requests
    set_status(code)                    the status when nothing is scripted (410 ...)
    down() / up()                       stop listening / listen again on the same port
    close()                             stop everything; the fixtures call it
"""

from __future__ import annotations

import base64
import json
import socketserver
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest
from standardwebhooks import Webhook

HOST = "127.0.0.1"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"noticewatch-test-webhook-secret!").decode()
"""A fixed test-only secret, in the ``whsec_<base64>`` form the notifier expects."""

DEFAULT_STATUS = 204
_POLL_INTERVAL = 0.05  # how quickly down() and close() stop the accept loop


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it and answered it."""

    number: int  # 1-based arrival order over the receiver's whole life
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    webhook_id: str | None
    verified: bool  # the signature checked out with standardwebhooks
    verify_error: str | None  # why it did not
    payload: Any  # the parsed JSON body when verified and valid JSON, else None
    status: int | None  # the status answered; None when the request was left hanging
    received_at: float  # time.monotonic() on arrival

    @property
    def accepted(self) -> bool:
        return self.verified and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True)
class _Step:
    status: int | None  # None: hang
    retry_after: int | str | None = None


class WebhookReceiver:
    """A loopback webhook endpoint that verifies signatures; see the module docstring."""

    def __init__(self, secret: str = WEBHOOK_SECRET, *, path: str = "/webhook") -> None:
        self.secret = secret
        self.path = path
        self._webhook = Webhook(secret)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # any record or state change
        self._requests: list[ReceivedRequest] = []
        self._script: deque[_Step] = deque()
        self._status = DEFAULT_STATUS
        self._port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._epoch = 0  # bumped by down() and close(): releases the hanging requests

    # --- life cycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Listen on an ephemeral port of 127.0.0.1 (idempotent)."""
        self.up()
        return self

    def close(self) -> None:
        """Stop listening and drop the hanging requests. Never blocks on a hang."""
        self.down()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def down(self) -> None:
        """Close the listening socket: new connections are refused until ``up()``.

        Requests left hanging by ``hang_next`` are dropped without an answer.
        """
        with self._changed:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._epoch += 1
            self._changed.notify_all()
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def up(self) -> None:
        """Listen again, on the same port as before (an ephemeral one the first time)."""
        with self._changed:
            if self._server is not None:
                return
            server = _Server((HOST, self._port), _Handler)
            server.receiver = self
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"webhook-receiver-{self._port}",
                daemon=True,
            )
            self._thread.start()

    @property
    def is_up(self) -> bool:
        with self._lock:
            return self._server is not None

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the receiver has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"

    # --- controls -------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 503, retry_after: int | str | None = None) -> None:
        """Answer the next ``n`` correctly signed requests with ``status``.

        ``retry_after`` is sent as the Retry-After header: seconds, or a ready-made
        HTTP date string.
        """
        self._queue([_Step(status, retry_after)] * n)

    def hang_next(self, n: int = 1) -> None:
        """Read the next ``n`` correctly signed requests and never answer them.

        They stay open until the client gives up or the receiver goes down or closes.
        """
        self._queue([_Step(None)] * n)

    def set_status(self, code: int) -> None:
        """The status for signed requests when nothing is scripted, e.g. 410 from now on."""
        with self._lock:
            self._status = code

    def _queue(self, steps: list[_Step]) -> None:
        with self._lock:
            self._script.extend(steps)

    # --- records --------------------------------------------------------------------

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def deliveries(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self._requests if r.accepted]

    @property
    def rejected(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self._requests if not r.verified]

    def ids(self) -> list[str]:
        """The webhook-id of every accepted delivery, in arrival order (repeats kept)."""
        return [r.webhook_id for r in self.deliveries if r.webhook_id is not None]

    def unique_ids(self) -> list[str]:
        """``ids()`` without repeats, in order of first arrival."""
        return list(dict.fromkeys(self.ids()))

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``n`` accepted deliveries; return all of them.

        Raises TimeoutError, with what did arrive, when ``timeout`` seconds pass first.
        """
        return self._wait(lambda r: r.accepted, n, timeout, "accepted deliveries")

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least ``n`` requests of any kind; return all of them."""
        return self._wait(lambda r: True, n, timeout, "requests")

    def _wait(
        self, keep: Callable[[ReceivedRequest], bool], n: int, timeout: float, what: str
    ) -> list[ReceivedRequest]:
        with self._changed:
            if not self._changed.wait_for(
                lambda: sum(map(keep, self._requests)) >= n, timeout=timeout
            ):
                statuses = [r.status for r in self._requests]
                raise TimeoutError(
                    f"expected {n} {what} within {timeout}s; got "
                    f"{sum(map(keep, self._requests))} (statuses of all requests: {statuses})"
                )
            return [r for r in self._requests if keep(r)]

    # --- serving (runs on the server's handler threads) -----------------------------

    def _handle(self, handler: _Handler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        verified, verify_error, payload = self._verify(body, headers)
        with self._changed:
            step = self._next_step() if verified else _Step(401)
            record = ReceivedRequest(
                number=len(self._requests) + 1,
                method=handler.command,
                path=handler.path,
                headers=headers,
                body=body,
                webhook_id=headers.get("webhook-id"),
                verified=verified,
                verify_error=verify_error,
                payload=payload,
                status=step.status,
                received_at=time.monotonic(),
            )
            self._requests.append(record)
            self._changed.notify_all()
            if step.status is None:  # hang until down() or close()
                epoch = self._epoch
                self._changed.wait_for(lambda: self._epoch != epoch)
                handler.close_connection = True
                return
        _respond(handler, step)

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool, str | None, Any]:
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except Exception as e:  # the library raises ValueError too on malformed headers
            return False, f"{type(e).__name__}: {e}", None
        try:
            return True, None, json.loads(body)
        except ValueError:
            return True, None, None

    def _next_step(self) -> _Step:
        return self._script.popleft() if self._script else _Step(self._status)


def _respond(handler: _Handler, step: _Step) -> None:
    status = step.status if step.status is not None else 500
    if status in (204, 304):
        body = b""
    elif status == 401:
        body = b"invalid signature"
    elif 200 <= status < 300:
        body = b"ok"
    else:
        body = b"scripted failure"
    handler.send_response(status)
    if step.retry_after is not None:
        handler.send_header("Retry-After", str(step.retry_after))
    if status not in (204, 304):
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler never delays interpreter exit
    allow_reuse_address = True  # up() rebinds the same port despite TIME_WAIT
    receiver: WebhookReceiver

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup; loopback needs none.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = HOST, self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client gave up (a timeout test): nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        self.server.receiver._handle(self)

    do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean; the records say what happened


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A started receiver that checks signatures with :data:`WEBHOOK_SECRET`."""
    with WebhookReceiver(WEBHOOK_SECRET) as receiver:
        yield receiver


@pytest.fixture
def webhook_receiver_factory() -> Iterator[Callable[..., WebhookReceiver]]:
    """``make(secret=WEBHOOK_SECRET, path="/webhook")`` starts a receiver; all close at teardown."""
    receivers: list[WebhookReceiver] = []

    def make(secret: str = WEBHOOK_SECRET, *, path: str = "/webhook") -> WebhookReceiver:
        receiver = WebhookReceiver(secret, path=path).start()
        receivers.append(receiver)
        return receiver

    yield make
    for receiver in receivers:
        receiver.close()
