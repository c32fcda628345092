"""The dedupe key rows carry their item's site, so that band lookups leave out the
looked-up items' own site in the key tables themselves.

Two pages of one site are never near duplicates. SAM.gov notices sharing a description
shared their band keys too, and a cold 5,000-source poll read back 229,006 stored items
by their bands only to drop all but 178 of them for that (bench/README.md, eighteenth
session). Sites are numbered in ``dedupe_sites``; rows stored before this revision get
site 0, which no lookup leaves out (the lookup's own site rule still turns them down).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TABLES = ("dedupe_keys", "dedupe_mid_keys", "dedupe_new_keys")


def upgrade() -> None:
    op.create_table(
        "dedupe_sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("site"),
    )
    for table in _TABLES:
        # A constant default: neither engine rewrites the stored rows.
        op.add_column(table, sa.Column("site", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in _TABLES:
        # SQLite (3.35+) drops a column that is in no index or constraint.
        op.drop_column(table, "site")
    op.drop_table("dedupe_sites")
