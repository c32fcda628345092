"""The numbers of the sites in ``dedupe_sites``, which the dedupe key rows carry.

A number is remembered once it is seen committed: a number this transaction gave a
new site would, after a rollback, be given again, on SQLite, to whatever site came
next, and a key row tagged with the wrong site's number is left out of that site's
lookups, where it may be a near duplicate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlmodel import Session, col, select

from storage.tables import DedupeSite

InsertIgnoring = Callable[[Session, type[Any], Sequence[dict[str, Any]]], int]
# Sites written by this session's open transaction (``Session.info``): not yet remembered.
_UNCOMMITTED = "noticewatch.uncommitted_sites"


class SiteIds:
    """The numbers of the sites this process has seen committed; "" (no site) is 0."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {"": 0}

    def known(self, s: Session, site: str) -> int | None:
        """The number of ``site``, or None when no key row can hold it yet (nothing is
        written: a lookup then leaves no site out)."""
        if site not in self._ids:
            self._read(s, [site])
        return self._ids.get(site)

    def numbers(
        self, s: Session, sites: Iterable[str], insert: InsertIgnoring
    ) -> Mapping[str, int]:
        """The number of every one of ``sites``, numbering the new ones in ``s``'s
        transaction (``insert``: INSERT ... ON CONFLICT DO NOTHING)."""
        wanted = set(sites)
        pending: dict[str, int] = s.info.setdefault(_UNCOMMITTED, {})
        self._read(s, [site for site in wanted if site not in self._ids and site not in pending])
        new = sorted(site for site in wanted if site not in self._ids and site not in pending)
        if new:
            # Another replica may number the same site meanwhile: its number stands.
            insert(s, DedupeSite, [{"site": site} for site in new])
            pending.update(self._select(s, new))
        return {site: self._ids.get(site, pending.get(site, 0)) for site in wanted}

    def _read(self, s: Session, sites: list[str]) -> None:
        pending = s.info.get(_UNCOMMITTED, {})
        found = self._select(s, [site for site in sites if site not in pending])
        self._ids.update(found)

    @staticmethod
    def _select(s: Session, sites: list[str]) -> dict[str, int]:
        if not sites:
            return {}
        query = select(DedupeSite.site, DedupeSite.id).where(col(DedupeSite.site).in_(sites))
        return {site: int(ident) for site, ident in s.exec(query).all() if ident}


__all__ = ["SiteIds"]
