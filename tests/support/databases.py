"""Database fixtures: every storage and pipeline test runs on SQLite and on PostgreSQL.

``db_url`` is parametrised over both engines and gives a URL of a fresh, empty database;
``pg_url`` is PostgreSQL only. PostgreSQL databases are created per test on one session-wide
server (``NOTICEWATCH_TEST_POSTGRES_URL``, set by ``tests/run.sh``, or a cluster started here)
and dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support import pgcluster

ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """SQLAlchemy URL of a PostgreSQL maintenance database on 127.0.0.1."""
    given = os.environ.get(pgcluster.ENV_URL)
    if given:
        yield given
        return
    # Not under pytest's temporary root: that is private to this user, and the server runs
    # as `postgres` when the tests run as root.
    cluster = pgcluster.start()
    try:
        yield cluster.url
    finally:
        pgcluster.stop(cluster.directory)


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL ``server``, dropped on exit."""
    name = f"nw_{uuid.uuid4().hex[:16]}"
    admin = _conninfo(server)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database on each engine the project supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'noticewatch.db'}"
    return str(request.getfixturevalue("pg_url"))
