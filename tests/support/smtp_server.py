"""A real SMTP server on 127.0.0.1 (aiosmtpd) with a test CA made in the test run.

``SmtpServer(mode)`` runs aiosmtpd in its own thread:

``starttls``   plain connect, STARTTLS required before MAIL and before AUTH
``implicit``   TLS from the first byte (SMTPS)
``none``       no TLS at all

Its certificate is issued for 127.0.0.1 and localhost by ``ca`` (a trustme CA);
``ca_file`` is that CA's PEM for the notifier's ``ca_file`` key. Pass
``untrusted=True`` for a certificate from another CA that nobody trusts. Recipients
at ``@refused.example`` are refused with 550. Every
accepted message is parsed with the ``email`` package into :attr:`messages`, with its
envelope in :attr:`envelopes`; :attr:`auth` records each login and whether it came
over TLS.
"""

from __future__ import annotations

import email
import email.policy
import socket
import ssl
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

Mode = Literal["starttls", "implicit", "none"]
USERNAME, PASSWORD = "noticewatch", "s3cret-smtp-pass"


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]
    raw: bytes


class _Handler:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        with self.owner.lock:
            self.owner.envelopes.append(Envelope(envelope.mail_from, list(envelope.rcpt_tos), raw))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpServer:
    def __init__(self, tmp: Path, mode: Mode = "starttls", *, untrusted: bool = False) -> None:
        self.mode = mode
        self.ca = trustme.CA()
        self.ca_file = tmp / f"ca-{mode}.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        issuer = trustme.CA() if untrusted else self.ca
        cert = issuer.issue_cert("127.0.0.1", "localhost")
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.server_context)
        self.lock = threading.Lock()
        self.envelopes: list[Envelope] = []
        self.auth: list[tuple[str, bool]] = []  # (username, over TLS)
        self.port = _free_port()
        tls: dict[str, Any] = {}
        if mode == "starttls":
            tls = {"tls_context": self.server_context, "require_starttls": True}
        elif mode == "implicit":
            tls = {"ssl_context": self.server_context}
        self.controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            # With SMTPS aiosmtpd cannot tell the socket is TLS and would hide AUTH;
            # with STARTTLS it refuses AUTH until TLS is up.
            auth_require_tls=mode != "implicit",
            **tls,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False)
        user = auth_data.login.decode()
        with self.lock:
            self.auth.append((user, self.mode == "implicit" or session.ssl is not None))
        ok = user == USERNAME and auth_data.password.decode() == PASSWORD
        return AuthResult(success=ok, handled=False)

    @property
    def messages(self) -> list[EmailMessage]:
        with self.lock:
            raws = [e.raw for e in self.envelopes]
        return [
            email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[misc]
            for raw in raws
        ]

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.controller.stop()
