"""The Store's delivery records: digests, notifier health, dead letters and replay.

Kept apart from store.py so each module stays one size; :class:`storage.store.Store`
inherits these methods and provides the session and the outbox insert they use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from monitor.digest import (
    EVENT_DIGEST,
    Pending,
    digest_data,
    digest_id,
    refreshed,
    split_digest,
)
from monitor.system import SystemDraft
from storage.tables import AlertRow, DeliveryAttempt, NotifierState


class DeliveryRecords(ABC):
    @abstractmethod
    def session(self) -> AbstractContextManager[Session]:
        """A session whose database errors surface as StorageError."""

    @abstractmethod
    def _insert_ignoring_duplicates(
        self, s: Session, table: type[Any], rows: Sequence[dict[str, Any]]
    ) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; the number of rows inserted."""

    def _notifier_state(self, s: Session, name: str, fingerprint: str) -> NotifierState:
        """The notifier's row, created if missing, locked until ``s`` ends (on PostgreSQL),
        so that replicas working the same notifier wait for each other instead of
        failing on a duplicate key or building one digest slot twice."""
        self._insert_ignoring_duplicates(
            s, NotifierState, [{"name": name, "fingerprint": fingerprint}]
        )
        query = select(NotifierState).where(NotifierState.name == name).with_for_update()
        return s.exec(query.execution_options(populate_existing=True)).one()

    @abstractmethod
    def _insert_system(self, s: Session, drafts: Sequence[SystemDraft], now: datetime) -> int:
        """Insert system messages into the outbox within ``s``."""

    def queue_system(self, drafts: Sequence[SystemDraft], now: datetime) -> int:
        """Write system messages to the outbox (e.g. ``notifier.disabled``)."""
        with self.session() as s:
            count = self._insert_system(s, drafts, now)
            s.commit()
            return count

    def make_digest(self, notifier: str, slot: datetime, now: datetime) -> list[str]:
        """Gather the notifier's waiting alerts into one ``alert.digest`` for ``slot``.

        One transaction: the digest row is queued and its alerts are marked
        ``digested`` together, so no alert is in two digests. More than
        ``MAX_DIGEST_ALERTS`` are split into parts. Returns the digest ids, none when
        the slot was handled already or nothing was waiting. The first slot ever seen
        only starts the clock.
        """
        with self.session() as s:
            state = self._notifier_state(s, notifier, "")
            previous = state.digest_slot
            if previous is not None and previous >= slot:
                return []
            state.digest_slot = slot
            s.add(state)
            waiting: list[AlertRow] = []
            if previous is not None:
                query = select(AlertRow).where(
                    AlertRow.status == "pending",
                    AlertRow.notifier == notifier,
                    col(AlertRow.item_id).is_not(None),
                    col(AlertRow.created_at) <= slot,
                )
                waiting = list(s.exec(query).all())
            by_id = {a.id: a for a in waiting}
            pending = [
                Pending(a.id, (a.rules or ["(none)"])[0], a.created_at, a.data) for a in waiting
            ]
            parts = split_digest(pending)
            idents = []
            for number, part in enumerate(parts, start=1):
                ident = digest_id(notifier, slot, number)
                idents.append(ident)
                data = digest_data(ident, part, previous, slot, number, len(parts))
                members = [by_id[p.alert_id] for p in part]
                rules = list(dict.fromkeys(rule for a in members for rule in a.rules))
                s.add(
                    AlertRow(
                        id=ident, item_id=None, notifier=notifier, event_type=EVENT_DIGEST,
                        rules=rules, data=data, status="pending", attempts=0,
                        created_at=now, next_attempt_at=now,
                    )
                )  # fmt: skip
                for alert in members:
                    alert.status = "digested"
                    alert.digest_id = ident
                    s.add(alert)
            s.commit()
            return idents

    def digest_payload(self, digest: AlertRow) -> dict[str, Any]:
        """The data of ``digest`` as it goes out now: its alerts as they are stored now."""
        with self.session() as s:
            query = select(AlertRow).where(AlertRow.digest_id == digest.id)
            current = {row.id: row.data for row in s.exec(query).all()}
        return refreshed(digest.data, current)

    def notifier_failing(
        self, name: str, fingerprint: str, now: datetime, max_gap: timedelta | None = None
    ) -> datetime:
        """Note a failed attempt; returns when the notifier started failing continuously.

        With ``max_gap``, failures further apart than that (nothing was tried in between:
        the queue was empty) are two episodes, not one continuous failure.
        """
        with self.session() as s:
            row = self._notifier_state(s, name, fingerprint)
            since = row.failing_since
            if since is not None and max_gap is not None:
                last = s.exec(
                    select(func.max(DeliveryAttempt.at)).where(DeliveryAttempt.notifier == name)
                ).one()
                if last is not None and now - last > max_gap:
                    since = None
            if since is None:
                since = row.failing_since = now
                s.add(row)
                s.commit()
            return since

    def notifier_succeeded(self, name: str) -> None:
        """A delivery went through: the notifier is no longer failing continuously."""
        with self.session() as s:
            s.execute(
                update(NotifierState)
                .where(
                    col(NotifierState.name) == name,
                    col(NotifierState.failing_since).is_not(None),
                )
                .values(failing_since=None)
            )
            s.commit()

    def enable_notifier(self, name: str, now: datetime) -> bool:
        """Turn ``name`` back on and make its held alerts due now; False if it was not off."""
        with self.session() as s:
            row = s.get(NotifierState, name)
            was_disabled = row is not None and row.disabled_at is not None
            if row is not None:
                row.disabled_at = None
                row.disabled_reason = None
                row.failing_since = None
                s.add(row)
            s.execute(
                update(AlertRow)
                .where(
                    col(AlertRow.status) == "pending",
                    col(AlertRow.notifier) == name,
                    col(AlertRow.next_attempt_at) > now,
                )
                .values(next_attempt_at=now)
            )
            s.commit()
            return was_disabled

    def deliveries(
        self, *, dead: bool = False, notifier: str | None = None, limit: int = 200
    ) -> list[AlertRow]:
        """Outbox rows, newest first; only dead letters with ``dead``."""
        with self.session() as s:
            query = select(AlertRow)
            if dead:
                query = query.where(AlertRow.status == "dead")
            if notifier is not None:
                query = query.where(AlertRow.notifier == notifier)
            query = query.order_by(col(AlertRow.created_at).desc(), col(AlertRow.id)).limit(limit)
            return list(s.exec(query).all())

    def replay(
        self, now: datetime, *, alert_id: str | None = None, notifier: str | None = None
    ) -> list[AlertRow]:
        """Queue again, with the same id: one alert (any state), or every dead letter.

        An alert that went out in a digest is replayed by replaying that digest, so it
        is never in two different digests. Attempts restart from zero; the history of
        earlier attempts stays in ``delivery_attempts``.
        """
        with self.session() as s:
            if alert_id is not None:
                row = s.get(AlertRow, alert_id)
                if row is None or (notifier is not None and row.notifier != notifier):
                    return []
                if row.status == "digested" and row.digest_id is not None:
                    row = s.get(AlertRow, row.digest_id) or row
                rows = [row]
            else:
                query = select(AlertRow).where(AlertRow.status == "dead")
                if notifier is not None:
                    query = query.where(AlertRow.notifier == notifier)
                rows = list(s.exec(query).all())
            for row in rows:
                row.status = "pending"
                row.attempts = 0
                row.next_attempt_at = now
                row.delivered_at = None
                s.add(row)
            s.commit()
            return rows
