"""The Notifier protocol and what one delivery attempt returns.

A notifier type is one module with a pydantic config model (``extra="forbid"``), a
docstring that doubles as user help, and a class implementing :class:`Notifier`.
``send`` never raises for a failed delivery: it classifies the outcome so that the
delivery worker can decide between delivered, retry, and disabling the endpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

import httpx

from monitor.config_base import NotifierConfig


@dataclass(frozen=True)
class Delivery:
    """One alert to hand to one notifier. ``delivery_id`` is stable across retries."""

    delivery_id: str
    event_type: str
    created_at: datetime
    data: dict[str, Any]
    attempt: int


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: try again later (honouring retry_after when set)
    GONE = "gone"  # the endpoint asked never to be called again (HTTP 410)


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None  # readable, never contains a secret
    retry_after: timedelta | None = None
    duration: float = 0.0


class Notifier(Protocol):
    type: ClassVar[str]

    @property
    def config(self) -> NotifierConfig:
        """The validated config (read-only here, so a type may narrow it)."""
        ...

    @property
    def name(self) -> str: ...

    async def send(
        self, client: httpx.AsyncClient, delivery: Delivery, now: datetime
    ) -> DeliveryResult: ...


@dataclass(frozen=True)
class NotifierType:
    name: str
    config_model: type[NotifierConfig]
    build: Callable[[NotifierConfig], Notifier]
    help: str


def mask_secret(value: str) -> str:
    """Show a secret only as its kind and length, e.g. ``whsec_…(44 chars)``."""
    prefix = value.split("_", 1)[0] + "_" if "_" in value[:8] else ""
    return f"{prefix}…({len(value)} chars)"
