"""Alembic migrations: they build exactly the tables, and upgrade the first schema in place."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, inspect, text
from sqlmodel import SQLModel

from monitor.errors import StorageError
from monitor.models import Item
from monitor.sources.base import Fetched
from storage import migrations
from storage.db import create_db_engine
from storage.migrations import FIRST_REVISION
from storage.store import Change, Store
from tests.conftest import DATA, FIXED_NOW
from tests.support.fakes import make_item

ROOT = Path(__file__).parent.parent
FIRST_SCHEMA = DATA / "schema" / "first_schema.sql"  # what 0.1 created, captured as SQL


def first_schema_db(path: Path) -> None:
    """A database as noticewatch 0.1 left it: first schema, an item, an alert, state."""
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_SCHEMA.read_text())
        conn.executescript(
            """
            INSERT INTO meta VALUES ('schema_version', '1');
            INSERT INTO source_state VALUES ('ap-nl', 'rss', 'https://ap.example/feed',
              '"etag-1"', NULL, 'sha256:abc', 1, '2026-11-21 09:00:00.000000',
              '2026-11-21 09:00:00.000000', 'ok', NULL, NULL, 2, 40, 3);
            INSERT INTO items VALUES (1, 'ap-nl', 'rss', 'id:ap-2', 'v1:x', 1,
              'AP legt Clearview boete op', 'https://ap.example/clearview', NULL, 'Boete',
              'Boete', '', 'nl', '{"amount": 3}', '2026-11-21 09:00:00.000000',
              '2026-11-21 09:00:00.000000', NULL);
            INSERT INTO alerts VALUES ('msg_1', 1, 'newsroom', 'alert.created',
              '["clearview-fines"]', '{"alert_id": "msg_1"}', 'pending', 1,
              '2026-11-21 09:00:00.000000', '2026-11-21 09:05:00.000000', NULL, 503, 'HTTP 503');
            INSERT INTO delivery_attempts VALUES (1, 'msg_1', 'newsroom', 1,
              '2026-11-21 09:00:01.000000', 'failed', 503, 'HTTP 503', 120);
            """
        )


def schema_of(engine: Any) -> dict[str, Any]:
    """Tables, columns, keys and indexes as the database reports them."""
    found: dict[str, Any] = {}
    insp = inspect(engine)
    for table in insp.get_table_names():
        if table == "alembic_version":
            continue
        found[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)
            ],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "fks": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
        }
    return found


def test_migrations_build_exactly_the_tables(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], "the tables and the migrations differ; write a revision (see README)"


def test_revision_0001_is_the_first_schema(tmp_path: Path) -> None:
    first = tmp_path / "first.db"
    with sqlite3.connect(first) as conn:
        conn.executescript(FIRST_SCHEMA.read_text())
    migrated = create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    from alembic import command

    with migrated.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0001")
    assert schema_of(migrated) == schema_of(create_engine(f"sqlite:///{first}"))


def test_first_schema_upgrades_keeping_items_alerts_and_source_state(tmp_path: Path) -> None:
    path = tmp_path / "nw.db"
    first_schema_db(path)
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        assert "subscriptions" in inspect(conn).get_table_names()
    store = Store(engine)
    (state,) = store.source_states()
    assert (state.name, state.etag, state.body_hash, state.baselined) == (
        "ap-nl", '"etag-1"', "sha256:abc", True,
    )  # fmt: skip
    assert (state.consecutive_failures, state.fetches, state.failures) == (2, 40, 3)
    assert store.item_counts() == {"ap-nl": 1}
    (alert,) = store.due_alerts("newsroom", FIXED_NOW)
    assert (alert.id, alert.rules, alert.attempts, alert.last_status) == (
        "msg_1", ["clearview-fines"], 1, 503,
    )  # fmt: skip
    # The upgraded database keeps working: the next fetch is not a new baseline.
    assert store.snapshot("ap-nl", "https://ap.example/feed").baselined is True
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM delivery_attempts").fetchone() == (1,)


def test_upgrade_is_idempotent(db_url: str) -> None:
    engine = create_db_engine(db_url)
    assert migrations.upgrade(engine) == (migrations.head(), migrations.head())


def test_a_database_needing_migration_on_a_read_only_volume_is_left_untouched(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nw.db"
    first_schema_db(path)
    before = path.read_bytes()
    with pytest.raises(StorageError) as info:
        create_db_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert "read-only" in str(info.value) and "mount the data volume read-write" in str(info.value)
    assert path.read_bytes() == before


def test_a_read_only_volume_mid_run_is_a_clear_error_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "nw.db"
    store = Store(create_db_engine(f"sqlite:///{path}"))
    store.record_failure("ap-nl", "rss", "fetch: boom", FIXED_NOW)
    read_only = Store(create_db_engine(f"sqlite:///file:{path}?mode=ro&uri=true"))
    with pytest.raises(StorageError, match="read-only"):
        read_only.record_failure("ap-nl", "rss", "fetch: again", FIXED_NOW)
    (state,) = Store(create_db_engine(f"sqlite:///{path}")).source_states()
    assert state.failures == 1


def test_a_full_volume_is_a_clear_error_and_the_database_stays_sound(tmp_path: Path) -> None:
    path = tmp_path / "nw.db"
    engine = create_db_engine(f"sqlite:///{path}")
    store = Store(engine)
    fetched = Fetched(url="https://example.org/feed", status=200, body=b"v1")
    first = [make_item("ap-nl", "id:1", "first")]
    store.commit_batch("ap-nl", "rss", fetched, first, [(first[0], Change.NEW)], [], FIXED_NOW)
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _full(dbapi_connection: Any, _record: Any) -> None:
        # SQLite's own "disk full": no page may be added beyond those the file has now.
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    many = [make_item("ap-nl", f"id:{i}", "x" * 2000) for i in range(2, 200)]
    with pytest.raises(StorageError) as info:
        store.commit_batch(
            "ap-nl", "rss", fetched, many, [(i, Change.NEW) for i in many], [], FIXED_NOW
        )
    assert "full" in str(info.value) and "nothing was written" in str(info.value)
    engine.dispose()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT item_key FROM items").fetchall() == [("id:1",)]


def test_db_upgrade_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    path = tmp_path / "nw.db"
    first_schema_db(path)
    config = tmp_path / "sources.toml"
    config.write_text(
        f'[monitor]\ndatabase = "sqlite:///{path}"\n'
        '[[sources]]\nname = "a"\ntype = "rss"\nurl = "http://127.0.0.1:9/a"\nevery = "1h"\n'
    )
    assert main(["db", "upgrade", "--config", str(config)], {}) == 0
    out = capsys.readouterr().out
    assert f"upgraded from 0001 to {migrations.head()}" in out
    assert main(["db", "upgrade", "--config", str(config)], {}) == 0
    assert "already at" in capsys.readouterr().out
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            migrations.head(),
        )


def test_a_database_directory_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data directory should be")
    with pytest.raises(StorageError) as info:
        create_db_engine(f"sqlite:///{tmp_path / 'data' / 'nw.db'}")
    assert "cannot create the database directory" in str(info.value)
    assert "mount the data volume read-write" in str(info.value)


def test_run_on_a_read_only_volume_stops_at_once_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.cli import main

    path = tmp_path / "nw.db"
    create_db_engine(f"sqlite:///{path}").dispose()  # a database at the newest revision
    before = path.read_bytes()
    config = tmp_path / "sources.toml"
    config.write_text(
        f'[monitor]\ndatabase = "sqlite:///file:{path}?mode=ro&uri=true"\nhttp_port = 0\n'
        '[[sources]]\nname = "a"\ntype = "rss"\nurl = "http://127.0.0.1:9/a"\nevery = "1h"\n'
    )
    assert main(["run", "--config", str(config), "--log-format", "text"], {}) == 3
    err = capsys.readouterr().err
    assert "read-only" in err and "mount the data volume read-write" in err
    assert path.read_bytes() == before


def test_0002_with_rows_in_every_table_upgrades_to_head_keeping_them(tmp_path: Path) -> None:
    """A database of the issue-7 release (0002: subscriptions) holding real rows: the 0003
    batch rebuilds of alerts, notifier_state and source_state keep every row and key."""
    from alembic import command

    path = tmp_path / "nw.db"
    first_schema_db(path)
    with create_engine(f"sqlite:///{path}").begin() as conn:
        command.stamp(migrations.alembic_config(conn), "0001")
        command.upgrade(migrations.alembic_config(conn), "0002")
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            INSERT INTO notifier_state VALUES ('newsroom', 'fp-1',
              '2026-11-21 10:00:00.000000', 'HTTP 410 for 5 days');
            INSERT INTO subscriptions VALUES ('sub-0123456789ab', 'https://hooks.example.org/x',
              'whsec_c2VjcmV0', '["clearview-fines"]', 'desk', '2026-11-21 09:30:00.000000');
            INSERT INTO alerts VALUES ('msg_2', 1, 'sub-0123456789ab', 'alert.created',
              '["clearview-fines"]', '{"alert_id": "msg_2"}', 'delivered', 1,
              '2026-11-21 09:00:00.000000', '2026-11-21 09:00:00.000000',
              '2026-11-21 09:00:02.000000', 204, NULL);
            INSERT INTO delivery_attempts VALUES (2, 'msg_2', 'sub-0123456789ab', 1,
              '2026-11-21 09:00:02.000000', 'delivered', 204, NULL, 80);
            """
        )
    engine = create_db_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    store = Store(engine)
    (sub,) = store.subscriptions()
    assert (sub.id, sub.secret, sub.rules) == (
        "sub-0123456789ab", "whsec_c2VjcmV0", ["clearview-fines"],
    )  # fmt: skip
    assert store.disabled_notifiers() == {"newsroom": "HTTP 410 for 5 days"}
    counts = store.alert_counts()
    assert counts == {("newsroom", "pending"): 1, ("sub-0123456789ab", "delivered"): 1}
    (state,) = store.source_states()
    assert (state.consecutive_failures, state.failing_since) == (2, None)
    assert store.get_meta("schema_version") == "1"
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        attempts = conn.execute("SELECT alert_id, outcome FROM delivery_attempts ORDER BY id")
        assert attempts.fetchall() == [("msg_1", "failed"), ("msg_2", "delivered")]
        # 0003 dropped unique (item_id, notifier): an amended notice's second alert fits.
        conn.execute(
            "INSERT INTO alerts (id, item_id, notifier, event_type, rules, data, status,"
            " attempts, created_at, next_attempt_at)"
            " SELECT 'msg_3', item_id, notifier, 'alert.updated', rules, data,"
            " 'pending', 0, created_at, next_attempt_at"
            " FROM alerts WHERE id = 'msg_1'"
        )
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_replicas_starting_together_on_postgresql_migrate_once(pg_url: str) -> None:
    """Three replicas opening an empty PostgreSQL database at once: one builds the schema,
    the others wait on the advisory lock and find it built; none fails on a half-made table."""
    barrier = threading.Barrier(3)
    results: list[tuple[str | None, str]] = []
    errors: list[BaseException] = []

    def open_replica() -> None:
        engine = create_db_engine(pg_url, upgrade=False)
        barrier.wait()
        try:
            results.append(migrations.upgrade(engine))
        except BaseException as e:  # collected: a thread's exception would be lost
            errors.append(e)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=open_replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    head = migrations.head()
    assert sorted(results, key=str) == sorted([(None, head), (head, head), (head, head)], key=str)


def test_postgresql_upgrades_from_the_first_revision_keeping_rows(pg_url: str) -> None:
    from alembic import command

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), FIRST_REVISION)
        conn.execute(
            text(
                "INSERT INTO source_state (name, type, identity, baselined, consecutive_failures,"
                " fetches, failures) VALUES ('ap-nl', 'rss', 'https://ap.example/feed', true,"
                " 0, 4, 0)"
            )
        )
    engine.dispose()
    store = Store(create_db_engine(pg_url))
    (state,) = store.source_states()
    assert (state.name, state.fetches, state.baselined) == ("ap-nl", 4, True)
    with store.engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()


def test_0005_converts_stored_dedupe_keys_and_signatures(db_url: str) -> None:
    """A 0004 database whose dedupe window holds text keys and JSON signatures: after the
    upgrade its items are still found as the originals of later copies, on both engines."""
    from alembic import command

    from monitor.dedupe import DedupePolicy, item_fingerprint
    from monitor.dedupe.fingerprint import KeyQuery
    from storage.dedupe import key_id

    item = _fine("id:ap-2")
    print_ = item_fingerprint(item)
    # The text keys of 0004: the exact keys, and band keys in the form of then
    # (b:<band>:<digest>) for the stored signature, as 0010 reads them.
    keys = sorted(print_.stored) + _old_band_keys(print_.signature)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0004")
        _insert_item(conn, item, FIXED_NOW.replace(tzinfo=None))
        conn.execute(
            text("INSERT INTO dedupe_keys (key, item_id, at) VALUES (:key, 1, :now)"),
            [{"key": k, "now": FIXED_NOW.replace(tzinfo=None)} for k in keys],
        )
        conn.execute(
            text("INSERT INTO dedupe_signatures (item_id, signature, at) VALUES (1, :sig, :now)"),
            {"sig": json.dumps(list(print_.signature)), "now": FIXED_NOW.replace(tzinfo=None)},
        )
    engine.dispose()
    store = Store(create_db_engine(db_url))
    with store.engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        rows = conn.execute(text("SELECT key, item_id FROM dedupe_keys")).all()
    # The exact keys converted (key_id); the old band rows replaced by 0010's.
    assert set(rows) == {(k, 1) for k in print_.stored_ids}
    since = FIXED_NOW - timedelta(days=7)
    url_only = KeyQuery(frozenset(key_id(k) for k in print_.stored if k[:2] == "u:"), frozenset())
    by_url = store.dedupe_history([url_only], since, DedupePolicy().min_bands)
    assert [seen.ref for seen in by_url.seen] == ["item:1"]
    copy = make_item("wire", "id:w-9", title=item.title + " (update)", summary=item.summary)
    copied = item_fingerprint(copy)
    history = store.dedupe_history([copied.query], since, DedupePolicy().min_bands)
    (seen,) = history.seen
    assert seen.fingerprint.signature == print_.signature
    assert seen.fingerprint.bands == print_.bands
    store.engine.dispose()


def test_0006_drops_the_time_of_dedupe_keys_and_keeps_finding_them(db_url: str) -> None:
    """A 0005 database's keys survive the loss of their ``at`` (the window is the item's
    first_seen); a downgrade gives every key its item's first_seen back."""
    from alembic import command

    from monitor.dedupe import DedupePolicy, item_fingerprint

    item = _fine("id:ap-3")
    print_ = item_fingerprint(item)
    seen = FIXED_NOW.replace(tzinfo=None) - timedelta(days=2)
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0005")
        _insert_item(conn, item, seen)
        conn.execute(
            text("INSERT INTO dedupe_keys (key, item_id, at) VALUES (:key, 1, :now)"),
            [{"key": k, "now": FIXED_NOW.replace(tzinfo=None)} for k in print_.stored_ids],
        )
    engine.dispose()
    store = Store(create_db_engine(db_url))
    columns = {c["name"] for c in inspect(store.engine).get_columns("dedupe_keys")}
    assert columns == {"key", "item_id"}
    assert inspect(store.engine).get_indexes("dedupe_keys") == []
    history = store.dedupe_history(
        [print_.query], FIXED_NOW - timedelta(days=7), DedupePolicy().min_bands
    )
    assert [s.ref for s in history.seen] == ["item:1"]
    late = store.dedupe_history([print_.query], FIXED_NOW, DedupePolicy().min_bands)
    assert late.seen == []  # first seen two days ago: outside a window starting now
    with store.engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0005")
        rows = conn.execute(text("SELECT key, at FROM dedupe_keys")).all()
        assert {i["name"] for i in inspect(conn).get_indexes("dedupe_keys")} == {
            "ix_dedupe_keys_at"
        }
    assert sorted(k for k, _ in rows) == sorted(print_.stored_ids)
    assert {_naive(at) for _, at in rows} == {seen}
    store.engine.dispose()


def test_0007_finds_the_keys_stored_before_it_and_a_downgrade_keeps_the_waiting_ones(
    db_url: str,
) -> None:
    """Keys written at 0006 stay in dedupe_keys and are found; keys written after the
    upgrade wait in dedupe_new_keys; a downgrade to 0006 moves them into dedupe_keys."""
    from alembic import command

    from monitor.dedupe import DedupePolicy, item_fingerprint

    old, new = _fine("id:ap-4"), _fine("id:ap-5")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0006")
        _insert_item(conn, old, FIXED_NOW.replace(tzinfo=None))
        conn.execute(
            text("INSERT INTO dedupe_keys (key, item_id) VALUES (:key, 1)"),
            [{"key": k} for k in item_fingerprint(old).stored_ids],
        )
    engine.dispose()
    store = Store(create_db_engine(db_url))
    with store.engine.begin() as conn:
        _insert_item(conn, new, FIXED_NOW.replace(tzinfo=None), ident=2)
        conn.execute(
            text("INSERT INTO dedupe_new_keys (key, item_id) VALUES (:key, 2)"),
            [{"key": k} for k in item_fingerprint(new).stored_ids],
        )
    since = FIXED_NOW - timedelta(days=7)
    for item, ref in ((old, "item:1"), (new, "item:2")):
        query = item_fingerprint(item).query
        found = store.dedupe_history([query], since, DedupePolicy().min_bands)
        assert ref in [s.ref for s in found.seen]
    with store.engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0006")
        assert "dedupe_new_keys" not in inspect(conn).get_table_names()
        rows = conn.execute(text("SELECT key, item_id FROM dedupe_keys")).all()
    expected = {(k, 1) for k in item_fingerprint(old).stored_ids}
    expected |= {(k, 2) for k in item_fingerprint(new).stored_ids}
    assert set(rows) == expected
    store.engine.dispose()


def test_0008_finds_keys_in_the_middle_table_and_a_downgrade_moves_them_to_the_large_one(
    db_url: str,
) -> None:
    """Keys merged into dedupe_mid_keys are found like the others; a downgrade to 0007
    moves them into dedupe_keys, where that revision reads them."""
    from alembic import command

    from monitor.dedupe import DedupePolicy, item_fingerprint

    item = _fine("id:ap-6")
    store = Store(create_db_engine(db_url))
    with store.engine.begin() as conn:
        _insert_item(conn, item, FIXED_NOW.replace(tzinfo=None))
        conn.execute(
            text("INSERT INTO dedupe_mid_keys (key, item_id) VALUES (:key, 1)"),
            [{"key": k} for k in item_fingerprint(item).stored_ids],
        )
    since = FIXED_NOW - timedelta(days=7)
    query = item_fingerprint(item).query
    found = store.dedupe_history([query], since, DedupePolicy().min_bands)
    assert [s.ref for s in found.seen] == ["item:1"]
    with store.engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0007")
        assert "dedupe_mid_keys" not in inspect(conn).get_table_names()
        rows = conn.execute(text("SELECT key, item_id FROM dedupe_keys")).all()
    assert set(rows) == {(k, 1) for k in item_fingerprint(item).stored_ids}
    store.engine.dispose()


def test_0009_drops_the_key_tables_foreign_keys_keeping_their_rows_and_a_downgrade_restores_them(
    db_url: str,
) -> None:
    """Key rows in each of the three tables survive the upgrade and are found; the
    downgrade brings the foreign keys back, leaving out rows whose item is missing."""
    from alembic import command

    from monitor.dedupe import DedupePolicy, item_fingerprint

    item = _fine("id:ap-9")
    keys = sorted(item_fingerprint(item).stored_ids)
    tables = ("dedupe_keys", "dedupe_mid_keys", "dedupe_new_keys")
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0008")
        _insert_item(conn, item, FIXED_NOW.replace(tzinfo=None))
        for n, table in enumerate(tables):
            conn.execute(
                text(f"INSERT INTO {table} (key, item_id) VALUES (:key, 1)"),
                [{"key": k} for k in keys[n::3]],
            )
        assert all(inspect(conn).get_foreign_keys(t) for t in tables)
    engine.dispose()
    store = Store(create_db_engine(db_url))  # upgrades to the newest revision
    with store.engine.connect() as conn:
        assert not any(inspect(conn).get_foreign_keys(t) for t in tables)
        stored = {k for t in tables for (k,) in conn.execute(text(f"SELECT key FROM {t}"))}
    assert stored == set(keys)
    query = item_fingerprint(item).query
    found = store.dedupe_history([query], FIXED_NOW - timedelta(days=7), DedupePolicy().min_bands)
    assert [s.ref for s in found.seen] == ["item:1"]
    with store.engine.begin() as conn:
        # A row whose item is missing: harmless without the key, refused with it.
        conn.execute(text("INSERT INTO dedupe_new_keys (key, item_id) VALUES (7, 42)"))
        command.downgrade(migrations.alembic_config(conn), "0008")
    with store.engine.connect() as conn:
        assert all(inspect(conn).get_foreign_keys(t) for t in tables)
        rows = {r for t in tables for r in conn.execute(text(f"SELECT key, item_id FROM {t}"))}
    assert rows == {(k, 1) for k in keys}
    store.engine.dispose()


def test_0010_refingerprints_the_window_and_replaces_the_old_band_rows(db_url: str) -> None:
    """A 0009 database as the BLAKE2b / 2**61 - 1 fingerprint wrote it: an RSS item and
    a templated SAM notice with signatures, their band rows spread over the three key
    tables, and a short item with exact keys only. After the upgrade each signed item
    holds the current fingerprint's keys and signature, no old band row is left, later
    copies are found by their bands, and the key filter's token is gone; the downgrade
    drops the new band rows and the signatures and keeps the exact keys."""
    from alembic import command

    from monitor.dedupe import DedupePolicy, item_fingerprint
    from monitor.dedupe.fingerprint import KeyQuery
    from storage.dedupe import key_id, pack_signature

    tables = ("dedupe_keys", "dedupe_mid_keys", "dedupe_new_keys")
    fine = _fine("id:ap-10")
    notice = make_item(
        "sam", "id:sam-10", title="Facial recognition services, intent to sole source",
        summary="Notice ID FR-10 | Agency: DHS", fields={"description": (
            "The agency intends to award a sole-source contract to Clearview AI for access "
            "to its facial recognition search service under FAR 6.302-1, for one year."
        )},
    )  # fmt: skip
    short = make_item("ap-nl", "id:ap-11", title="Boete", summary="Kort.")
    prints = {
        1: (fine, item_fingerprint(fine)),
        2: (notice, item_fingerprint(notice, templated_summary=True)),
    }
    old = {
        1: _old_signature(fine.title, fine.summary),
        2: _old_signature(notice.title, str(notice.fields["description"])),
    }
    exact = {i: sorted(key_id(k) for k in p.stored) for i, (_, p) in prints.items()}
    short_keys = sorted(key_id(k) for k in item_fingerprint(short).stored)
    assert not item_fingerprint(short).signature and short_keys
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0009")
        _insert_item(conn, fine, FIXED_NOW.replace(tzinfo=None), ident=1)
        _insert_item(conn, notice, FIXED_NOW.replace(tzinfo=None), ident=2)
        conn.execute(
            text("UPDATE items SET source_type = 'sam', fields = :fields WHERE id = 2"),
            {"fields": json.dumps(notice.fields)},
        )
        _insert_item(conn, short, FIXED_NOW.replace(tzinfo=None), ident=3)
        for ident, signature in old.items():
            keys = exact[ident] + _old_band_ids(signature)
            for n, table in enumerate(tables):
                conn.execute(
                    text(f"INSERT INTO {table} (key, item_id) VALUES (:key, :item)"),
                    [{"key": k, "item": ident} for k in keys[n::3]],
                )
            conn.execute(
                text("INSERT INTO dedupe_signatures (item_id, signature, at) VALUES (:i, :s, :at)"),
                {"i": ident, "s": pack_signature(signature), "at": FIXED_NOW.replace(tzinfo=None)},
            )
        conn.execute(
            text("INSERT INTO dedupe_keys (key, item_id) VALUES (:key, 3)"),
            [{"key": k} for k in short_keys],
        )
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('dedupe.keys_token', 'old')"))
    engine.dispose()

    store = Store(create_db_engine(db_url))  # upgrades to the newest revision
    with store.engine.connect() as conn:
        rows = {r for t in tables for r in conn.execute(text(f"SELECT key, item_id FROM {t}"))}
        signatures = dict(
            conn.execute(text("SELECT item_id, signature FROM dedupe_signatures")).all()
        )
        token = conn.execute(text("SELECT value FROM meta WHERE key = 'dedupe.keys_token'")).all()
    expected = {(k, i) for i in exact for k in exact[i]}
    expected |= {(band, i) for i, (_, p) in prints.items() for band in p.bands}
    expected |= {(k, 3) for k in short_keys}
    assert rows == expected
    assert {i: bytes(v) for i, v in signatures.items()} == {
        i: pack_signature(p.signature) for i, (_, p) in prints.items()
    }
    assert token == []
    since = FIXED_NOW - timedelta(days=7)
    copy = make_item("wire", "id:w-10", title=fine.title + " (update)", summary=fine.summary)
    copied = item_fingerprint(copy)
    bands_only = KeyQuery(frozenset(), copied.bands)
    history = store.dedupe_history([bands_only], since, DedupePolicy().min_bands)
    assert [seen.ref for seen in history.seen] == ["item:1"]

    with store.engine.begin() as conn:
        command.downgrade(migrations.alembic_config(conn), "0009")
    with store.engine.connect() as conn:
        rows = {r for t in tables for r in conn.execute(text(f"SELECT key, item_id FROM {t}"))}
        assert conn.execute(text("SELECT count(*) FROM dedupe_signatures")).scalar() == 0
    assert rows == {(k, i) for i in exact for k in exact[i]} | {(k, 3) for k in short_keys}
    store.engine.dispose()


_OLD_PRIME = (1 << 61) - 1
_OLD_COEFFICIENTS = [
    (
        int.from_bytes(hashlib.blake2b(b"a%d" % i, digest_size=8).digest()) % _OLD_PRIME | 1,
        int.from_bytes(hashlib.blake2b(b"b%d" % i, digest_size=8).digest()) % _OLD_PRIME,
    )
    for i in range(64)
]


def _old_signature(title: str, body: str) -> tuple[int, ...]:
    """The signature as the fingerprint of 0009 and before computed it, in big integers:
    BLAKE2b of each word pair's text, then ``min((a * h + b) % (2**61 - 1))``."""
    from monitor.matching.fold import words

    tokens = words(f"{title}\n{body}")[:150]
    pairs = {" ".join(tokens[i : i + 2]) for i in range(len(tokens) - 1)}
    hashes = [int.from_bytes(hashlib.blake2b(p.encode(), digest_size=8).digest()) for p in pairs]
    return tuple(min((a * h + b) % _OLD_PRIME for h in hashes) for a, b in _OLD_COEFFICIENTS)


def _old_band_keys(signature: tuple[int, ...]) -> list[str]:
    """The old band keys ``b:<band>:<hex digest of the band's values>`` (0009 and before)."""
    values = [str(v) for v in signature]
    return [
        f"b:{band}:" + hashlib.blake2b(",".join(values[2 * band : 2 * band + 2]).encode(),
                                       digest_size=8).hexdigest()
        for band in range(32)
    ]  # fmt: skip


def _old_band_ids(signature: tuple[int, ...]) -> list[int]:
    """The stored forms of the old band keys (:func:`_old_band_keys`)."""
    return [
        int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), signed=True)
        for k in _old_band_keys(signature)
    ]


def _fine(key: str) -> Item:
    return make_item(
        "ap-nl", key, title="AP legt Clearview AI boete op van 30,5 miljoen euro",
        summary="De Autoriteit Persoonsgegevens legt Clearview AI een boete op van 30,5 miljoen "
        "euro en dwangsommen voor illegale dataverzameling voor gezichtsherkenning.",
    )  # fmt: skip


def _insert_item(conn: Any, item: Item, seen: datetime, ident: int = 1) -> None:
    """``item`` as item ``ident``, first seen at ``seen``, in SQL that every revision accepts."""
    conn.execute(
        text(
            "INSERT INTO items (id, source, source_type, item_key, content_hash, version,"
            " title, url, summary, summary_html, content, fields, first_seen, last_seen)"
            " VALUES (:id, :source, 'rss', :key, 'v1:x', 1, :title, :url, :summary,"
            " :summary, '', '{}', :seen, :seen)"
        ),
        {"id": ident, "source": item.source, "key": item.key, "title": item.title,
         "url": item.url, "summary": item.summary, "seen": seen},
    )  # fmt: skip


def _naive(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when.replace(tzinfo=None)


def _statements(engine: Any) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    return seen


def test_a_database_at_the_newest_revision_is_opened_without_scanning_its_rows(
    tmp_path: Path,
) -> None:
    """The foreign-key check after an upgrade reads every row with a foreign key: seconds
    on a large database. A start that upgrades nothing skips it."""
    url = f"sqlite:///{tmp_path / 'nw.db'}"
    create_db_engine(url).dispose()
    engine = create_engine(url)
    seen = _statements(engine)
    assert migrations.upgrade(engine) == (migrations.head(), migrations.head())
    assert not [s for s in seen if "foreign_key_check" in s]


def test_an_upgrade_that_leaves_dangling_rows_is_refused_and_rolled_back(tmp_path: Path) -> None:
    from alembic import command

    path = tmp_path / "nw.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0004")
    with sqlite3.connect(path) as conn:  # foreign keys are off in a plain sqlite3 connection
        conn.execute(  # dedupe keys have no foreign key since 0009; signatures keep theirs
            "INSERT INTO dedupe_signatures (item_id, signature, at)"
            " VALUES (42, '[1, 2]', '2026-11-21 09:00:00')"
        )
    with pytest.raises(StorageError, match="rows pointing at missing rows"):
        migrations.upgrade(engine)
    with engine.connect() as conn:
        assert migrations.current(conn) == "0004"  # nothing of the upgrade was kept
    engine.dispose()


def test_head_names_the_newest_revision() -> None:
    """A new revision must move HEAD too, or every start would run alembic to find out."""
    assert migrations.head() == migrations.HEAD


def test_a_start_on_a_database_at_the_newest_revision_never_imports_alembic(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'nw.db'}"
    create_db_engine(url).dispose()
    script = (
        "import sys\n"
        "from storage.db import create_db_engine\n"
        f"create_db_engine({url!r}).dispose()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]", done.stdout
