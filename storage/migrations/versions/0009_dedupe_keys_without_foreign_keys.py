"""The three dedupe key tables lose their foreign key to ``items``.

A first poll writes ~34 key rows an item, and each row passes through all three tables
(``dedupe_new_keys``, then ``dedupe_mid_keys``, then ``dedupe_keys``). With the key,
SQLite looked the item up again on every copy, and deleted the merged tables row by row
(its truncation is off for a table with a foreign key). Without them a cold 1,000-source
poll took 35-40 s instead of 45-50 s, ABBA (bench/README.md, sixteenth session).

The keys are an index of the items, written in the transaction that stores them and
deleted by item id (``storage.dedupe``); items are never deleted, and a key whose item
is missing only makes a candidate that the lookup then drops (it reads the item).
The downgrade puts the keys back, leaving out any row whose item is missing.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TABLES = ("dedupe_keys", "dedupe_mid_keys", "dedupe_new_keys")


def upgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        if bind.dialect.name == "postgresql":
            for key in sa.inspect(bind).get_foreign_keys(table):
                if key["name"] is not None:  # PostgreSQL names every constraint
                    op.drop_constraint(key["name"], table, type_="foreignkey")
        else:
            _rebuild(table, foreign_key=False)


def downgrade() -> None:
    bind = op.get_bind()
    for table in _TABLES:
        if bind.dialect.name == "postgresql":
            op.execute(f"DELETE FROM {table} WHERE item_id NOT IN (SELECT id FROM items)")  # noqa: S608
            op.create_foreign_key(None, table, "items", ["item_id"], ["id"])
        else:
            _rebuild(table, foreign_key=True)


def _rebuild(table: str, *, foreign_key: bool) -> None:
    """SQLite alters no constraint: a copy of ``table`` takes its place (read in key
    order, so the copy is written leaf after leaf)."""
    constraints: list[sa.Constraint] = [sa.PrimaryKeyConstraint("key", "item_id")]
    if foreign_key:
        constraints.append(sa.ForeignKeyConstraint(["item_id"], ["items.id"]))
    op.create_table(
        f"{table}_v2",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        *constraints,
        sqlite_with_rowid=False,
    )
    kept = " WHERE item_id IN (SELECT id FROM items)" if foreign_key else ""
    op.execute(
        f"INSERT INTO {table}_v2 (key, item_id) SELECT key, item_id FROM {table}{kept}"  # noqa: S608
    )
    op.drop_table(table)
    op.rename_table(f"{table}_v2", table)
