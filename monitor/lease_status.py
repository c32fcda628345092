"""The replicas and leases part of ``noticewatch status``: a pure rendering of what
``Store.leases`` and ``Store.last_holders`` read."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from monitor.alerts import iso_utc
from storage.leases import LeaseView


def leases_report(
    leases: Sequence[LeaseView], last_holders: Mapping[str, str], now: datetime
) -> list[str]:
    """REPLICAS (every replica seen, what it holds now) and LEASES (each live one)."""
    if not leases and not last_holders:
        return []
    sources = Counter(lease.holder for lease in leases if lease.kind == "source")
    alerts = Counter(lease.holder for lease in leases if lease.kind == "alert")
    fetched = Counter(last_holders.values())
    lines = ["REPLICAS"]
    for replica in sorted(set(sources) | set(alerts) | set(fetched)):
        lines.append(
            f"  {replica}: fetching {sources[replica]} sources, delivering {alerts[replica]} "
            f"alerts now; fetched {fetched[replica]} sources last"
        )
    lines.append("LEASES")
    if not leases:
        lines.append("  none held")
    for lease in leases:
        lines.append(f"  {lease.kind} {lease.subject}: {lease.holder}, {_expiry(lease, now)}")
    return lines


def _expiry(lease: LeaseView, now: datetime) -> str:
    if lease.expires_at is None:
        return "no expiry"
    if lease.expires_at <= now:
        return f"EXPIRED at {iso_utc(lease.expires_at)} (the next replica to look takes it over)"
    left = (lease.expires_at - now).total_seconds()
    return f"until {iso_utc(lease.expires_at)} ({left:.0f}s left)"
