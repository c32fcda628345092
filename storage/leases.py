"""The Store's leases: which replica fetches a source, which delivers an alert.

A claim reads the candidate rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` (on
PostgreSQL, replicas skip the rows another is claiming instead of waiting for it) and
then takes them with an UPDATE that repeats the claim's conditions. The repeated
conditions make the UPDATE itself the arbiter, so the claim is also exclusive where
``FOR UPDATE`` does not exist (SQLAlchemy drops it on SQLite, whose writers are
serialised anyway): whoever's UPDATE matches the row holds it.

Every write that ends a lease is conditional on the holder (and the claim's start),
so a replica whose lease ran out and was taken over cannot overwrite newer state.
Kept apart from store.py; :class:`storage.store.Store` inherits these methods.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor.errors import LeaseLost, StorageError
from storage.tables import AlertRow, SourceLease


@dataclass(frozen=True)
class SourceClaim:
    """A held source lease; ``next_due_at`` is recorded when the lease ends."""

    name: str
    holder: str
    claimed_at: datetime
    expires_at: datetime
    next_due_at: datetime


@dataclass(frozen=True)
class LeaseView:
    """One live or recent lease, for ``noticewatch status``."""

    kind: str  # source | alert
    subject: str  # the source name, or "<notifier> <alert id>"
    holder: str
    expires_at: datetime | None


class LeaseRecords(ABC):
    engine: Engine

    @abstractmethod
    def session(self) -> AbstractContextManager[Session]:
        """A session whose database errors surface as StorageError."""

    @abstractmethod
    def _insert_ignoring_duplicates(
        self, s: Session, table: type[Any], rows: Sequence[dict[str, Any]]
    ) -> int:
        """INSERT ... ON CONFLICT DO NOTHING."""

    # --- sources -------------------------------------------------------------------------

    def claim_source(
        self, name: str, holder: str, now: datetime, lease: timedelta, due_again: timedelta
    ) -> SourceClaim | None:
        """Take ``name`` for ``holder`` if it is due and nobody holds a live lease on it."""
        free = or_(col(SourceLease.holder).is_(None), col(SourceLease.expires_at) <= now)
        due = or_(col(SourceLease.next_due_at).is_(None), col(SourceLease.next_due_at) <= now)
        expires = now + lease
        claim = SourceClaim(name, holder, now, expires, now + due_again)
        taking = {"holder": holder, "claimed_at": now, "expires_at": expires}
        with self.session() as s:
            query = (
                select(SourceLease.name)
                .where(SourceLease.name == name, free, due)
                .with_for_update(skip_locked=True)
            )
            if s.exec(query).first() is None:
                # Not due, held, being claimed right now (skipped), or never seen: a
                # source's first claim creates its row, unless another replica just did.
                taken = self._insert_ignoring_duplicates(s, SourceLease, [{"name": name, **taking}])
            else:
                done = s.execute(
                    update(SourceLease)
                    .where(col(SourceLease.name) == name, free, due)
                    .values(**taking)
                )
                taken = int(done.rowcount or 0)  # type: ignore[attr-defined]
            if not taken:
                s.rollback()
                return None
            s.commit()
        return claim

    def held_until(self, name: str, now: datetime) -> datetime | None:
        """When the live lease on ``name`` runs out; None when nobody holds one."""
        with self.session() as s:
            query = select(SourceLease.expires_at).where(
                SourceLease.name == name,
                col(SourceLease.holder).is_not(None),
                col(SourceLease.expires_at) > now,
            )
            return s.exec(query).first()

    def renew_source(self, claim: SourceClaim, now: datetime, lease: timedelta) -> bool:
        """Extend a held lease; False when it was taken over (the run should stop)."""
        with self.session() as s:
            done = s.execute(
                update(SourceLease)
                .where(_held(claim))
                .values(expires_at=max(now + lease, claim.expires_at))
            )
            s.commit()
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def release_source(self, claim: SourceClaim) -> bool:
        """End a lease the run did not end in its own commit (a pause, an error)."""
        with self.session() as s:
            ended = self._end_source_lease(s, claim, strict=False)
            s.commit()
            return ended

    def _end_source_lease(self, s: Session, claim: SourceClaim | None, *, strict: bool) -> bool:
        """In ``s``: free the lease and record when the source is due again. With
        ``strict``, raise LeaseLost when the lease is no longer ours, so that the run's
        results roll back instead of overwriting the new holder's."""
        if claim is None:
            return True
        done = s.execute(
            update(SourceLease)
            .where(_held(claim))
            .values(
                holder=None,
                expires_at=None,
                next_due_at=claim.next_due_at,
                last_holder=claim.holder,
            )
        )
        ended = bool(done.rowcount)  # type: ignore[attr-defined]
        if not ended and strict:
            raise LeaseLost(
                f"lease: source {claim.name!r}: replica {claim.holder} lost its lease "
                f"(claimed {claim.claimed_at:%H:%M:%S}Z, expired {claim.expires_at:%H:%M:%S}Z) "
                "and another replica took the source over; this run's results are dropped",
                hint="a run longer than the lease means the fetch deadline is too short "
                "for this source, or the replica stalled",
            )
        return ended

    # --- outbox --------------------------------------------------------------------------

    def claim_alerts(
        self,
        notifier: str,
        holder: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        *,
        with_items: bool = True,
    ) -> list[AlertRow]:
        """Claim up to ``limit`` due alerts of ``notifier`` for ``holder``, oldest first:
        pending ones nobody holds, and those whose claim expired (a replica died)."""
        free = or_(col(AlertRow.claimed_by).is_(None), col(AlertRow.claim_expires_at) <= now)
        due = and_(
            col(AlertRow.status) == "pending",
            col(AlertRow.notifier) == notifier,
            col(AlertRow.next_attempt_at) <= now,
            free,
        )
        if not with_items:  # a digest notifier's item alerts wait for the digest
            due = and_(due, col(AlertRow.item_id).is_(None))
        expires = now + lease
        with self.session() as s:
            query = (
                select(AlertRow.id)
                .where(due)
                .order_by(col(AlertRow.next_attempt_at), col(AlertRow.created_at))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list(s.exec(query).all())
            if not ids:
                s.rollback()
                return []
            s.execute(
                update(AlertRow)
                .where(col(AlertRow.id).in_(ids), due)
                .values(claimed_by=holder, claim_expires_at=expires)
            )
            s.commit()
            mine = select(AlertRow).where(
                col(AlertRow.id).in_(ids),
                col(AlertRow.claimed_by) == holder,
                col(AlertRow.claim_expires_at) == expires,
            )
            rows = list(s.exec(mine).all())
        order = {ident: index for index, ident in enumerate(ids)}
        return sorted(rows, key=lambda row: order[row.id])

    def renew_alert(self, alert_id: str, holder: str, now: datetime, lease: timedelta) -> bool:
        """Extend ``holder``'s claim on a pending alert just before sending it; False
        when another replica took it over (or it is no longer pending)."""
        with self.session() as s:
            done = s.execute(
                update(AlertRow)
                .where(
                    col(AlertRow.id) == alert_id,
                    col(AlertRow.claimed_by) == holder,
                    col(AlertRow.status) == "pending",
                )
                .values(claim_expires_at=now + lease)
            )
            s.commit()
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def release_alerts(self, alert_ids: Sequence[str], holder: str) -> int:
        """Give back the claims ``holder`` did not use (a round stopped early)."""
        if not alert_ids:
            return 0
        with self.session() as s:
            done = s.execute(
                update(AlertRow)
                .where(col(AlertRow.id).in_(list(alert_ids)), col(AlertRow.claimed_by) == holder)
                .values(claimed_by=None, claim_expires_at=None)
            )
            s.commit()
            return int(done.rowcount or 0)  # type: ignore[attr-defined]

    @staticmethod
    def _end_claim(s: Session, alert_id: str, holder: str) -> None:
        """In ``s``: end ``holder``'s claim before recording its attempt, or raise
        LeaseLost. The UPDATE comes first, so it takes the row lock (and on SQLite the
        write lock) before anything is read."""
        done = s.execute(
            update(AlertRow)
            .where(col(AlertRow.id) == alert_id, col(AlertRow.claimed_by) == holder)
            .values(claimed_by=None, claim_expires_at=None)
        )
        if not done.rowcount:  # type: ignore[attr-defined]
            raise LeaseLost(
                f"lease: alert {alert_id}: replica {holder}'s claim ran out and another "
                "replica took the delivery over; this attempt is not recorded (a receiver "
                "that got it twice sees the same webhook-id)",
                hint="a delivery longer than its claim means the notifier's timeout is "
                "shorter than the time the send really took, or the replica stalled",
            )

    # --- one at a time across replicas -----------------------------------------------------

    @contextmanager
    def serialised(self, name: str, *, enabled: bool = True) -> Iterator[None]:
        """Hold the database-wide lock ``name`` for the block (PostgreSQL: a session
        advisory lock on its own connection; other replicas wait for it). For decisions
        made from reads and written later, such as dedupe's "is this event new?", which
        two replicas must not make at once. SQLite serialises writers already, and one
        process keeps such a block free of awaits, so nothing is taken there."""
        if not enabled or self.engine.dialect.name != "postgresql":
            yield
            return
        key = zlib.crc32(f"noticewatch:{name}".encode())
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
        except SQLAlchemyError as e:
            raise StorageError(f"storage: lock {name}: {type(e).__name__}: {e}") from e

    # --- status --------------------------------------------------------------------------

    def release_holders(self, holders: Sequence[str]) -> tuple[int, int]:
        """Free every source lease and alert claim of ``holders`` (replicas known to have
        ended); (sources, alerts) freed. A freed source stays due as it was."""
        if not holders:
            return 0, 0
        with self.session() as s:
            sources = s.execute(
                update(SourceLease)
                .where(col(SourceLease.holder).in_(list(holders)))
                .values(holder=None, expires_at=None, last_holder=SourceLease.holder)
            )
            alerts = s.execute(
                update(AlertRow)
                .where(col(AlertRow.claimed_by).in_(list(holders)))
                .values(claimed_by=None, claim_expires_at=None)
            )
            s.commit()
        return int(sources.rowcount or 0), int(alerts.rowcount or 0)  # type: ignore[attr-defined]

    def holders(self) -> list[str]:
        """Every replica holding a source lease or an alert claim, live or expired."""
        with self.session() as s:
            holder, claimer = col(SourceLease.holder), col(AlertRow.claimed_by)
            sources = s.execute(select(holder).where(holder.is_not(None)).distinct()).scalars()
            alerts = s.execute(select(claimer).where(claimer.is_not(None)).distinct()).scalars()
            found = {h for h in [*sources, *alerts] if h}
        return sorted(found)

    def leases(self, now: datetime) -> list[LeaseView]:
        """Every live lease: sources being fetched, alerts being delivered."""
        with self.session() as s:
            sources = s.exec(
                select(SourceLease)
                .where(col(SourceLease.holder).is_not(None))
                .order_by(col(SourceLease.name))
            ).all()
            alerts = s.exec(
                select(AlertRow)
                .where(col(AlertRow.claimed_by).is_not(None), col(AlertRow.status) == "pending")
                .order_by(col(AlertRow.notifier), col(AlertRow.id))
            ).all()
        found = [LeaseView("source", r.name, r.holder or "", r.expires_at) for r in sources]
        found.extend(
            LeaseView("alert", f"{a.notifier} {a.id}", a.claimed_by or "", a.claim_expires_at)
            for a in alerts
        )
        return found

    def last_holders(self) -> dict[str, str]:
        """The replica that last fetched each source."""
        with self.session() as s:
            rows = s.exec(
                select(SourceLease.name, SourceLease.last_holder).where(
                    col(SourceLease.last_holder).is_not(None)
                )
            ).all()
        return {name: holder for name, holder in rows if holder is not None}


def _held(claim: SourceClaim) -> Any:
    """The lease row as ``claim`` took it: same holder, same claim."""
    return and_(
        col(SourceLease.name) == claim.name,
        col(SourceLease.holder) == claim.holder,
        col(SourceLease.claimed_at) == claim.claimed_at,
    )
