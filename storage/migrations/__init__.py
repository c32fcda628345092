"""Alembic migrations: every schema change is a numbered revision under ``versions/``.

``upgrade(engine)`` brings any database to the newest revision (run at start-up and by
``noticewatch db upgrade``); ``python -m storage.migrations new "message"`` writes the
next revision from the difference between the tables and the migrations so far.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from monitor.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

log = logging.getLogger("noticewatch.storage")
HERE = Path(__file__).parent
FIRST_REVISION = "0001"
# The newest revision under versions/ (tests/test_migrations.py checks it): a start on a
# database already there reads its revision with one query and never imports alembic,
# whose modules cost ~11 MB of a long-running service's memory and ~0.1 s of every start.
HEAD = "0010"
# Tables of the first schema: a database holding them but no alembic_version was made
# by a release from before migrations, and is at FIRST_REVISION.
_FIRST_SCHEMA_MARKERS = frozenset({"items", "alerts", "source_state"})
# Key of the PostgreSQL advisory lock that serialises migrations ("noticewa" in ASCII).
_MIGRATION_LOCK = 0x6E6F746963657761


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's settings in code, so no alembic.ini has to ship with the package."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None  # there is always at least FIRST_REVISION
    return revision


def current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the database to the newest revision; (revision before, revision after)."""
    if _at_head(engine):
        return HEAD, HEAD
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    target = head()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # A batch ALTER on SQLite copies the table and drops the old one, which the
            # foreign keys pointing at it would refuse; the pragma only takes effect
            # outside a transaction, and the keys are checked again afterwards.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin(), _one_transaction(connection, target):
                before = _upgrade(connection, script, target)
                # Only after an upgrade: the check reads every row that has a foreign key,
                # seconds on a large database, on every start.
                upgraded = before != target
                if (
                    sqlite
                    and upgraded
                    and connection.exec_driver_sql("PRAGMA foreign_key_check").first()
                ):
                    raise StorageError(
                        "storage: the schema upgrade left rows pointing at missing rows",
                        hint="restore the database from a backup and report this",
                    )
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    if before == target:
        return before, target
    log.info("database=upgraded from=%s to=%s", before or "empty", target)
    return before, target


def _at_head(engine: Engine) -> bool:
    """True when the database records exactly :data:`HEAD` (one read, no lock)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [tuple(row) for row in rows] == [(HEAD,)]


@contextmanager
def _one_transaction(connection: Connection, target: str) -> Iterator[None]:
    """Make the upgrade one transaction that one process at a time runs.

    Python's sqlite3 begins a transaction only before an INSERT/UPDATE/DELETE, so every
    CREATE TABLE ahead of one commits on its own: a start killed half-way through the
    first schema left some tables and no revision, and the next start failed on "table
    already exists" or stamped a schema with tables missing. Here sqlite3 is told to
    leave transactions alone and the upgrade opens its own (IMMEDIATE: a second process
    starting at the same moment waits, then finds the schema done). SQLAlchemy's commit
    or rollback at the end of ``connection.begin()`` ends it. A database already at
    ``target`` is only read: no write lock, so ``status`` never waits for a busy ``run``.
    """
    if connection.dialect.name == "postgresql":
        # PostgreSQL's DDL is transactional: replicas starting together queue on this lock
        # and the later ones find the database at the newest revision.
        if current(connection) != target:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        yield
        return
    if connection.dialect.name != "sqlite":
        yield
        return
    driver = connection.connection.driver_connection
    saved = driver.isolation_level  # type: ignore[union-attr]
    driver.isolation_level = None  # type: ignore[union-attr]
    try:
        if current(connection) != target:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    finally:
        driver.isolation_level = saved  # type: ignore[union-attr]


def _upgrade(connection: Connection, script: ScriptDirectory, target: str) -> str | None:
    """Upgrade inside the caller's transaction; the revision the database was at."""
    from alembic import command  # imported late: alembic's command module is slow to import

    before = current(connection)
    if before is None and set(inspect(connection).get_table_names()) >= _FIRST_SCHEMA_MARKERS:
        command.stamp(alembic_config(connection), FIRST_REVISION)
        before = FIRST_REVISION
    if before == target:
        return before
    if before is not None and _unknown(script, before):
        raise StorageError(
            f"storage: the database is at schema revision {before}: newer than this "
            f"noticewatch knows (its newest is {target})",
            hint="upgrade noticewatch, or point it at another database",
        )
    command.upgrade(alembic_config(connection), "head")
    return before


def _unknown(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is None
    except Exception:  # alembic raises its own errors for unknown ids
        return True
