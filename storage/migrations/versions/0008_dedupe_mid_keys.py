"""Merged dedupe keys pass through ``dedupe_mid_keys`` on their way to ``dedupe_keys``.

Every merge of ``dedupe_new_keys`` rewrote most of the large key table; merges now go
into a middle table of at most ``DEDUPE_MID_ROWS`` rows, which is merged into the
large one ten times less often (``storage.dedupe.merge_new_keys``). Nothing is moved
here: lookups read all three tables.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dedupe_mid_keys",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("key", "item_id"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    # Revision 0007 reads dedupe_keys and dedupe_new_keys: the middle keys go to the first.
    op.execute(
        "INSERT INTO dedupe_keys (key, item_id) "
        "SELECT key, item_id FROM dedupe_mid_keys WHERE true ON CONFLICT DO NOTHING"
    )
    op.drop_table("dedupe_mid_keys")
