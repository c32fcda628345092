"""Dedupe keys without their own time: the window is the item's ``first_seen``.

``dedupe_keys.at`` and its index were half of what a first poll wrote: the ``at`` text
in every one of an item's ~34 rows, and a second b-tree as large as the table (165 MB
of a 357 MB database after a first poll of 1,000 sources). A key row is written with
its item, so ``at`` always equalled the item's ``first_seen``; lookups now filter the
candidates on that. Nothing deleted by ``at``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_dedupe_keys_at", table_name="dedupe_keys")
    # SQLite (3.35+) rewrites the table in place; PostgreSQL only marks the column gone.
    op.drop_column("dedupe_keys", "at")


def downgrade() -> None:
    op.create_table(
        "dedupe_keys_v1",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("key", "item_id"),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO dedupe_keys_v1 (key, item_id, at) "
        "SELECT k.key, k.item_id, i.first_seen FROM dedupe_keys k JOIN items i ON i.id = k.item_id"
    )
    op.drop_table("dedupe_keys")
    op.rename_table("dedupe_keys_v1", "dedupe_keys")
    op.create_index("ix_dedupe_keys_at", "dedupe_keys", ["at"], unique=False)
