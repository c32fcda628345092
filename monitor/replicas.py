"""Replicas sharing one database: who this replica is, and how long its leases last.

Each replica's APScheduler timer still fires for every source and notifier; the
database decides who does the work (``storage/leases.py``). This module holds only
the pure policy: the replica's id and the lease lengths, derived from the timeouts
that bound the work a lease covers.

Source lease
    ``3 x`` the source's ``timeout``, the deadline of one request (30s for RSS and
    HTML, 60s for the APIs): one request can take the whole deadline, and the holder
    renews the lease every third of its length while
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

import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

REPLICA_ENV = "NOTICEWATCH_REPLICA_ID"
SOURCE_LEASE_FACTOR = 3
DELIVERY_LEASE_FACTOR = 3
MAX_JITTER = timedelta(seconds=60)
MAX_DUE_MARGIN = timedelta(seconds=5)


@dataclass(frozen=True)
class Replica:
    """This process among the replicas."""

    id: str = "local"


def replica_id(env: Mapping[str, str], hostname: str, pid: int) -> str:
    """``NOTICEWATCH_REPLICA_ID``, else ``<hostname>-<pid>-<6 hex digits>``: unique per
    process, so a restarted replica never mistakes the claims of its dead self for its own."""
    given = env.get(REPLICA_ENV, "").strip()
    if given:
        return given
    return f"{hostname or 'replica'}-{pid}-{secrets.token_hex(3)}"


def gone_from_this_host(
    holders: Iterable[str], hostname: str, pid: int, alive: Callable[[int], bool]
) -> list[str]:
    """The holders among ``holders`` that were processes of this host and have ended.

    Only generated ids (``<hostname>-<pid>-<6 hex>``) can be judged: the pid of one of
    this host's is either gone, or is this very process under another id (a restarted
    container, where the service is always PID 1). Their leases and claims can be taken
    at once instead of after they expire: the single replica of a small deployment
    restarting after a crash would otherwise wait out its own dead claims. An id set
    with ``NOTICEWATCH_REPLICA_ID``, or another host's, waits for expiry as before.
    """
    gone = []
    for holder in holders:
        parts = holder.rsplit("-", 2)
        if len(parts) != 3:
            continue
        host, number, token = parts
        if host != hostname or not number.isdigit() or len(token) != 6:
            continue
        if int(number) == pid or not alive(int(number)):
            gone.append(holder)
    return gone


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        return True
    # A killed process its parent has not reaped yet still answers signals: a zombie.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here, or it ended meanwhile
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def source_lease(deadline: timedelta) -> timedelta:
    return deadline * SOURCE_LEASE_FACTOR


def renew_every(lease: timedelta) -> timedelta:
    return lease / SOURCE_LEASE_FACTOR


def delivery_lease(timeout: timedelta) -> timedelta:
    return timeout * DELIVERY_LEASE_FACTOR


def source_jitter(every: timedelta) -> timedelta:
    """How late the scheduler may fire a source's timer (spreads the load on hosts)."""
    return min(every / 10, MAX_JITTER)


def due_again(every: timedelta) -> timedelta:
    """How long after a fetch starts the source is due again for any replica."""
    return every - source_jitter(every) - min(every / 20, MAX_DUE_MARGIN)
