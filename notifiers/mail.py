"""Email: one multipart (text and HTML) message per alert, or per digest, over SMTP.

Example, in sources.toml::

    [[notifiers]]
    name = "team-mail"
    type = "email"
    to = ["procurement@example.org", "legal@example.org"]
    from = "noticewatch@example.org"
    smtp_host = "smtp.example.org"
    smtp_port = 587                             # optional: 587 starttls, 465 implicit
    tls = "starttls"                            # or "implicit"; "none" only if you say so
    username = "noticewatch"                    # optional: log in after TLS is up
    password = "${NOTICEWATCH_SMTP_PASSWORD}"   # from the environment, never the file
    subject_prefix = "[noticewatch]"
    digest = "daily 08:00"                      # or "immediate" (default), "hourly"
    rules = ["clearview-fines", "source_health"]

Keys
    to              The recipients, a list of addresses. Nobody else ever receives a
                    message: the envelope recipients are exactly this list.
    from            The sender address.
    smtp_host       The SMTP server.
    smtp_port       Default 587 with ``starttls``, 465 with ``implicit``, 25 with ``none``.
    tls             ``starttls`` (default): plain connect, then STARTTLS, which must
                    succeed. ``implicit``: TLS from the first byte (SMTPS). ``none``: no
                    encryption, only when set explicitly, and then without login.
                    Certificates are always verified against the system's CAs (or
                    ``ca_file``) and must name ``smtp_host``.
    ca_file         A PEM file of CA certificates to trust instead of the system's,
                    for a server with an internal CA.
    username        Log in with this user; AUTH is only ever sent over TLS.
    password        The password; write ``"${VAR}"`` so it comes from the environment.
    subject_prefix  Put before every subject (default ``[noticewatch]``).
    timeout         How long one delivery may take (default ``30s``).
    digest          (every notifier) ``immediate``, ``hourly`` or ``"daily HH:MM"``.
    rules           (every notifier) The rules whose alerts go here; ``source_health``
                    subscribes to health messages.

What is sent
    A ``multipart/alternative`` message with a text and an HTML part showing the
    title (matched terms highlighted), source, date, matched terms, the link, the
    structured fields of procurement notices and ``also_seen_in``. Feed text is
    untrusted: the HTML is escaped and cleaned, and only http, https and mailto links
    survive. The subject is one line of at most 200 characters whatever the title
    holds (newlines, encoded words, U+2028, 10 KB of text). ``Message-ID`` is the
    delivery id, the same on every retry.

How failures are read
    Every SMTP or network failure is retried with the usual backoff (a refused
    certificate too: fix the server or ``ca_file``); the error names the step. When the
    server accepts some recipients and refuses others, the message counts as delivered
    (a retry would reach the others twice) and the refusal is kept as its last error.
"""

from __future__ import annotations

import base64
import dataclasses
import ssl
import time
from datetime import datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import aiosmtplib
import anyio
import httpx
from pydantic import AfterValidator, Field, SecretStr, model_validator

from monitor.config_base import NotifierConfig
from monitor.durations import Duration, format_duration
from monitor.errors import NotifyError
from notifiers.base import Delivery, DeliveryResult, NotifierType, Outcome
from notifiers.mail_render import Envelope, MailRenderer, one_line

DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


def _check_address(value: str) -> str:
    if value != value.strip() or any(not ch.isprintable() for ch in value):
        raise ValueError("an address must be one line without surrounding spaces")
    try:
        address = Address(addr_spec=value)
    except (ValueError, IndexError, HeaderParseError) as e:  # "<a@b>" raises the last
        raise ValueError(f"{value!r} is not an email address like name@example.org") from e
    if not address.domain or not address.username:
        raise ValueError(f"{value!r} is not an email address like name@example.org")
    return value


EmailAddress = Annotated[str, AfterValidator(_check_address)]


class EmailConfig(NotifierConfig):
    """The keys of one ``type = "email"`` notifier (see the module help)."""

    type: Literal["email"]
    to: list[EmailAddress] = Field(min_length=1)
    from_: EmailAddress = Field(alias="from")
    smtp_host: str = Field(min_length=1)
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    subject_prefix: str = "[noticewatch]"
    timeout: Duration = timedelta(seconds=30)

    @model_validator(mode="before")
    @classmethod
    def _hide_secret_early(cls, data: Any) -> Any:
        # As for the webhook secret: pydantic errors would quote the raw input.
        if isinstance(data, dict) and isinstance(data.get("password"), str):
            return {**data, "password": SecretStr(data["password"])}
        return data

    @model_validator(mode="after")
    def _check_login(self) -> EmailConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        if self.username is not None and self.tls == "none":
            raise ValueError(
                'tls = "none" with a username would send the password in clear text; '
                'use tls = "starttls" or "implicit"'
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file: {self.ca_file} is not a readable file")
        return self

    @property
    def port(self) -> int:
        return self.smtp_port or DEFAULT_PORTS[self.tls]


@dataclasses.dataclass
class _Progress:
    """How far one delivery got, for the error when it stalls or fails."""

    step: str = "connecting"


class EmailNotifier:
    """Sends deliveries as email through one SMTP server."""

    type: ClassVar[str] = "email"

    def __init__(self, config: EmailConfig, renderer: MailRenderer | None = None) -> None:
        self.config = config
        self._renderer = renderer or MailRenderer()
        self._envelope = Envelope(config.from_, tuple(config.to), config.subject_prefix)

    @property
    def name(self) -> str:
        return self.config.name

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r})"

    def render(self, delivery: Delivery) -> EmailMessage:
        return self._renderer.message(
            self._envelope,
            delivery.delivery_id,
            delivery.event_type,
            delivery.data,
            delivery.created_at,
        )

    async def send(
        self, client: httpx.AsyncClient, delivery: Delivery, now: datetime
    ) -> DeliveryResult:
        """One SMTP transaction; never raises for a failed delivery."""
        message = self.render(delivery)
        started = time.perf_counter()
        seconds = self.config.timeout.total_seconds()
        progress = _Progress()
        result = None
        with anyio.move_on_after(seconds):
            result = await self._attempt(message, seconds, progress)
        if result is None:  # the whole delivery ran past its timeout
            result = DeliveryResult(Outcome.RETRY, error=self._timed_out(progress.step))
        return dataclasses.replace(result, duration=time.perf_counter() - started)

    async def _attempt(
        self, message: EmailMessage, seconds: float, progress: _Progress
    ) -> DeliveryResult:
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.smtp_host,
            port=config.port,
            use_tls=config.tls == "implicit",
            start_tls=config.tls == "starttls",  # True: STARTTLS is required, not optional
            validate_certs=config.tls != "none",
            tls_context=self._tls_context() if config.tls != "none" else None,
            timeout=seconds,
        )
        try:
            await smtp.connect()
            if config.username is not None and config.password is not None:
                progress.step = "logging in"
                await smtp.login(config.username, config.password.get_secret_value())
            progress.step = "sending"
            errors, _ = await smtp.send_message(
                message, sender=config.from_, recipients=list(config.to)
            )
        except TimeoutError:  # aiosmtplib's per-step timeout (SMTPTimeoutError is one)
            return DeliveryResult(Outcome.RETRY, error=self._timed_out(progress.step))
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as e:
            return DeliveryResult(Outcome.RETRY, error=self._reason(progress.step, e))
        finally:
            if smtp.is_connected:
                smtp.close()
        if errors:
            # The others have it: a retry would send it to them twice, and the refused
            # ones (5xx) would be refused again. Delivered, with the refusal on record.
            refused = ", ".join(sorted(errors))
            return DeliveryResult(Outcome.DELIVERED, error=f"recipients refused: {refused}")
        return DeliveryResult(Outcome.DELIVERED)

    def _tls_context(self) -> ssl.SSLContext:
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        return ssl.create_default_context(cafile=cafile)  # verifies chain and host name

    def _where(self) -> str:
        return f"SMTP {self.config.smtp_host}:{self.config.port}"

    def _timed_out(self, step: str) -> str:
        """Where the delivery stalled: a silent server stalls ``connecting`` (its greeting)."""
        return f"{self._where()} {step}: timed out after {format_duration(self.config.timeout)}"

    def _reason(self, step: str, error: BaseException) -> str:
        detail = str(error) or type(error).__name__
        # Redact before cutting and flattening, which would leave parts of it behind;
        # a server may also echo the base64 argument of AUTH PLAIN or AUTH LOGIN.
        for secret in self._secret_forms():
            detail = detail.replace(secret, "[redacted]")
        detail = one_line(detail, 300)
        return f"{self._where()} {step} failed: {type(error).__name__}: {detail}"

    def _secret_forms(self) -> list[str]:
        """The password as written and as AUTH PLAIN / LOGIN send it, longest first."""
        if self.config.password is None or not self.config.password.get_secret_value():
            return []
        secret = self.config.password.get_secret_value()
        plain = f"\0{self.config.username or ''}\0{secret}".encode()
        forms = {
            secret,
            secret.encode("unicode_escape").decode(),  # as the repr in str(error) shows it
            base64.b64encode(plain).decode(),
            base64.b64encode(secret.encode()).decode(),
        }
        return sorted(forms, key=len, reverse=True)


def build(config: NotifierConfig) -> EmailNotifier:
    if not isinstance(config, EmailConfig):
        raise NotifyError(
            f"notify: notifier '{config.name}': the email notifier needs an EmailConfig, "
            f"not {type(config).__name__}"
        )
    return EmailNotifier(config)


NOTIFIER_TYPE = NotifierType(
    name="email", config_model=EmailConfig, build=build, help=__doc__ or ""
)
