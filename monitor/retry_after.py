"""``Retry-After`` (RFC 9110): delta-seconds or an HTTP-date, as a bounded delay."""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime, timedelta

_DELTA_SECONDS = re.compile(r"^[0-9]{1,10}$")


def parse_retry_after(value: str | None, now: datetime, *, cap: timedelta) -> timedelta | None:
    """The delay ``value`` asks for, from ``now``, at most ``cap``.

    Garbage gives None (the caller falls back to its own backoff); a date in the past
    gives zero.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.match(text):
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = (_utc(when) - _utc(now)).total_seconds()
    return min(timedelta(seconds=max(seconds, 0.0)), cap)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
