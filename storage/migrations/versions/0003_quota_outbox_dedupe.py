"""Procurement quota, an outbox for system messages and digests, and dedupe.

- ``request_counts``: requests per API key fingerprint per UTC day (SAM.gov quota).
- ``alerts``: ``item_id`` nullable (system messages are about no item), ``digest_id``, and
  no more unique (item_id, notifier): an amended notice gets one alert per version, and the
  deterministic alert id is what keeps a delivery single.
- ``source_state.failing_since``, ``notifier_state.failing_since`` / ``digest_slot``.
- ``dedupe_keys``, ``dedupe_signatures``, ``duplicates``: one alert per real-world event.

The downgrade cannot restore the unique constraint once updates have been recorded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:51:03.828293
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_counts",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "day"),
    )
    op.create_table(
        "dedupe_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "item_id", name="uq_dedupe_keys_key_item"),
    )
    with op.batch_alter_table("dedupe_keys", schema=None) as batch_op:
        batch_op.create_index("ix_dedupe_keys_at", ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_dedupe_keys_item_id"), ["item_id"], unique=False)
        batch_op.create_index("ix_dedupe_keys_key_at", ["key", "at"], unique=False)

    op.create_table(
        "dedupe_signatures",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
        ),
        sa.PrimaryKeyConstraint("item_id"),
    )
    with op.batch_alter_table("dedupe_signatures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dedupe_signatures_at"), ["at"], unique=False)

    op.create_table(
        "duplicates",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("original_id", sa.Integer(), nullable=False),
        sa.Column("match", sa.String(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["items.id"],
        ),
        sa.ForeignKeyConstraint(
            ["original_id"],
            ["items.id"],
        ),
        sa.PrimaryKeyConstraint("item_id"),
    )
    with op.batch_alter_table("duplicates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_duplicates_original_id"), ["original_id"], unique=False
        )

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest_id", sa.String(), nullable=True))
        batch_op.alter_column("item_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.drop_constraint(batch_op.f("uq_alerts_item_notifier"), type_="unique")
        batch_op.create_index(batch_op.f("ix_alerts_digest_id"), ["digest_id"], unique=False)

    with op.batch_alter_table("notifier_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("digest_slot", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("source_state", schema=None) as batch_op:
        batch_op.drop_column("failing_since")

    with op.batch_alter_table("notifier_state", schema=None) as batch_op:
        batch_op.drop_column("digest_slot")
        batch_op.drop_column("failing_since")

    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_digest_id"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_alerts_item_notifier"), ["item_id", "notifier"]
        )
        batch_op.alter_column("item_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("digest_id")

    with op.batch_alter_table("duplicates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duplicates_original_id"))

    op.drop_table("duplicates")
    with op.batch_alter_table("dedupe_signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dedupe_signatures_at"))

    op.drop_table("dedupe_signatures")
    with op.batch_alter_table("dedupe_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_dedupe_keys_key_at")
        batch_op.drop_index(batch_op.f("ix_dedupe_keys_item_id"))
        batch_op.drop_index("ix_dedupe_keys_at")

    op.drop_table("dedupe_keys")
    op.drop_table("request_counts")
