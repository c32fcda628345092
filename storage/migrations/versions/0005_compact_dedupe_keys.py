"""Compact dedupe keys and signatures: what a first poll of many sources writes most.

- ``dedupe_keys``: the key text becomes its 64-bit hash (``storage.dedupe.key_id``) and
  the table is keyed on (key, item_id), WITHOUT ROWID on SQLite; the (key, at) and
  item_id indexes and the surrogate id go. An item's ~34 rows went into five b-trees,
  three of them in random order; now one random and one in time order.
- ``dedupe_signatures``: 64 integers as 512 bytes instead of ~1.3 KB of JSON.

Existing rows are converted, so copies of events already seen are still recognised.
The downgrade recreates the old tables empty: a hash cannot be turned back into its key
text, and the rows are a cache of the dedupe window (at worst, copies of events seen
before the downgrade alert once more).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:55:00
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.dedupe import key_id, pack_signature

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.create_table(
        "dedupe_keys_v2",
        sa.Column("key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("item_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("key", "item_id"),
        sqlite_with_rowid=False,
    )
    _copy(
        "SELECT key, item_id, at FROM dedupe_keys",
        "dedupe_keys_v2",
        lambda row: {"key": key_id(row[0]), "item_id": row[1], "at": row[2]},
        conflict=("key", "item_id"),
    )
    op.drop_table("dedupe_keys")
    op.rename_table("dedupe_keys_v2", "dedupe_keys")
    op.create_index("ix_dedupe_keys_at", "dedupe_keys", ["at"], unique=False)

    op.create_table(
        "dedupe_signatures_v2",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("item_id"),
    )
    _copy(
        "SELECT item_id, signature, at FROM dedupe_signatures",
        "dedupe_signatures_v2",
        lambda row: {"item_id": row[0], "signature": _packed(row[1]), "at": row[2]},
        conflict=("item_id",),
    )
    op.drop_table("dedupe_signatures")
    op.rename_table("dedupe_signatures_v2", "dedupe_signatures")
    op.create_index("ix_dedupe_signatures_at", "dedupe_signatures", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("dedupe_keys")
    op.create_table(
        "dedupe_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "item_id", name="uq_dedupe_keys_key_item"),
    )
    op.create_index("ix_dedupe_keys_at", "dedupe_keys", ["at"], unique=False)
    op.create_index("ix_dedupe_keys_item_id", "dedupe_keys", ["item_id"], unique=False)
    op.create_index("ix_dedupe_keys_key_at", "dedupe_keys", ["key", "at"], unique=False)
    op.drop_table("dedupe_signatures")
    op.create_table(
        "dedupe_signatures",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("signature", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"]),
        sa.PrimaryKeyConstraint("item_id"),
    )
    op.create_index("ix_dedupe_signatures_at", "dedupe_signatures", ["at"], unique=False)


def _copy(query: str, table: str, convert: Any, *, conflict: Sequence[str]) -> None:
    """Every row of ``query`` into ``table`` through ``convert``, in batches (a large
    window holds millions of key rows; they are never all in memory)."""
    bind = op.get_bind()
    # A server-side cursor on PostgreSQL: the rows come in batches, not all at once.
    source = bind.execute(sa.text(query).execution_options(stream_results=True))
    # The query selects the target's columns by name.
    columns = list(source.keys())  # a Result iterates rows, not its column names
    target = sa.table(table, *(sa.column(c) for c in columns))
    if bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(target).on_conflict_do_nothing(index_elements=list(conflict))
    for rows in _batches(source):
        bind.execute(statement, [convert(row) for row in rows])


def _batches(result: Any) -> Iterator[Sequence[Any]]:
    while rows := result.fetchmany(_BATCH):
        yield rows


def _packed(stored: Any) -> bytes:
    values = json.loads(stored) if isinstance(stored, str | bytes) else stored
    return pack_signature([int(v) for v in values])
