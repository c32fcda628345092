"""Dedupe keys are written to ``dedupe_new_keys`` and merged into ``dedupe_keys``.

A first poll wrote each item's ~34 random keys straight into the large key table, so
every commit dirtied ~1,500 of its leaves; new keys now go to a small table and are
moved over in sorted batches (``storage.dedupe.merge_new_keys``). Nothing is moved
here: lookups read both tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 14:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dedupe_new_keys",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("key", "item_id"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # Revision 0006 reads dedupe_keys only: the keys not merged yet go there first.
    op.execute(
        "INSERT INTO dedupe_keys (key, item_id) "
        "SELECT key, item_id FROM dedupe_new_keys WHERE true ON CONFLICT DO NOTHING"
    )
    op.drop_table("dedupe_new_keys")
