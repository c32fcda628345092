"""Requests spent per API key per UTC day: the database side of ``monitor.quota.RequestLedger``."""

from __future__ import annotations

from datetime import date

from sqlalchemy import case

from storage.db import conflict_insert
from storage.store import Store
from storage.tables import RequestCount


class RequestCounter:
    """Counts requests in the ``request_counts`` table through the Store's sessions."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def spend_request(self, key: str, day: date, limit: int) -> bool:
        """Count one request of ``key`` on ``day`` unless ``limit`` were already spent.

        One conditional upsert, so concurrent pollers sharing a key never overspend.
        """
        if limit < 1:
            return False
        engine = self.store.engine
        table = RequestCount.__table__  # type: ignore[attr-defined]
        stmt = (
            conflict_insert(engine.dialect.name, table)
            .values(key=key, day=day.isoformat(), count=1)
            .on_conflict_do_update(
                index_elements=["key", "day"],
                set_={"count": table.c.count + 1},
                where=table.c.count < limit,
            )
            .returning(table.c.count)
        )
        with self.store.session() as s:
            counted = s.execute(stmt).first() is not None
            s.commit()
        return counted

    def requests_spent(self, key: str, day: date) -> int:
        with self.store.session() as s:
            row = s.get(RequestCount, (key, day.isoformat()))
        return row.count if row is not None else 0

    def exhaust(self, key: str, day: date, limit: int) -> None:
        """Raise ``key``'s count for ``day`` to at least ``limit`` (never lower it), so
        no process sharing the database sends another request that day."""
        engine = self.store.engine
        table = RequestCount.__table__  # type: ignore[attr-defined]
        stmt = (
            conflict_insert(engine.dialect.name, table)
            .values(key=key, day=day.isoformat(), count=limit)
            .on_conflict_do_update(
                index_elements=["key", "day"],
                set_={"count": case((table.c.count < limit, limit), else_=table.c.count)},
            )
        )
        with self.store.session() as s:
            s.execute(stmt)
            s.commit()
