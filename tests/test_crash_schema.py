"""A start cut short while it builds or upgrades the schema leaves the database as it was.

A kill -9 (or an OOM kill, or a power cut) keeps exactly what was committed before it.
The schema upgrade at start-up must therefore commit once, at its end: here a failure
is injected before the n-th table of the upgrade, for every n, and whatever was
committed by then is what a killed process would leave behind.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.operations import Operations

from storage import migrations
from storage.db import create_db_engine


class PowerCut(Exception):
    """Stands for the kill: nothing after it runs, nothing uncommitted survives."""


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return {name for (name,) in rows}


def version(db: Path) -> list[tuple[str, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    conn.close()
    return rows


def creations(monkeypatch: pytest.MonkeyPatch, fail_at: int | None) -> list[str]:
    """Record every table the upgrade creates; raise PowerCut before the ``fail_at``-th."""
    made: list[str] = []
    create = Operations.create_table

    def counting(self: Operations, name: str, *columns: Any, **kw: Any) -> Any:
        if fail_at is not None and len(made) + 1 == fail_at:
            raise PowerCut(f"power cut before creating {name}")
        made.append(name)
        return create(self, name, *columns, **kw)

    monkeypatch.setattr(Operations, "create_table", counting)
    return made


def test_a_first_start_cut_short_at_any_table_leaves_no_half_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference.db"
    made = creations(monkeypatch, None)
    create_db_engine(f"sqlite:///{reference}").dispose()
    monkeypatch.undo()
    expected = tables(reference)
    assert len(made) >= 5 and {"items", "alerts", "delivery_attempts"} <= expected
    for fail_at in range(1, len(made) + 1):
        db = tmp_path / f"cut-{fail_at}.db"
        creations(monkeypatch, fail_at)
        with pytest.raises(PowerCut):
            create_db_engine(f"sqlite:///{db}")
        monkeypatch.undo()
        left = tables(db)
        assert left == set(), f"committed before the cut at {made[fail_at - 1]}: {left}"
        create_db_engine(f"sqlite:///{db}").dispose()  # the restart
        assert tables(db) == expected, f"after a cut at {made[fail_at - 1]}"
        assert version(db) == [(migrations.head(),)]


def test_opening_an_up_to_date_database_takes_no_write_lock(tmp_path: Path) -> None:
    """``status`` or a second start while ``run`` commits: no wait for the writer."""
    db = tmp_path / "noticewatch.db"
    create_db_engine(f"sqlite:///{db}").dispose()
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a commit
        create_db_engine(f"sqlite:///{db}").dispose()
    finally:
        writer.rollback()
        writer.close()
