"""The Store: items, source state and the alert outbox, each change in one transaction.

New, updated and already-seen items are told apart by the (source, item_key) unique
constraint and the versioned content hash; inserts use ``ON CONFLICT DO NOTHING`` so
that two writers (or a retried poll) never create duplicates.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, func, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor.alerts import AlertDraft
from monitor.dedupe import DedupeOutcome, Event, History
from monitor.dedupe.fingerprint import KeyQuery
from monitor.errors import StorageError
from monitor.history import item_from_row
from monitor.models import Item
from monitor.sources.base import Fetched, FetchState
from monitor.system import (
    EVENT_SOURCE_FAILING,
    EVENT_SOURCE_RECOVERED,
    HealthPolicy,
    SystemDraft,
    source_failing_data,
    source_recovered_data,
)
from storage.commonkeys import CommonKeys, common_new_keys
from storage.db import conflict_insert, storage_hint
from storage.dedupe import (
    DEDUPE_MERGE_ROWS,
    DEDUPE_MID_ROWS,
    count_keys,
    load_events,
    load_history,
    merge_mid_keys,
    merge_new_keys,
    recent_events,
    record_outcome,
)
from storage.keyfilter import KeyFilter
from storage.leases import LeaseRecords, SourceClaim
from storage.outbox import DeliveryRecords
from storage.tables import (
    AlertRow,
    DedupeMidKey,
    DedupeNewKey,
    DeliveryAttempt,
    ItemRow,
    Meta,
    NotifierState,
    SourceState,
    Subscription,
)

_CHUNK = 500


class Change(enum.Enum):
    NEW = "new"
    UPDATED = "updated"


@dataclass(frozen=True)
class SourceSnapshot:
    fetch: FetchState
    baselined: bool
    paused_until: datetime | None = None


@dataclass(frozen=True)
class IngestCounts:
    new: int = 0
    updated: int = 0
    seen: int = 0
    alerts: int = 0


class Store(DeliveryRecords, LeaseRecords):
    """All database access of noticewatch. Methods are short transactions."""

    def __init__(
        self,
        engine: Engine,
        dedupe_merge_rows: int = DEDUPE_MERGE_ROWS,
        dedupe_mid_rows: int = DEDUPE_MID_ROWS,
    ) -> None:
        self.engine = engine
        self.dedupe_merge_rows = dedupe_merge_rows
        self.dedupe_mid_rows = dedupe_mid_rows
        # Rows in dedupe_new_keys as far as this process knows: counted once, then kept
        # up by what it writes (another replica's rows only make a merge come later).
        self._new_keys: int | None = None
        self.key_filter = KeyFilter()
        self.common_keys = CommonKeys()

    @contextmanager
    def session(self) -> Iterator[Session]:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                yield session
        except SQLAlchemyError as e:
            detail = str(getattr(e, "orig", None) or e).splitlines()[0]
            raise StorageError(
                f"storage: {type(e).__name__}: {detail}", hint=storage_hint(e)
            ) from e

    # --- sources -------------------------------------------------------------------------

    def snapshot(self, source: str, identity: str = "") -> SourceSnapshot:
        """What to send and whether to alert; a source whose identity changed starts afresh."""
        with self.session() as s:
            row = s.get(SourceState, source)
        if row is None or row.identity != identity:
            return SourceSnapshot(FetchState(), baselined=False)
        return SourceSnapshot(
            FetchState(row.etag, row.last_modified, row.body_hash, row.last_success_at),
            baselined=row.baselined,
            paused_until=row.paused_until,
        )

    def known_hashes(self, source: str, keys: Sequence[str]) -> dict[str, str]:
        """content_hash by item_key for the keys already stored for ``source``."""
        return self._by_key(source, keys, col(ItemRow.content_hash))

    def item_versions(self, source: str, keys: Sequence[str]) -> dict[str, int]:
        """The stored version (1, then one more per amendment) of each of ``keys``."""
        return self._by_key(source, keys, col(ItemRow.version))

    def _by_key(self, source: str, keys: Sequence[str], column: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        with self.session() as s:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                query = select(ItemRow.item_key, column).where(
                    ItemRow.source == source, col(ItemRow.item_key).in_(chunk)
                )
                found.update({key: value for key, value in s.exec(query)})
        return found

    def stored_items(self, source: str, keys: Sequence[str]) -> dict[str, Item]:
        """The stored version of each of ``keys`` (to tell what an amendment changed)."""
        found: dict[str, Item] = {}
        with self.session() as s:
            for start in range(0, len(keys), _CHUNK):
                query = select(ItemRow).where(
                    ItemRow.source == source,
                    col(ItemRow.item_key).in_(keys[start : start + _CHUNK]),
                )
                found.update({row.item_key: item_from_row(row) for row in s.exec(query)})
        return found

    def alerted_notifiers(self, source: str, keys: Sequence[str]) -> dict[str, set[str]]:
        """The notifiers that already have an alert about each of ``keys``."""
        found: dict[str, set[str]] = {}
        with self.session() as s:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                query = (
                    select(ItemRow.item_key, AlertRow.notifier)
                    .join(AlertRow, col(AlertRow.item_id) == col(ItemRow.id))
                    .where(ItemRow.source == source, col(ItemRow.item_key).in_(chunk))
                    .distinct()
                )
                for key, notifier in s.exec(query):
                    found.setdefault(key, set()).add(notifier)
        return found

    def record_fetch(
        self,
        source: str,
        source_type: str,
        fetched: Fetched,
        outcome: str,
        now: datetime,
        identity: str = "",
        health: HealthPolicy | None = None,
        paused_until: datetime | None = None,
        lease: SourceClaim | None = None,
    ) -> None:
        """A successful fetch that changed nothing (304, or a byte-identical body)."""
        with self.session() as s:
            row = self._state(s, source, source_type, identity)
            row.etag = fetched.etag or row.etag
            row.last_modified = fetched.last_modified or row.last_modified
            self._recovered(s, row, health, now)
            self._succeeded(row, outcome, now)
            row.paused_until = paused_until
            s.add(row)
            self._end_source_lease(s, lease, strict=True)
            s.commit()

    def record_pause(
        self,
        source: str,
        source_type: str,
        reason: str,
        now: datetime,
        paused_until: datetime | None,
        identity: str = "",
        lease: SourceClaim | None = None,
    ) -> None:
        """The source waits for its quota: paused with the reason, neither a failure
        (no ``source.failing``) nor a success (a failure streak stays as it was)."""
        with self.session() as s:
            row = self._state(s, source, source_type, identity)
            row.last_fetch_at = now
            row.last_outcome = "paused"
            row.last_error = reason
            row.paused_until = paused_until
            s.add(row)
            self._end_source_lease(s, lease, strict=True)
            s.commit()

    def record_failure(
        self,
        source: str,
        source_type: str,
        error: str,
        now: datetime,
        paused_until: datetime | None = None,
        identity: str = "",
        health: HealthPolicy | None = None,
        lease: SourceClaim | None = None,
    ) -> int:
        """Count a failed fetch or parse; returns the consecutive failures so far.

        The failure that reaches ``health.failing_after`` in a row queues one
        ``source.failing`` message, in this transaction; later ones queue nothing.
        """
        with self.session() as s:
            row = self._state(s, source, source_type, identity)
            row.last_fetch_at = now
            row.last_outcome = "error"
            row.last_error = error
            row.paused_until = paused_until
            row.fetches += 1
            row.failures += 1
            row.consecutive_failures += 1
            if (
                health is not None
                and row.failing_since is None
                and row.consecutive_failures >= health.failing_after
            ):
                row.failing_since = now
                data = source_failing_data(
                    source, source_type, row.consecutive_failures, now, error
                )
                self._insert_system(s, health.plan(EVENT_SOURCE_FAILING, source, now, data), now)
            s.add(row)
            self._end_source_lease(s, lease, strict=True)
            s.commit()
            return row.consecutive_failures

    def commit_batch(
        self,
        source: str,
        source_type: str,
        fetched: Fetched,
        items: Sequence[Item],
        changes: Sequence[tuple[Item, Change]],
        drafts: Sequence[AlertDraft],
        now: datetime,
        identity: str = "",
        health: HealthPolicy | None = None,
        dedupe: DedupeOutcome | None = None,
        paused_until: datetime | None = None,
        lease: SourceClaim | None = None,
    ) -> IngestCounts:
        """Items, alerts and the source's new validators: one transaction, all or nothing.

        ``dedupe`` (keys of the new items, links to earlier copies, ``also_seen_in``
        additions to earlier alerts) is written in the same transaction, and so is the
        end of ``lease`` (LeaseLost, and nothing written, if another replica took over).
        """
        with self.session() as s:
            # First, so that the lease row is locked before anything else is written.
            self._end_source_lease(s, lease, strict=True)
            new = [item for item, change in changes if change is Change.NEW]
            updated = [item for item, change in changes if change is Change.UPDATED]
            inserted = self._insert_items(s, new, now)  # item key -> id of those written
            for item in updated:
                s.execute(
                    update(ItemRow)
                    .where(col(ItemRow.source) == source, col(ItemRow.item_key) == item.key)
                    .values(**_item_values(item), version=ItemRow.version + 1, updated_at=now)
                )
            changed_keys = {item.key for item, _ in changes}
            seen_keys = [item.key for item in items if item.key not in changed_keys]
            for start in range(0, len(seen_keys), _CHUNK):
                s.execute(
                    update(ItemRow)
                    .where(
                        col(ItemRow.source) == source,
                        col(ItemRow.item_key).in_(seen_keys[start : start + _CHUNK]),
                    )
                    .values(last_seen=now)
                )
            alerts = self._insert_alerts(s, source, drafts, now)
            written: list[int] = []
            if dedupe is not None:
                written = record_outcome(
                    s, source, dedupe, now, self._insert_ignoring_duplicates, inserted
                )
                self._merge_keys_when_due(s, len(written))
            stamp = self.key_filter.stamp(s) if written else None
            row = self._state(s, source, source_type, identity)
            row.etag = fetched.etag
            row.last_modified = fetched.last_modified
            row.body_hash = fetched.body_hash
            row.baselined = True
            self._recovered(s, row, health, now)
            self._succeeded(row, "ok", now)
            row.paused_until = paused_until  # a result cut short by a quota
            s.add(row)
            s.commit()
        if stamp is not None:
            self.key_filter.committed(stamp, written)
        return IngestCounts(
            new=len(inserted), updated=len(updated), seen=len(seen_keys), alerts=alerts
        )

    def _merge_keys_when_due(self, s: Session, written: int) -> None:
        """Merge dedupe_new_keys into dedupe_mid_keys, in this transaction, once it holds
        ``dedupe_merge_rows`` rows, and dedupe_mid_keys into dedupe_keys once that holds
        ``dedupe_mid_rows``: a failed commit keeps them waiting, never half-moved. The
        keys many of the merged rows share are noted first (``storage.commonkeys``)."""
        if not written:
            return
        if self._new_keys is None:
            self._new_keys = count_keys(s, DedupeNewKey)  # the rows just written included
        else:
            self._new_keys += written
        if self._new_keys < self.dedupe_merge_rows:
            return
        self.common_keys.add(common_new_keys(s))
        # Counted, not kept up: another replica's merges fill the middle table too.
        if merge_new_keys(s) and count_keys(s, DedupeMidKey) >= self.dedupe_mid_rows:
            merge_mid_keys(s)
        self._new_keys = 0

    def _insert_items(self, s: Session, items: Sequence[Item], now: datetime) -> dict[str, int]:
        """Insert the new ``items`` (one already stored is left as it is); the id of each
        one written, by item key, returned by the insert itself: reading them back cost a
        query a source (bench/README.md, twenty-sixth session)."""
        if not items:
            return {}
        rows = [
            {
                "source": item.source,
                "source_type": item.source_type,
                "item_key": item.key,
                "version": 1,
                "first_seen": now,
                "last_seen": now,
                **_item_values(item),
            }
            for item in items
        ]
        core = ItemRow.__table__  # type: ignore[attr-defined]
        insert = conflict_insert(self.engine.dialect.name, core).on_conflict_do_nothing()
        stmt = insert.returning(core.c.item_key, core.c.id)
        return {key: ident for key, ident in s.execute(stmt, rows).all()}

    def _insert_alerts(
        self, s: Session, source: str, drafts: Sequence[AlertDraft], now: datetime
    ) -> int:
        if not drafts:
            return 0
        keys = list({d.item_key for d in drafts})
        ids: dict[str, int | None] = {}
        for start in range(0, len(keys), _CHUNK):
            query = select(ItemRow.item_key, ItemRow.id).where(
                ItemRow.source == source, col(ItemRow.item_key).in_(keys[start : start + _CHUNK])
            )
            ids.update(s.exec(query).all())
        rows = [
            {
                "id": d.alert_id,
                "item_id": ids[d.item_key],
                "notifier": d.notifier,
                "event_type": d.event_type,
                "rules": list(d.rules),
                "data": d.data,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for d in drafts
        ]
        return self._insert_ignoring_duplicates(s, AlertRow, rows)

    def _insert_ignoring_duplicates(
        self, s: Session, table: type[Any], rows: Sequence[dict[str, Any]]
    ) -> int:
        """INSERT ... ON CONFLICT DO NOTHING; the number of rows actually inserted.

        One cached statement run over many parameter sets (SQLAlchemy batches them as
        "insertmanyvalues"), so a poll does not recompile SQL per source; RETURNING
        counts the rows that were new on every database. The statement is on the Core
        table, not the ORM class: the ORM's bulk-insert bookkeeping was a fifth to a third
        of the CPU of inserting a source's 50 items (bench/README.md, twenty-third session).
        """
        if not rows:
            return 0
        core = table.__table__
        primary = next(iter(core.primary_key.columns))
        stmt = (
            conflict_insert(self.engine.dialect.name, core)
            .on_conflict_do_nothing()
            .returning(primary)
        )
        return len(s.execute(stmt, list(rows)).all())

    @staticmethod
    def _state(s: Session, source: str, source_type: str, identity: str) -> SourceState:
        """The source's row; a source pointed elsewhere (new identity) starts afresh."""
        row = s.get(SourceState, source) or SourceState(name=source, type=source_type)
        if row.identity != identity:
            row.identity = identity
            row.etag = row.last_modified = row.body_hash = None
            row.baselined = False
        return row

    def _recovered(
        self, s: Session, row: SourceState, health: HealthPolicy | None, now: datetime
    ) -> None:
        """Queue ``source.recovered`` if ``source.failing`` went out for this episode."""
        if row.failing_since is None:
            return
        if health is not None:
            since = row.failing_since
            data = source_recovered_data(row.name, row.type, row.consecutive_failures, since, now)
            self._insert_system(s, health.plan(EVENT_SOURCE_RECOVERED, row.name, since, data), now)
        row.failing_since = None

    def _insert_system(self, s: Session, drafts: Sequence[SystemDraft], now: datetime) -> int:
        rows = [
            {
                "id": d.alert_id,
                "item_id": None,
                "notifier": d.notifier,
                "event_type": d.event_type,
                "rules": list(d.data.get("rules", [])),
                "data": d.data,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for d in drafts
        ]
        return self._insert_ignoring_duplicates(s, AlertRow, rows)

    @staticmethod
    def _succeeded(row: SourceState, outcome: str, now: datetime) -> None:
        row.last_fetch_at = now
        row.last_success_at = now
        row.last_outcome = outcome
        row.last_error = None
        row.paused_until = None
        row.consecutive_failures = 0
        row.fetches += 1

    # --- outbox --------------------------------------------------------------------------

    def due_alerts(
        self, notifier: str, now: datetime, limit: int = 100, *, with_items: bool = True
    ) -> list[AlertRow]:
        """Pending deliveries due now; ``with_items=False`` leaves out the item alerts
        (a digest notifier's alerts wait for its digest; health messages do not)."""
        with self.session() as s:
            query = select(AlertRow).where(
                AlertRow.status == "pending",
                AlertRow.notifier == notifier,
                col(AlertRow.next_attempt_at) <= now,
            )
            if not with_items:
                query = query.where(col(AlertRow.item_id).is_(None))
            query = query.order_by(col(AlertRow.next_attempt_at), col(AlertRow.created_at))
            return list(s.exec(query.limit(limit)).all())

    def next_due(self, notifier: str) -> datetime | None:
        with self.session() as s:
            query = select(func.min(AlertRow.next_attempt_at)).where(
                AlertRow.status == "pending", AlertRow.notifier == notifier
            )
            value: datetime | None = s.exec(query).one()
            return value

    def record_attempt(
        self,
        alert: AlertRow,
        *,
        outcome: str,
        status: str,
        now: datetime,
        next_attempt_at: datetime | None,
        status_code: int | None,
        error: str | None,
        duration: float,
        count_attempt: bool = True,
        holder: str | None = None,
    ) -> None:
        """Record one attempt and move the alert to ``status`` (pending/delivered/dead).

        With ``holder``, only while that replica still holds the alert's claim (which
        ends here); LeaseLost, and nothing recorded, once another replica took it over.
        """
        with self.session() as s:
            if holder is not None:
                self._end_claim(s, alert.id, holder)
            row = s.get(AlertRow, alert.id)
            if row is None:
                raise StorageError(f"storage: alert {alert.id} vanished from the outbox")
            if count_attempt:
                row.attempts += 1
            row.status = status
            row.last_status = status_code
            row.last_error = error
            if status == "delivered":
                row.delivered_at = now
            if next_attempt_at is not None:
                row.next_attempt_at = next_attempt_at
            s.add(row)
            s.add(
                DeliveryAttempt(
                    alert_id=row.id,
                    notifier=row.notifier,
                    attempt=row.attempts,
                    at=now,
                    outcome=outcome,
                    status_code=status_code,
                    error=error,
                    duration_ms=round(duration * 1000),
                )
            )
            s.commit()

    def postpone(self, notifier: str, now: datetime, until: datetime) -> int:
        """Hold every alert of ``notifier`` due before ``until`` (its endpoint is failing)."""
        with self.session() as s:
            result = s.execute(
                update(AlertRow)
                .where(
                    col(AlertRow.status) == "pending",
                    col(AlertRow.notifier) == notifier,
                    col(AlertRow.next_attempt_at) < until,
                )
                .values(next_attempt_at=until)
            )
            s.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # --- notifiers -----------------------------------------------------------------------

    def notifier_disabled(self, name: str, fingerprint: str) -> str | None:
        """The reason ``name`` is disabled, or None; a changed config re-enables it."""
        with self.session() as s:
            row = s.get(NotifierState, name)
            if row is None or row.disabled_at is None:
                return None
            if row.fingerprint != fingerprint:
                row.disabled_at = None
                row.disabled_reason = None
                row.failing_since = None  # as `enable` does: the 5-day clock starts again
                s.add(row)
                s.commit()
                return None
            return row.disabled_reason

    def disable_notifier(
        self,
        name: str,
        fingerprint: str,
        reason: str,
        now: datetime,
        announce: Sequence[SystemDraft] = (),
    ) -> None:
        """Disable ``name`` and queue ``announce`` (notifier.disabled) in one transaction.

        Once: a replica that finds it already disabled (another replica's round met the
        same failure) announces nothing again.
        """
        with self.session() as s:
            row = self._notifier_state(s, name, fingerprint)
            if row.disabled_at is not None and row.fingerprint == fingerprint:
                return
            row.fingerprint = fingerprint
            row.disabled_at = now
            row.disabled_reason = reason
            s.add(row)
            self._insert_system(s, announce, now)
            s.commit()

    # --- dedupe --------------------------------------------------------------------------

    def dedupe_history(
        self, queries: Sequence[KeyQuery], since: datetime, min_bands: int, site: str = ""
    ) -> History:
        """The stored items (since ``since``) that share an exact key, or ``min_bands``
        band keys, with one of ``queries`` (``Fingerprint.query`` of each new item), and
        their events; ``site`` is the site of every new item, if they share one
        (``storage.dedupe.load_history``)."""
        with self.session() as s:
            keys = sum(len(query.exact) + len(query.bands) for query in queries)
            stored = self.key_filter.usable(s, since, keys)
            return load_history(s, queries, since, min_bands, site, stored, self.common_keys)

    def dedupe_events(self, source: str, keys: Sequence[str]) -> dict[str, Event]:
        """The events the stored items ``keys`` of ``source`` belong to, by item key."""
        with self.session() as s:
            return load_events(s, source, keys)

    def recent_events(
        self, since: datetime, limit: int = 10
    ) -> list[tuple[ItemRow, list[ItemRow]]]:
        """Events seen more than once since ``since``: (first copy, later copies)."""
        with self.session() as s:
            return recent_events(s, since, limit)

    # --- status --------------------------------------------------------------------------

    def source_states(self) -> list[SourceState]:
        with self.session() as s:
            return list(s.exec(select(SourceState).order_by(col(SourceState.name))).all())

    def item_counts(self) -> dict[str, int]:
        with self.session() as s:
            query = select(ItemRow.source, func.count()).group_by(col(ItemRow.source))
            return {source: count for source, count in s.exec(query).all()}

    # --- stored history (test-rule, explain, check --diff) ----------------------------------

    def count_items(self, since: datetime | None = None, source: str | None = None) -> int:
        with self.session() as s:
            query = _history(select(func.count()).select_from(ItemRow), since, source)
            return int(s.exec(query).one())

    def iter_items(
        self, since: datetime | None = None, source: str | None = None
    ) -> Iterator[ItemRow]:
        """Stored items (latest version), oldest first, read in chunks of _CHUNK rows."""
        last = 0
        while True:
            with self.session() as s:
                query = _history(select(ItemRow), since, source).where(col(ItemRow.id) > last)
                rows = s.exec(query.order_by(col(ItemRow.id)).limit(_CHUNK)).all()
            if not rows:
                return
            yield from rows
            last = rows[-1].id or last

    def items_by_key(self, key: str, source: str | None = None) -> list[ItemRow]:
        with self.session() as s:
            query = select(ItemRow).where(ItemRow.item_key == key)
            if source is not None:
                query = query.where(ItemRow.source == source)
            return list(s.exec(query.order_by(col(ItemRow.source))).all())

    def alert_counts(self) -> dict[tuple[str, str], int]:
        """Alerts by (notifier, status)."""
        with self.session() as s:
            query = select(AlertRow.notifier, AlertRow.status, func.count()).group_by(
                col(AlertRow.notifier), col(AlertRow.status)
            )
            return {(n, st): c for n, st, c in s.exec(query).all()}

    def disabled_notifiers(self) -> dict[str, str]:
        with self.session() as s:
            query = select(NotifierState).where(col(NotifierState.disabled_at).is_not(None))
            return {row.name: row.disabled_reason or "" for row in s.exec(query).all()}

    # --- service and API (issue 7) -------------------------------------------------------

    def ping(self) -> None:
        """Raise StorageError unless the database answers a query."""
        with self.session() as s:
            s.execute(select(1))

    def oldest_pending(self) -> dict[str, datetime]:
        """The creation time of the oldest pending alert, by notifier."""
        with self.session() as s:
            query = (
                select(AlertRow.notifier, func.min(AlertRow.created_at))
                .where(AlertRow.status == "pending")
                .group_by(col(AlertRow.notifier))
            )
            rows = s.exec(query).all()
        # func.min() loses the column type on SQLite: read the stored text back as UTC.
        return {name: _utc(value) for name, value in rows if value is not None}

    def recent_alerts(
        self, since: datetime | None, limit: int, rule: str | None = None
    ) -> list[AlertRow]:
        """Alerts newest first, created at or after ``since``, for ``rule`` if given."""
        with self.session() as s:
            query = select(AlertRow).order_by(col(AlertRow.created_at).desc()).limit(limit)
            if since is not None:
                query = query.where(col(AlertRow.created_at) >= since)
            if rule is not None:
                # The JSON list's text holds "<rule>" with its quotes on SQLite and
                # PostgreSQL alike. Rule names hold no % or quote, but the reserved
                # source_health has LIKE's "_", which would also find "source-health".
                pattern = '%"' + rule.replace("_", "\\_") + '"%'
                query = query.where(cast(col(AlertRow.rules), Text).like(pattern, escape="\\"))
            return list(s.exec(query).all())

    def subscriptions(self) -> list[Subscription]:
        with self.session() as s:
            query = select(Subscription).order_by(col(Subscription.created_at))
            return list(s.exec(query).all())

    def add_subscription(self, subscription: Subscription) -> None:
        with self.session() as s:
            s.add(subscription)
            s.commit()

    def remove_subscription(self, ident: str, now: datetime) -> bool:
        """Delete a subscription; its undelivered alerts become dead (kept for the record)."""
        with self.session() as s:
            row = s.get(Subscription, ident)
            if row is None:
                return False
            s.delete(row)
            _retire_pending(s, ident)
            s.commit()
            return True

    def retire_pending(self, ident: str) -> None:
        """Mark the pending alerts of a deleted subscription dead (a fetch that began
        before the delete may have queued some after it)."""
        with self.session() as s:
            _retire_pending(s, ident)
            s.commit()

    def get_meta(self, key: str) -> str | None:
        with self.session() as s:
            row = s.get(Meta, key)
            return row.value if row is not None else None

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s:
            # Insert-or-update: replicas starting together both write their status.
            self._insert_ignoring_duplicates(s, Meta, [{"key": key, "value": value}])
            s.execute(update(Meta).where(col(Meta.key) == key).values(value=value))
            s.commit()


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _history(query: Any, since: datetime | None, source: str | None) -> Any:
    """Items published (else first seen) at or after ``since``, of ``source`` if given."""
    if since is not None:
        query = query.where(func.coalesce(ItemRow.published, ItemRow.first_seen) >= since)
    if source is not None:
        query = query.where(ItemRow.source == source)
    return query


def _item_values(item: Item) -> dict[str, Any]:
    return {
        "content_hash": item.content_hash,
        "title": item.title,
        "url": item.url,
        "published": item.published,
        "summary": item.summary,
        "summary_html": item.safe_summary_html,
        "content": item.content,
        "language": item.language,
        "fields": dict(item.fields),
    }


def _retire_pending(s: Session, notifier: str) -> None:
    s.execute(
        update(AlertRow)
        .where(col(AlertRow.notifier) == notifier, col(AlertRow.status) == "pending")
        .values(status="dead", last_error="subscription deleted")
    )
