"""SQLModel tables. These are storage rows, never config models (they do not validate).

Uniqueness lives in constraints, not in check-then-insert code:
items are unique on (source, item_key); an alert's id is derived from what it is about
(item and notifier, plus the item version for ``alert.updated``), so its primary key is
its uniqueness.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

SCHEMA_VERSION = 1


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Meta(SQLModel, table=True):
    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


class SourceState(SQLModel, table=True):
    """What noticewatch remembers of each source between fetches."""

    __tablename__ = "source_state"

    name: str = Field(primary_key=True)
    type: str
    identity: str = ""
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    baselined: bool = False
    last_fetch_at: datetime | None = _when()
    last_success_at: datetime | None = _when()
    last_outcome: str | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    paused_until: datetime | None = _when()  # the server asked us to wait (Retry-After)
    consecutive_failures: int = 0
    failing_since: datetime | None = _when()  # when source.failing was queued, until recovery
    fetches: int = 0
    failures: int = 0


class ItemRow(SQLModel, table=True):
    """One normalised item; ``content_hash`` tells an amended item from a re-served one."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("source", "item_key", name="uq_items_source_key"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(index=True)
    source_type: str
    item_key: str
    content_hash: str
    version: int = 1
    title: str = Field(sa_column=Column(Text, nullable=False))
    url: str | None = Field(default=None, sa_column=Column(Text))
    published: datetime | None = _when(index=True)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    summary_html: str = Field(default="", sa_column=Column(Text, nullable=False))
    content: str = Field(default="", sa_column=Column(Text, nullable=False))
    language: str | None = None
    fields: dict[str, Any] = _json()
    first_seen: datetime = _when(nullable=False, index=True)
    last_seen: datetime = _when(nullable=False)
    updated_at: datetime | None = _when()


class AlertRow(SQLModel, table=True):
    """The outbox: one ``alert.created`` row per (item, notifier), and one ``alert.updated``
    per later version of the item that still matches, written with the items.

    ``id`` is the ``webhook-id``: derived from (source, item key, notifier), and for an
    update also the item's content hash, so it is the same on every retry and even if
    the same alert were ever planned twice.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_due", "status", "notifier", "next_attempt_at"),)

    id: str = Field(primary_key=True)
    # None for system messages (source.failing, notifier.disabled, alert.digest), which
    # are about no single item but travel the same durable outbox.
    item_id: int | None = Field(default=None, foreign_key="items.id", index=True)
    notifier: str
    event_type: str = "alert.created"
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    data: dict[str, Any] = _json()
    status: str = "pending"  # pending | delivered | dead | digested
    attempts: int = 0
    created_at: datetime = _when(nullable=False)
    next_attempt_at: datetime = _when(nullable=False)
    delivered_at: datetime | None = _when()
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    digest_id: str | None = Field(default=None, index=True)  # the digest that carried it
    # The replica delivering it now and until when (``storage/leases.py``); an expired
    # claim is taken over by another replica.
    claimed_by: str | None = None
    claim_expires_at: datetime | None = _when()


class SourceLease(SQLModel, table=True):
    """Which replica fetches a source now (``holder`` until ``expires_at``), and when the
    source is next due for any replica (``storage/leases.py``)."""

    __tablename__ = "source_leases"

    name: str = Field(primary_key=True)
    holder: str | None = None
    claimed_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    next_due_at: datetime | None = _when()
    last_holder: str | None = None  # who fetched it last, for ``status``


class DeliveryAttempt(SQLModel, table=True):
    """Every attempt to deliver an alert, kept for ``status`` and debugging."""

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str = Field(foreign_key="alerts.id", index=True)
    notifier: str
    attempt: int
    at: datetime = _when(nullable=False)
    outcome: str
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    duration_ms: int = 0


class NotifierState(SQLModel, table=True):
    """A notifier disabled by its endpoint (HTTP 410) stays disabled until its config changes
    or ``noticewatch enable``; ``failing_since`` starts the clock of ``disable_after``."""

    __tablename__ = "notifier_state"

    name: str = Field(primary_key=True)
    fingerprint: str
    disabled_at: datetime | None = _when()
    disabled_reason: str | None = None
    failing_since: datetime | None = _when()  # first failure since the last success
    digest_slot: datetime | None = _when()  # the last digest boundary already handled


class RequestCount(SQLModel, table=True):
    """Requests spent per API key per UTC day (metered APIs such as SAM.gov).

    ``key`` is a fingerprint (``sam:<hex>``), never the key itself.
    """

    __tablename__ = "request_counts"

    key: str = Field(primary_key=True)
    day: str = Field(primary_key=True)  # ISO date, UTC
    count: int = 0


class DedupeKey(SQLModel, table=True):
    """The keys an item is found under by the duplicate finder (``monitor/dedupe``):
    its canonical URL, title + domain, and MinHash band keys. Kept per item so that
    dedupe survives restarts and works across sources; an item's keys count while its
    ``first_seen`` is within the dedupe window (no time of their own: in every one of an
    item's rows, and in an index as large as the table, it was half a first poll's writes).

    ``key`` is a 64-bit hash of an exact key's text (``storage.dedupe.key_id``), or a band
    key, which is a 64-bit value already (``Fingerprint.bands``): an item brings
    ~34 keys, and as text they made this table and its indexes most of the database and
    of a first poll's writes. A hash collision only adds a candidate, which the finder
    then compares on the real keys. The primary key (key, item_id) is the lookup index
    (SQLite stores the table in it: WITHOUT ROWID).

    No foreign key to ``items``, here or in the two tables below: each row is copied
    twice on its way here, and SQLite looked its item up on every copy (revision 0009).
    The rows are written with their items and deleted by item id; items stay.
    """

    __tablename__ = "dedupe_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    item_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class DedupeNewKey(SQLModel, table=True):
    """Dedupe keys written since they were last merged into ``dedupe_keys``: the same
    rows, found by the same lookups (``storage.dedupe``).

    An item's ~34 keys are random 64-bit values, so in one large table every commit
    dirtied ~1,500 random leaves of it (~6 MB of WAL a first poll's source, 8.6 GB for
    1,000 sources). Here they land in a table small enough to stay in the page cache,
    and a merge moves them, sorted, into ``dedupe_keys`` every ``DEDUPE_MERGE_ROWS``
    rows: each leaf of the large table is then written once a merge, not once a source.
    """

    __tablename__ = "dedupe_new_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    item_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class DedupeMidKey(SQLModel, table=True):
    """Dedupe keys merged out of ``dedupe_new_keys`` and not yet into ``dedupe_keys``:
    the same rows, found by the same lookups (``storage.dedupe``).

    With two tables, every merge rewrote most of ``dedupe_keys``: at 5,000 first-poll
    sources (~170 MB of keys) one merge every ~30 sources wrote 42 GB in all. Merges
    into this middle table rewrite at most ``DEDUPE_MID_ROWS`` rows (~10 MB), and the
    large table is rewritten ten times less often.
    """

    __tablename__ = "dedupe_mid_keys"
    __table_args__ = {"sqlite_with_rowid": False}

    key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    item_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))


class Duplicate(SQLModel, table=True):
    """A later copy of an event: ``item_id`` was first seen as ``original_id`` (the
    first copy of the event, never itself a copy)."""

    __tablename__ = "duplicates"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    original_id: int = Field(foreign_key="items.id", index=True)
    match: str  # same_url | same_title | near
    similarity: float = 1.0
    at: datetime = _when(nullable=False)


class DedupeSignature(SQLModel, table=True):
    """An item's MinHash signature (``monitor/dedupe``), so that a candidate copy is
    compared without hashing its text again."""

    __tablename__ = "dedupe_signatures"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    # 64 unsigned 64-bit integers, big-endian (``storage.dedupe.pack_signature``):
    # a quarter of their JSON, and read without parsing.
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    at: datetime = _when(nullable=False, index=True)


class Subscription(SQLModel, table=True):
    """A webhook endpoint subscribed through the API; delivered like a config webhook.

    ``secret`` is the ``whsec_`` signing secret, shown once when the subscription is
    created; it has to be stored in the clear, since every delivery is signed with it.
    """

    __tablename__ = "subscriptions"

    id: str = Field(primary_key=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str
    rules: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = _when(nullable=False)
