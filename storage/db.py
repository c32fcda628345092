"""Engine factory: SQLite (WAL, synchronous=FULL, busy_timeout) or PostgreSQL, and schema setup.

The schema is whatever the Alembic migrations in ``storage/migrations`` build; opening a
database upgrades it to the newest revision first.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import create_engine

from monitor.errors import StorageError
from storage import migrations

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SQLiteInsert

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Pages in the WAL before a commit copies them back into the database (SQLite's default
# is 1,000). A first poll's commit writes ~1,500 pages of random key-table leaves, so
# with the default every commit also checkpointed; a checkpoint every ~6 commits writes
# each page once for all of them (half the commit time of a cold poll). The WAL file
# grows to ~40 MB before it is reused.
SQLITE_WAL_AUTOCHECKPOINT_PAGES = 10_000


def conflict_insert(dialect: str, table: Any) -> PostgresInsert | SQLiteInsert:
    """An ``INSERT`` into ``table`` with the ``ON CONFLICT`` clauses of ``dialect`` (a
    dialect's name: ``postgresql`` or ``sqlite``).

    The PostgreSQL dialect is imported for a PostgreSQL database only: with its four
    drivers' modules it held ~2.3 MB of a ``run`` on SQLite (bench/README.md).
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def create_db_engine(url: str, *, synchronous: str = "FULL", upgrade: bool = True) -> Engine:
    """Build an engine for ``url`` and (unless ``upgrade`` is False) migrate it to the newest
    schema revision."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StorageError(
            f"storage: database URL {_safe(url)!r} is not valid",
            hint="use sqlite:///path/to/file.db or postgresql+psycopg://user@host/db",
        ) from e
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed, synchronous)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
    except (ArgumentError, ImportError) as e:
        raise StorageError(
            f"storage: cannot use database {_safe(url)}: {type(e).__name__}: {_first_line(e)}",
            hint="is the database driver installed (e.g. pip install 'psycopg[binary]')?",
        ) from e
    if upgrade:
        init_schema(engine)
    return engine


def _sqlite_engine(url: URL, synchronous: str) -> Engine:
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        try:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(
                f"storage: cannot create the database directory {Path(url.database).parent}: "
                f"{e.strerror}",
                hint="mount the data volume read-write, owned by the user noticewatch runs as",
            ) from e
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def init_schema(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration; (revision before, revision after)."""
    try:
        return migrations.upgrade(engine)
    except SQLAlchemyError as e:
        raise StorageError(
            f"storage: cannot open database {_safe(str(engine.url))}: {type(e).__name__}: "
            f"{_first_line(e)}",
            hint=storage_hint(e),
        ) from e
    except OSError as e:
        raise StorageError(
            f"storage: cannot open database {_safe(str(engine.url))}: {e.strerror or e}",
            hint="is the data volume mounted, writable by this user, and not full?",
        ) from e


def storage_hint(error: Exception) -> str | None:
    """What to do about the SQLite errors a container user meets: a bad volume."""
    text = _first_line(error).lower()
    if "readonly" in text or "read-only" in text:
        return "the database or its directory is read-only: mount the data volume read-write"
    if "disk is full" in text or "database or disk is full" in text:
        return "the data volume is full: free space on it; nothing was written"
    if "unable to open" in text:
        return "the database directory is missing or not writable by this user"
    return None


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.splitlines()[0] if text else type(error).__name__
