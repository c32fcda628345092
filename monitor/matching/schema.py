"""What kind of value each known item field holds, for checking queries.

Terms search text; comparisons need numbers, money or dates. Knowing the kind of
a field lets the parser reject ``title>=5`` (a comparison on text) or
``posted>=1000`` (a number against a date) when the rule is loaded rather than
never matching. A field not listed here (a source type may add any) is ``any``:
both kinds of test are allowed and a value of the wrong type simply never matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["BUILTIN_COMPARABLE", "FIELD_KINDS", "kind_of"]

TEXT, NUMBER, MONEY, DATE, BOOL, ANY = "text", "number", "money", "date", "bool", "any"

# The fields every item has that comparisons read: ``published`` (the item's date)
# and ``amount`` (money found in its title, summary and content, see money.py).
BUILTIN_COMPARABLE: frozenset[str] = frozenset({"published", "amount"})

FIELD_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "title": TEXT,
        "summary": TEXT,
        "content": TEXT,
        "published": DATE,
        "amount": MONEY,
        # Procurement fields (sam, ocds, ted source types).
        "notice_id": TEXT,
        "solicitation_number": TEXT,
        "notice_type": TEXT,
        "base_type": TEXT,
        "agency": TEXT,
        "office": TEXT,
        "posted": DATE,
        "response_deadline": DATE,
        "naics": TEXT,
        "psc": TEXT,
        "set_aside": TEXT,
        "active": BOOL,
        "award_amount": MONEY,
        "award_date": DATE,
        "awardee": TEXT,
        "awardee_uei": TEXT,
        "ui_link": TEXT,
        "ocid": TEXT,
        "buyer": TEXT,
        "tag": TEXT,
        "status": TEXT,
        "value": MONEY,
        "suppliers": TEXT,
        "deadline": DATE,
        "cpv": TEXT,
        "publication_number": TEXT,
        "country": TEXT,
    }
)


def kind_of(field: str) -> str:
    """The kind of ``field``'s values; ``any`` for a field this table does not know."""
    return FIELD_KINDS.get(field, ANY)
