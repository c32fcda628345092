"""SAM.gov opportunity records -> items (pure: no I/O, no clock).

The input is a Get Opportunities v2 response body (``{"totalRecords", "opportunitiesData"}``)
or the same shape assembled by :class:`monitor.sources.sam.SamSource` from several pages.
Every value goes through :mod:`monitor.sources.values`, so ``null``, ``""`` and ``"null"``
all read as "no value", amounts become numbers and dates ISO 8601.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from monitor.errors import ParseError
from monitor.identity import content_hash, item_key
from monitor.matching.schema import BOOL, DATE, NUMBER, TEXT
from monitor.models import Item
from monitor.sources import values as v
from monitor.sources.api import load_page

# The fields items of this type carry, and what each holds (for rules on them).
SAM_FIELDS: Mapping[str, str] = MappingProxyType(
    {
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
        "award_amount": NUMBER,  # SAM.gov amounts are US dollars, given as plain numbers
        "award_date": DATE,
        "awardee": TEXT,
        "awardee_uei": TEXT,
        "ui_link": TEXT,
        "description": TEXT,  # filled by enrich() when a rule reads it
        "description_url": TEXT,  # where the description is (never with the key)
    }
)
DESCRIPTION_URL = "description_url"
_NO_SET_ASIDE = frozenset({"NONE"})


def records_of(page: Mapping[str, Any], source: str, where: str) -> list[dict[str, Any]]:
    """The ``opportunitiesData`` list (missing or null means no notices)."""
    records = page.get("opportunitiesData")
    if records is None:
        return []
    if not isinstance(records, list):
        raise ParseError(source, f"{where}: 'opportunitiesData' is not a list")
    return [r for r in records if isinstance(r, dict)]


def parse_sam(body: bytes, source: str) -> list[Item]:
    """Every record with a ``noticeId`` as an item, first occurrence of each id only."""
    page = load_page(body, source, "SAM.gov response")
    items: dict[str, Item] = {}
    for record in records_of(page, source, "SAM.gov response"):
        item = record_item(record, source)
        if item is not None and item.key not in items:
            items[item.key] = item
    return list(items.values())


def record_item(record: Mapping[str, Any], source: str) -> Item | None:
    """One opportunity as an Item; None for a record without a notice id."""
    notice_id = v.text(record.get("noticeId"))
    if notice_id is None:
        return None
    fields = record_fields(record)
    fields[DESCRIPTION_URL] = _http_url(record.get("description"))
    title = v.text(record.get("title")) or f"{fields['notice_type'] or 'Notice'} {notice_id}"
    summary = _summary(fields)
    url = fields["ui_link"]
    return Item(
        source=source,
        source_type="sam",
        key=item_key(notice_id, None, title, ""),
        content_hash=content_hash(title, summary, "", url, fields),
        title=title,
        url=url,
        published=v.as_datetime(fields["posted"]),
        summary_html=html.escape(summary, quote=False),
        language="en",
        fields=fields,
    )


def record_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The typed fields of one record (see the README's table of SAM fields)."""
    award = v.obj(record.get("award"))
    agency = v.text(record.get("fullParentPathName"))
    if agency is None:  # the deprecated v1 shape: department / subTier / office
        parts = [v.text(record.get(k)) for k in ("department", "subTier", "office")]
        agency = ".".join(p for p in parts if p) or None
    office = v.text(record.get("office")) or (agency.rsplit(".", 1)[-1] if agency else None)
    code = v.text(record.get("typeOfSetAside"))
    set_aside = v.text(record.get("typeOfSetAsideDescription")) or code
    return {
        "notice_id": v.text(record.get("noticeId")),
        "solicitation_number": v.text(record.get("solicitationNumber")),
        "notice_type": v.text(record.get("type")),
        "base_type": v.text(record.get("baseType")),
        "agency": agency,
        "office": office,
        "posted": v.when(record.get("postedDate")),
        "response_deadline": v.when(record.get("responseDeadLine")),
        "naics": v.text(record.get("naicsCode")),
        "psc": v.text(record.get("classificationCode")),
        "set_aside": None if code in _NO_SET_ASIDE else set_aside,
        "active": v.flag(record.get("active")),
        "award_amount": v.amount(v.dig(award, "amount")),
        "award_date": v.when(v.dig(award, "date")),
        "awardee": v.text(v.dig(award, "awardee", "name")),
        "awardee_uei": v.text(v.dig(award, "awardee", "ueiSAM")),
        "ui_link": _http_url(record.get("uiLink")),
    }


def _http_url(value: Any) -> str | None:
    url = v.text(value)
    return url if url and url.lower().startswith(("http://", "https://")) else None


def _summary(fields: Mapping[str, Any]) -> str:
    """One line a reader (and a plain-text rule) can use: type, agency, number, award."""
    parts = [
        fields["notice_type"],
        fields["agency"],
        f"Solicitation {fields['solicitation_number']}" if fields["solicitation_number"] else None,
        f"NAICS {fields['naics']}" if fields["naics"] else None,
        f"Set-aside: {fields['set_aside']}" if fields["set_aside"] else None,
        f"Awardee: {fields['awardee']}" if fields["awardee"] else None,
        f"Award amount: {fields['award_amount']:,.2f}"
        if fields["award_amount"] is not None
        else None,
        f"Response deadline: {fields['response_deadline']}"
        if fields["response_deadline"]
        else None,
    ]
    return " · ".join(p for p in parts if p)
