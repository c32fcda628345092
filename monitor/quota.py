"""Request quotas of metered APIs (SAM.gov): counted per key per UTC day, in the database.

A metered source never holds its API key's count itself: it asks a
:class:`RequestLedger` (the Store implements it) to *spend* one request before
sending it, and the ledger refuses once ``limit`` requests were spent that UTC day,
so every process sharing the database shares the count and none goes over it.
Keys are recorded by :func:`key_id`, a fingerprint, never by value.
"""

from __future__ import annotations

import email.utils
import hashlib
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from monitor.errors import FetchError

Clock = Callable[[], datetime]

_NEXT_ACCESS = re.compile(
    r"^(\d{4})-([A-Za-z]{3})-(\d{1,2})[ T](\d{2}):(\d{2}):(\d{2})\s*([+-]\d{4})?(?:\s*UTC)?$"
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}


class QuotaExhausted(FetchError):
    """No request may be sent now: our ``daily_quota``, or the API's own throttle (429).

    The source is paused until ``retry_after`` and says why; it is waiting, not failing,
    so the pipeline does not count it towards ``source.failing``.
    """


class RequestLedger(Protocol):
    """Where requests are counted (``storage.requests.RequestCounter``)."""

    def spend_request(self, key: str, day: date, limit: int) -> bool:
        """Count one request of ``key`` on ``day`` unless ``limit`` were spent; True if counted."""
        ...

    def requests_spent(self, key: str, day: date) -> int:
        """How many requests of ``key`` were counted on ``day``."""
        ...

    def exhaust(self, key: str, day: date, limit: int) -> None:
        """Mark ``key``'s ``day`` as spent (at least ``limit``): the API said so (429)."""
        ...


@runtime_checkable
class Metered(Protocol):
    """A source whose API counts requests; the composition root attaches the ledger."""

    def attach(self, ledger: RequestLedger, clock: Clock) -> None: ...

    def quota_status(self) -> str:
        """One line for ``status``: what was spent today, of what."""
        ...


def key_id(kind: str, secret: str) -> str:
    """A stable, non-reversible name for an API key: ``sam:<16 hex digits of SHA-256>``."""
    return f"{kind}:{hashlib.sha256(secret.encode('utf-8')).hexdigest()[:16]}"


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def next_utc_midnight(now: datetime) -> datetime:
    day = utc_day(now) + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def http_date(moment: datetime) -> str:
    """``moment`` as an HTTP-date, the form a ``Retry-After`` header takes."""
    return email.utils.format_datetime(moment.astimezone(UTC), usegmt=True)


def next_access_time(body: Any) -> datetime | None:
    """The ``nextAccessTime`` of an API-gateway throttle body, e.g.
    ``{"code": "900804", "nextAccessTime": "2026-May-23 00:00:00+0000 UTC"}``."""
    if not isinstance(body, dict):
        return None
    raw = body.get("nextAccessTime")
    m = _NEXT_ACCESS.match(raw.strip()) if isinstance(raw, str) else None
    if m is None or m.group(2).lower() not in _MONTHS:
        return None
    year, _, day, hour, minute, second, offset = m.groups()
    try:
        moment = datetime(
            int(year), _MONTHS[m.group(2).lower()], int(day), int(hour), int(minute), int(second)
        )
    except ValueError:
        return None
    sign, digits = (offset or "+0000")[0], (offset or "+0000")[1:]
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (moment - delta if sign == "+" else moment + delta).replace(tzinfo=UTC)


def spare_requests(spent: int, quota: int, now: datetime, every: timedelta) -> int:
    """Requests that extra work (descriptions) may use today without starving the polls.

    The polls still due before the next UTC midnight (one each ``every``) keep one
    request each; what is left over may go to optional requests.
    """
    polls_left = math.ceil((next_utc_midnight(now) - now) / every)
    return max(quota - spent - polls_left, 0)
