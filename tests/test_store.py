"""Storage: SQLite settings, constraints instead of check-then-insert, aware timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from monitor.errors import StorageError
from storage.db import create_db_engine
from storage.store import Store
from storage.tables import ItemRow
from tests.conftest import FIXED_NOW


def test_sqlite_runs_in_wal_with_full_sync_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sub' / 'nw.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 10_000
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert (tmp_path / "sub" / "nw.db").exists()


def _row(key: str) -> ItemRow:
    return ItemRow(
        source="ap-nl", source_type="rss", item_key=key, content_hash="v1:x", title="t",
        first_seen=FIXED_NOW, last_seen=FIXED_NOW,
    )  # fmt: skip


def test_items_are_unique_per_source_and_key(db_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(db_url)
    with Session(engine) as s:
        s.add(_row("id:1"))
        s.commit()
        s.add(_row("id:1"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_timestamps_come_back_aware_utc(db_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(db_url)
    with Session(engine) as s:
        s.add(_row("id:1"))
        s.commit()
    with Session(engine) as s:
        row = s.get(ItemRow, 1)
        assert row is not None and row.first_seen == FIXED_NOW
        assert row.first_seen.tzinfo is not None


def test_naive_timestamps_are_refused(db_url: str, tmp_path: Path) -> None:
    engine = create_db_engine(db_url)
    row = _row("id:1")
    row.first_seen = FIXED_NOW.replace(tzinfo=None)
    with Session(engine) as s:
        s.add(row)
        with pytest.raises(Exception, match="naive datetime"):
            s.commit()


def test_a_newer_schema_is_refused_with_a_hint(db_url: str) -> None:
    url = db_url
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match="revision 9999: newer than this noticewatch"):
        create_db_engine(url)


def test_bad_database_urls_are_clear(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not valid"):
        create_db_engine("not a url")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StorageError, match="cannot open database"):
        create_db_engine(f"sqlite:///{tmp_path / 'dir.db'}")


def test_password_never_in_storage_errors() -> None:
    with pytest.raises(StorageError) as info:
        create_db_engine("postgresql+nosuchdriver://user:hunter2secret@127.0.0.1/db")
    assert "hunter2secret" not in str(info.value)


def test_failure_counters(db_url: str, tmp_path: Path) -> None:
    store = Store(create_db_engine(db_url))
    assert store.record_failure("ap-nl", "rss", "fetch: boom", FIXED_NOW) == 1
    assert store.record_failure("ap-nl", "rss", "fetch: boom", FIXED_NOW) == 2
    (state,) = store.source_states()
    assert (state.fetches, state.failures, state.last_outcome) == (2, 2, "error")
