"""Engine factory: SQLite (WAL, synchronous=FULL, busy_timeout) or PostgreSQL, and schema setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine, select

from monitor.errors import StorageError
from storage.tables import SCHEMA_VERSION, Meta

SQLITE_BUSY_TIMEOUT_MS = 10_000


def create_db_engine(url: str, *, synchronous: str = "FULL") -> Engine:
    """Build an engine for ``url`` and make sure the schema exists."""
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
    init_schema(engine)
    return engine


def _sqlite_engine(url: URL, synchronous: str) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def init_schema(engine: Engine) -> None:
    """Create missing tables and check the schema version."""
    try:
        SQLModel.metadata.create_all(engine)
        with Session(engine) as session:
            row = session.exec(select(Meta).where(Meta.key == "schema_version")).first()
            if row is None:
                session.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
                session.commit()
            elif int(row.value) > SCHEMA_VERSION:
                raise StorageError(
                    f"storage: database schema version {row.value} is newer than this "
                    f"noticewatch understands ({SCHEMA_VERSION})",
                    hint="upgrade noticewatch or point it at another database",
                )
    except SQLAlchemyError as e:
        raise StorageError(
            f"storage: cannot open database {_safe(str(engine.url))}: {type(e).__name__}: "
            f"{_first_line(e)}"
        ) from e


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.splitlines()[0] if text else type(error).__name__
