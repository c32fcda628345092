"""Replicas sharing one database: who this replica is, and how long its leases last.

Each replica's APScheduler timer still fires for every source and notifier; the
database decides who does the work (``storage/leases.py``). This module holds only
the pure policy: the replica's id and the lease lengths, derived from the timeouts
that bound the work a lease covers.

Source lease
    ``3 x`` the fetch deadline (30s by default, so 90s): one request can take the
    whole deadline, and the holder renews the lease every third of its length while
    the run lasts, so a run of several requests (pages, detail pages) keeps it. A
    replica that dies stops renewing; the lease runs out within one lease length.
Delivery claim
    ``3 x`` the notifier's timeout (webhook default 15s, email 30s): at least twice
    the timeout, as the issue asks, plus one more for the bookkeeping around the
    send. The claim is renewed before each send of a batch.
Due again
    A source fetched at ``t`` is due again at ``t + every - jitter - margin``: the
    scheduler fires each timer up to one jitter late (never early), so the replica
    that fetched it may fire up to one jitter before ``t + every``; the margin
    covers the moment between the timer firing and the claim.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

REPLICA_ENV = "NOTICEWATCH_REPLICA_ID"
SOURCE_LEASE_FACTOR = 3
DELIVERY_LEASE_FACTOR = 3
MAX_JITTER = timedelta(seconds=60)
MAX_DUE_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True)
class Replica:
    """This process among the replicas: its id and the source lease length."""

    id: str = "local"
    source_lease: timedelta = timedelta(seconds=90)

    @property
    def renew_every(self) -> timedelta:
        return self.source_lease / 3


def replica_id(env: Mapping[str, str], hostname: str, pid: int) -> str:
    """``NOTICEWATCH_REPLICA_ID``, else ``<hostname>-<pid>-<6 hex digits>``: unique per
    process, so a restarted replica never mistakes the claims of its dead self for its own."""
    given = env.get(REPLICA_ENV, "").strip()
    if given:
        return given
    return f"{hostname or 'replica'}-{pid}-{secrets.token_hex(3)}"


def source_lease(deadline: timedelta) -> timedelta:
    return deadline * SOURCE_LEASE_FACTOR


def delivery_lease(timeout: timedelta) -> timedelta:
    return timeout * DELIVERY_LEASE_FACTOR


def source_jitter(every: timedelta) -> timedelta:
    """How late the scheduler may fire a source's timer (spreads the load on hosts)."""
    return min(every / 10, MAX_JITTER)


def due_again(every: timedelta) -> timedelta:
    """How long after a fetch starts the source is due again for any replica."""
    return every - source_jitter(every) - min(every / 20, MAX_DUE_MARGIN)
