"""MinHash signatures and band keys move to 64-bit arithmetic (``monitor.dedupe.minhash64``).

A new item's fingerprint hashed each word pair's text with BLAKE2b, reduced modulo
2**61 - 1, and hashed each band twice more (its hex digest, then its key text): ~300 us
an item, most of a first poll's parse-worker time after parsing. Word hashes are now
cached and mixed into pair hashes, and a band key is the band's own 64-bit mix, written
in hex: ~180 us (bench/README.md, twenty-fifth session).

Signatures and band key rows are stored, so the items in the dedupe window are
re-fingerprinted here from their stored text (the title, the plain-text summary, and a
templated type's ``description`` field, as when they were fetched), and their band key
rows replaced: copies of events already seen are still recognised. Exact keys (URL,
title and site) are unchanged. The meta row that vouches for each process's filter of
stored keys is dropped, so no filter taken before this migration is trusted after it.

The downgrade cannot recompute the old signatures (that code is gone): it drops the new
band rows and the signatures, and exact copies are still recognised, near copies of
events seen before the downgrade are not (at worst they alert once more).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 03:40:00
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.dedupe import pack_signature, unpack_signature

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BATCH = 1000
_TABLES = ("dedupe_keys", "dedupe_mid_keys", "dedupe_new_keys")
_KEYS_TOKEN = "dedupe.keys_token"  # storage.keyfilter.KEYS_TOKEN  # noqa: S105 (a meta key)
_OLD_BANDS = 32


def upgrade() -> None:
    from monitor.dedupe.fingerprint import compared_body, fingerprint
    from monitor.sources import SOURCE_TYPES

    bind = op.get_bind()
    after = -1
    while rows := _signed_items(bind, after):
        after = rows[-1][0]
        removed, added, kept, dropped = [], [], [], []
        for item_id, packed, source_type, title, summary, content, url, raw_fields in rows:
            removed += [{"key": k, "item_id": item_id} for k in _old_band_ids(bytes(packed))]
            fields = _decoded(raw_fields)
            kind = SOURCE_TYPES.get(source_type)
            templated = kind is not None and kind.templated_summary
            body = compared_body(fields) if templated else None
            print_ = fingerprint(title, summary, content, url, fields, body=body)
            if not print_.signature:
                dropped.append({"item_id": item_id})
                continue
            kept.append({"item_id": item_id, "signature": pack_signature(print_.signature)})
            added += [{"key": k, "item_id": item_id} for k in print_.bands]
        for table in _TABLES:
            _many(bind, f"DELETE FROM {table} WHERE key = :key AND item_id = :item_id", removed)  # noqa: S608
        _many(
            bind,
            "INSERT INTO dedupe_keys (key, item_id) VALUES (:key, :item_id) ON CONFLICT DO NOTHING",
            added,
        )
        _many(
            bind,
            "UPDATE dedupe_signatures SET signature = :signature WHERE item_id = :item_id",
            kept,
        )
        _many(bind, "DELETE FROM dedupe_signatures WHERE item_id = :item_id", dropped)
    bind.execute(sa.text("DELETE FROM meta WHERE key = :key"), {"key": _KEYS_TOKEN})


def downgrade() -> None:
    from monitor.dedupe.fingerprint import band_keys

    bind = op.get_bind()
    after = -1
    while rows := _signed_items(bind, after):
        after = rows[-1][0]
        removed = []
        for item_id, packed, *_ in rows:
            signature = unpack_signature(bytes(packed))
            removed += [{"key": k, "item_id": item_id} for k in band_keys(signature)]
        for table in _TABLES:
            _many(bind, f"DELETE FROM {table} WHERE key = :key AND item_id = :item_id", removed)  # noqa: S608
    bind.execute(sa.text("DELETE FROM dedupe_signatures"))
    bind.execute(sa.text("DELETE FROM meta WHERE key = :key"), {"key": _KEYS_TOKEN})


def _signed_items(bind: sa.Connection, after: int) -> Sequence[Any]:
    """The next batch of items holding a signature, in id order, with what their
    fingerprint reads."""
    query = sa.text(
        "SELECT s.item_id, s.signature, i.source_type, i.title, i.summary, i.content, i.url, "
        "i.fields FROM dedupe_signatures s JOIN items i ON i.id = s.item_id "
        "WHERE s.item_id > :after ORDER BY s.item_id LIMIT :limit"
    )
    return bind.execute(query, {"after": after, "limit": _BATCH}).all()


def _many(bind: sa.Connection, statement: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        bind.execute(sa.text(statement), rows)


def _decoded(fields: Any) -> dict[str, Any]:
    """The item's fields: JSON text on SQLite, already decoded on PostgreSQL."""
    value = json.loads(fields) if isinstance(fields, str | bytes) else fields
    return dict(value) if isinstance(value, dict) else {}


def _old_band_ids(packed: bytes) -> list[int]:
    """The stored forms of the band keys the previous fingerprint gave ``packed``: each
    band's values joined with commas, its BLAKE2b hex digest, ``b:<band>:<digest>``,
    then that key's own BLAKE2b as a signed 64-bit integer."""
    values = [str(v) for v in unpack_signature(packed)]
    if not values:
        return []
    rows = len(values) // _OLD_BANDS
    ids = []
    for band in range(_OLD_BANDS):
        text = ",".join(values[band * rows : (band + 1) * rows])
        digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        key = f"b:{band}:{digest}".encode()
        ids.append(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), signed=True))
    return ids
