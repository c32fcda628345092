"""OCDS release packages (``type = "ocds"``): UK Contracts Finder, Find a Tender, and any
publisher of the Open Contracting Data Standard.

Example::

    [[sources]]
    name = "contracts-finder"
    type = "ocds"
    url = "https://www.contractsfinder.service.gov.uk/Published/Notices/OCDS/Search?order=desc"
    every = "1h"
    max_pages = 5        # follow links.next at most this many pages per poll
    backoff = "10m"      # how long to wait after an HTTP 403 (Contracts Finder's throttle)

Each release becomes one item per *notice*: its ``ocid`` plus the release id without the
publisher's version suffix (``8f124d5d-...-819842`` and ``8f124d5d-...-819916`` are two
versions of one notice), so a ``tenderAmendment`` or ``awardUpdate`` release is an update
of the same item, never a new one. Pages are followed through ``links.next``. A 429 is
honoured through its ``Retry-After``; a 403 pauses the source for ``backoff``. Throttled
after the first page, the pages already read are kept (and alert) and the source waits. Releases
without an ``ocid`` are skipped and logged. Fields: ``ocid``, ``buyer``, ``tag``,
``status``, ``value`` (amount and currency), ``suppliers``, ``deadline``, ``cpv``.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import AfterValidator, Field

from monitor.config_base import SourceConfig
from monitor.durations import Duration, format_duration
from monitor.errors import FetchError, ParseError
from monitor.identity import content_hash, item_key
from monitor.matching.schema import DATE, MONEY, TEXT
from monitor.models import Item
from monitor.sources import values as v
from monitor.sources.api import check_http_url, load_page
from monitor.sources.base import Fetched, FetchLimits, FetchState, SourceType, builder
from monitor.sources.http import fetch_url, redact_url

log = logging.getLogger("noticewatch.sources.ocds")

# The fields items of this type carry, and what each holds (for rules on them).
OCDS_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "ocid": TEXT,
        "buyer": TEXT,
        "tag": TEXT,
        "status": TEXT,
        "value": MONEY,
        "suppliers": TEXT,
        "deadline": DATE,
        "cpv": TEXT,
        "release_id": TEXT,
    }
)
_VERSION_SUFFIX = re.compile(r"-\d+$")
_NOTICE_DOCUMENTS = ("tenderNotice", "awardNotice", "contractNotice", "marketEngagementNotice")
_UNHASHED = frozenset({"tag", "release_id"})  # which release said it, not what it says


class OcdsSourceConfig(SourceConfig):
    """The keys of an ``ocds`` source."""

    type: Literal["ocds"]
    url: Annotated[str, AfterValidator(check_http_url)]
    max_pages: int = Field(default=5, ge=1, le=1000)
    backoff: Duration = timedelta(minutes=10)
    timeout: Duration = timedelta(seconds=60)

    def identity(self) -> str:
        return self.url


class OcdsSource:
    """An OCDS release-package endpoint; ``fetch`` follows ``links.next``, ``parse`` is pure."""

    type: ClassVar[str] = "ocds"

    def __init__(self, config: OcdsSourceConfig, limits: FetchLimits) -> None:
        self.config = config
        self.limits = replace(limits, deadline=config.timeout)

    @property
    def name(self) -> str:
        return self.config.name

    async def fetch(self, client: httpx.AsyncClient, state: FetchState) -> Fetched:
        """Up to ``max_pages`` packages, their releases assembled into one package."""
        releases: list[Any] = []
        url: str | None = self.config.url
        visited: set[str] = set()
        first: Fetched | None = None
        while url is not None and url not in visited and len(visited) < self.config.max_pages:
            visited.add(url)
            try:
                fetched = await self._get(client, url, state if first is None else None)
            except FetchError as e:
                if first is None or e.retry_after is None:
                    raise
                # Throttled part-way: keep the (newest) pages read and wait as asked.
                # The first page's validators are dropped, so the next poll reads on.
                log.warning(
                    "source=%s kept the %d releases of %d pages read; %s",
                    self.name, len(releases), len(visited) - 1, e.what,
                )  # fmt: skip
                partial = replace_body(first, releases)
                return replace(partial, etag=None, last_modified=None, retry_after=e.retry_after)
            if first is None:
                first = fetched
                if fetched.not_modified:
                    return fetched
            package = load_page(fetched.body, self.name, f"GET {redact_url(url)}")
            page = package.get("releases")
            if not isinstance(page, list):
                raise ParseError(
                    self.name,
                    f"GET {redact_url(url)}: no 'releases' list; is url an OCDS release package?",
                )
            releases.extend(page)
            url = _next_link(package)
        if url is not None and url not in visited:
            # Silently reading part of the feed would hide notices: say which key to change.
            log.warning(
                "source=%s stopped after max_pages=%d pages with links.next still pointing "
                "further; raise max_pages or poll more often (every) if notices are missed",
                self.name, self.config.max_pages,
            )  # fmt: skip
        assert first is not None
        return replace_body(first, releases)

    async def _get(self, client: httpx.AsyncClient, url: str, state: FetchState | None) -> Fetched:
        fetched = await fetch_url(
            client,
            url,
            source=self.name,
            limits=self.limits,
            state=state,
            accept="application/json",
            passthrough=frozenset({403}),
        )
        if fetched.status == 403:
            wait = self.config.backoff
            raise FetchError(
                self.name,
                f"GET {redact_url(url)}: HTTP 403 Forbidden; backing off for "
                f"{format_duration(wait)} (Contracts Finder answers 403 when it throttles)",
                hint="if it persists, check the URL or raise 'every'",
                retry_after=str(int(wait.total_seconds())),
            )
        return fetched

    def parse(self, fetched: Fetched) -> list[Item]:
        return parse_releases(fetched.body, self.name)


def replace_body(first: Fetched, releases: list[Any]) -> Fetched:
    """The first page's validators with every page's releases (one body to hash and parse)."""
    body = json.dumps({"releases": releases}, sort_keys=True, ensure_ascii=False).encode()
    return Fetched(
        url=redact_url(first.url),
        status=first.status,
        body=body,
        etag=first.etag,
        last_modified=first.last_modified,
        content_type="application/json",
        elapsed=first.elapsed,
    )


def _next_link(package: dict[str, Any]) -> str | None:
    link = v.text(v.dig(package, "links", "next"))
    return link if link and link.lower().startswith(("http://", "https://")) else None


def parse_releases(body: bytes, source: str) -> list[Item]:
    """One item per notice, from its latest release in the body; pure but for a warning."""
    package = load_page(body, source, "OCDS release package")
    releases = package.get("releases")
    if not isinstance(releases, list):
        raise ParseError(source, "OCDS release package: no 'releases' list")
    latest: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for release in releases:
        if not isinstance(release, dict):
            continue
        ocid = v.text(release.get("ocid"))
        if ocid is None:
            missing.append(v.text(release.get("id")) or "(no id)")
            continue
        notice = _VERSION_SUFFIX.sub("", v.text(release.get("id")) or "") or ocid
        key = f"{ocid}/{notice}"
        kept = latest.get(key)
        if kept is None or (v.text(release.get("date")) or "") >= (v.text(kept.get("date")) or ""):
            latest[key] = release
    if missing:
        log.warning(
            "source=%s skipped %d releases without an 'ocid' (release ids: %s)",
            source,
            len(missing),
            ", ".join(missing[:5]),
        )
        if not latest:
            raise ParseError(source, "no release has an 'ocid': not OCDS release data?")
    return [release_item(key, release, source) for key, release in latest.items()]


def release_item(key: str, release: dict[str, Any], source: str) -> Item:
    tender = v.obj(release.get("tender"))
    awards = [a for a in release.get("awards") or [] if isinstance(a, dict)]
    fields = release_fields(release, tender, awards)
    title = (
        v.text(tender.get("title"))
        or next((t for a in awards if (t := v.text(a.get("title")))), None)
        or fields["ocid"]
    )
    description = v.text(tender.get("description")) or ""
    url = _notice_url(tender, awards, release)
    hashed = {k: value for k, value in fields.items() if k not in _UNHASHED}
    return Item(
        source=source,
        source_type="ocds",
        key=item_key(key, None, title, ""),
        content_hash=content_hash(title, description, "", url, hashed),
        title=title,
        url=url,
        published=v.as_datetime(v.when(release.get("date"))),
        summary_html=html.escape(description, quote=False),
        language=v.text(release.get("language")),
        fields=fields,
    )


def release_fields(
    release: dict[str, Any], tender: dict[str, Any], awards: list[dict[str, Any]]
) -> dict[str, Any]:
    tender_value = v.money(v.dig(tender, "value", "amount"), v.dig(tender, "value", "currency"))
    award_value = next(
        (
            money
            for a in awards
            if (money := v.money(v.dig(a, "value", "amount"), v.dig(a, "value", "currency")))
        ),
        None,
    )
    suppliers = [
        s.get("name") for a in awards for s in a.get("suppliers") or [] if isinstance(s, dict)
    ]
    classes = [tender.get("classification"), *(tender.get("additionalClassifications") or [])]
    cpv = [
        c.get("id")
        for c in classes
        if isinstance(c, dict) and (v.text(c.get("scheme")) or "").upper() == "CPV"
    ]
    return {
        "ocid": v.text(release.get("ocid")),
        "release_id": v.text(release.get("id")),
        "buyer": v.text(v.dig(release, "buyer", "name")),
        "tag": v.texts(release.get("tag") or []),
        "status": v.text(tender.get("status")),
        "value": award_value or tender_value,
        "suppliers": v.texts(suppliers),
        "deadline": v.when(v.dig(tender, "tenderPeriod", "endDate")),
        "cpv": v.texts(cpv),
    }


def _notice_url(
    tender: dict[str, Any], awards: list[dict[str, Any]], release: dict[str, Any]
) -> str | None:
    planning = v.obj(release.get("planning"))
    documents = [
        d
        for holder in (tender, *awards, planning)
        for d in holder.get("documents") or []
        if isinstance(d, dict)
    ]
    for document in documents:
        url = v.text(document.get("url"))
        if document.get("documentType") in _NOTICE_DOCUMENTS and url:
            return url
    return None


SOURCE_TYPE = SourceType(
    name="ocds",
    config_model=OcdsSourceConfig,
    build=builder(OcdsSourceConfig, OcdsSource),
    help=__doc__ or "",
    fields=OCDS_FIELDS,
)
