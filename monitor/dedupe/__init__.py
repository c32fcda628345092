"""One alert per real-world event: exact and near duplicates across sources.

``fingerprint`` says what an item looks like to the finder (pure), ``plan`` decides
which new items are later copies and what becomes of their alerts (pure); the store
keeps the keys and links (``storage/dedupe.py``) and the pipeline wires them up.
"""

from monitor.dedupe.fingerprint import Fingerprint, fingerprint, item_fingerprint
from monitor.dedupe.plan import (
    DEFAULT_THRESHOLD,
    DEFAULT_WINDOW,
    Attachment,
    CopyLink,
    DedupeOutcome,
    DedupePolicy,
    Event,
    History,
    Seen,
    dedupe_batch,
    find_original,
    item_entry,
    settle_amended,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "DEFAULT_WINDOW",
    "Attachment",
    "CopyLink",
    "DedupeOutcome",
    "DedupePolicy",
    "Event",
    "Fingerprint",
    "History",
    "Seen",
    "dedupe_batch",
    "find_original",
    "fingerprint",
    "item_entry",
    "item_fingerprint",
    "settle_amended",
]
