"""What an item looks like to the duplicate finder (pure): exact keys, MinHash, names.

- **Exact keys.** ``u:`` + the item's canonical URL key (``http``/``https`` alike).
  An aggregator copy (an RSS item with a ``<source>``, as Google News sends) also has
  ``g:`` + its title without the `` - Publisher`` suffix + the publisher's domain; it
  finds, and is found by, ``p:`` + title + domain of an ordinary item. Two ordinary
  items with the same title on one site are never exact duplicates by title alone: a
  regulator reuses titles ("Newsletter", "Ordinanza ingiunzione") for different acts.
- **MinHash** over word 2-shingles of the folded title and summary (an aggregator
  copy: its title only, its summary is the title again plus the publisher), with
  :data:`BANDS` LSH band keys so that candidates are found by index lookups. A band
  key is a 64-bit integer, its own stored form; exact keys are text until stored
  (:func:`key_id`).
- **Names**: the title's tokens that tell two events apart: numbers (amounts, years,
  decision numbers) and capitalised words (CNIL, Clearview, Garante). Two similar
  items whose titles *both* name something the other item never mentions are two
  events (two fines of one regulator, one vendor fined by two regulators); a copy
  that rewords only one side still matches. Two pages of one site are never near
  duplicates either: the same text under two addresses of one regulator is two acts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any
from urllib.parse import urlsplit

from monitor.identity import item_key
from monitor.matching.fold import fold, words
from monitor.models import Item

SHINGLE = 2
PERMUTATIONS = 64
BANDS = 32  # of PERMUTATIONS // BANDS = 2 rows each
# Two items are near-duplicate candidates when they share this many bands: a pair 50 %
# alike does so 99.8 % of the time, a pair 5 % alike (two stories) 0.3 % of the time.
MIN_SHARED_BANDS = 2
MIN_SHINGLES = 5  # fewer than this and there is too little text to call two items the same
MAX_WORDS = 150  # a long body would dilute a teaser; the opening says what the item is about
MIN_TITLE_WORDS = 3
_NUMBER = re.compile(r"\d[\d.,']*\d|\d")
_WORD = re.compile(r"[^\W_]+")
# A brand written as its domain ("bol.com"): the name is the label before the dot.
_DOMAIN_NAME = re.compile(r"(?<![\w.])([^\W_][\w-]*)\.[a-z]{2,}\b")


@dataclass(frozen=True)
class KeyQuery:
    """What finds an item's earlier copies in the store, in stored form: its exact lookup
    keys' ids, and its band keys; ``signature``, the MinHash the band keys come from,
    turns down the stored items that share too few whole bands with it."""

    exact: frozenset[int]
    bands: frozenset[int]
    signature: tuple[int, ...] = ()


@dataclass(frozen=True)
class Fingerprint:
    """An item as the duplicate finder sees it; names and mentions are derived on demand
    (only a pair that reads alike needs them)."""

    stored: frozenset[str]  # exact keys the item is found under
    lookup: frozenset[str]  # exact keys that find its copies
    signature: tuple[int, ...]  # empty when the text is too short to compare
    headline: str  # the title, without an aggregator's " - Publisher"
    text: str  # title, summary and content
    site: str = ""  # the domain of the item's own page; "" for an aggregator copy
    published: datetime | None = None
    # Its band keys (:func:`band_keys`), found under and finding alike: integers, not
    # text, because a first poll's loop handles ~1.7 M of them (bench/README.md,
    # twenty-sixth session).
    bands: frozenset[int] = frozenset()

    @cached_property
    def key_ids(self) -> dict[str, int]:
        """The stored form (:func:`key_id`) of each exact stored and lookup key. A parse
        worker computes them with the fingerprint, and they travel back with it."""
        return {key: key_id(key) for key in self.stored | self.lookup}

    @property
    def stored_ids(self) -> list[int]:
        """Every key the item is stored under, in stored form."""
        ids = self.key_ids
        return [*(ids[key] for key in self.stored), *self.bands]

    @property
    def query(self) -> KeyQuery:
        ids = self.key_ids
        return KeyQuery(frozenset(ids[key] for key in self.lookup), self.bands, self.signature)

    @cached_property
    def names(self) -> frozenset[str]:
        return names(self.headline)

    @cached_property
    def mentions(self) -> frozenset[str]:
        """The folded words and numbers of the whole text."""
        return mentions(self.text)


def fingerprint(
    title: str,
    summary: str,
    content: str,
    url: str | None,
    fields: dict[str, Any],
    signature: tuple[int, ...] | None = None,
    published: datetime | None = None,
    body: str | None = None,
) -> Fingerprint:
    """The fingerprint of one item from its plain-text parts; a stored item passes its
    stored MinHash ``signature`` rather than have it computed again. The MinHash reads
    the title and ``body`` (the summary when None)."""
    publisher = fields.get("source_url")
    aggregated = isinstance(publisher, str) and bool(publisher)
    headline = _strip_publisher(title, fields.get("source_title")) if aggregated else title
    stored: set[str] = set()
    lookup: set[str] = set()
    if url:
        key = "u:" + item_key(None, url, "", "")
        stored.add(key)
        lookup.add(key)
    folded_title = " ".join(words(headline))
    domain = _domain(publisher if aggregated else url)
    if domain and len(folded_title.split()) >= MIN_TITLE_WORDS:
        own = f"{folded_title}|{domain}"
        stored.add(("g:" if aggregated else "p:") + own)
        lookup.add("g:" + own)
        if aggregated:
            lookup.add("p:" + own)
    if signature is None:
        compared = headline if aggregated else f"{headline}\n{summary if body is None else body}"
        signature = minhash(words(compared)[:MAX_WORDS])
    return Fingerprint(
        stored=frozenset(stored),
        lookup=frozenset(lookup),
        signature=signature,
        headline=headline,
        text=f"{title}\n{summary}\n{content}",
        site=site_of(url, fields),
        published=published,
        bands=band_keys(signature),
    )


def item_fingerprint(item: Item, *, templated_summary: bool = False) -> Fingerprint:
    """The fingerprint of a freshly fetched item (its MinHash computed). An item whose
    summary is a template of its fields (``SourceType.templated_summary``) is compared
    on its title and ``description`` field instead."""
    return fingerprint(
        item.title,
        item.summary,
        item.content,
        item.url,
        item.fields,
        published=item.published,
        body=compared_body(item.fields) if templated_summary else None,
    )


def compared_body(fields: Mapping[str, Any]) -> str:
    """What the MinHash reads after the title for a type whose summary is a template of
    its fields (``SourceType.templated_summary``): the ``description`` field."""
    description = fields.get("description")
    return description if isinstance(description, str) else ""


def minhash(tokens: list[str]) -> tuple[int, ...]:
    """The MinHash signature of ``tokens``' word pairs (:mod:`monitor.dedupe.minhash64`);
    empty for fewer than :data:`MIN_SHINGLES` distinct pairs."""
    if len(tokens) - (SHINGLE - 1) < MIN_SHINGLES:  # too few pairs, even all distinct
        return ()
    # Imported here: numpy loads on the first MinHash, not with every command.
    from monitor.dedupe.minhash64 import min_hashes, pair_hashes

    pairs = pair_hashes(list(map(_word_hash, tokens)))
    if len(set(pairs.tolist())) < MIN_SHINGLES:
        return ()
    return tuple(min_hashes(pairs, PERMUTATIONS).tolist())


def band_keys(signature: tuple[int, ...]) -> frozenset[int]:
    """The band keys of ``signature``: each band of :data:`BANDS` mixed into one 64-bit
    value (:func:`monitor.dedupe.minhash64.band_ids`), signed as SQLite and BIGINT
    store it, which is its stored form."""
    if not signature:
        return frozenset()
    from monitor.dedupe.minhash64 import band_ids

    return frozenset(map(_signed64, band_ids(signature, BANDS)))


@lru_cache(maxsize=1 << 12)
def _word_hash(word: str) -> int:
    # Cached: words repeat across items far more than word pairs do, and the commonest
    # few thousand make most of any text. Bounded to ~1 MB: `run` fingerprints in its
    # own process, whose idle memory has a target (65,536 words held ~11 MB, 16,384
    # ~3.8 MB). On Zipf-drawn items 4,096 words hit 80 % (16,384: 97 %) for 3 us more
    # an item of 60 words.
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest())


def min_shared_bands(threshold: float) -> int:
    """The fewest band keys two signatures share when their :func:`similarity` reaches
    ``threshold``, and never fewer than :data:`MIN_SHARED_BANDS`.

    Each unequal value spoils at most one band, so two signatures with ``equal`` of
    their PERMUTATIONS values equal share at least ``BANDS - (PERMUTATIONS - equal)``
    whole bands. Asking candidates for that many loses no pair the threshold would
    accept, and drops the pairs that share two or three bands by chance (at 0.6, seven
    are needed): with 50,000 items stored those were ~12 per new item, all compared
    and all rejected.
    """
    equal = next((n for n in range(PERMUTATIONS + 1) if n / PERMUTATIONS >= threshold), 0)
    return max(MIN_SHARED_BANDS, BANDS - (PERMUTATIONS - equal))


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The estimated Jaccard similarity of two signatures (0 if either is empty)."""
    if not a or len(a) != len(b):
        return 0.0
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def names(title: str) -> frozenset[str]:
    """The folded tokens of ``title`` that name something: numbers, words with a capital
    anywhere (``CNIL``, ``Clearview``, ``eBay``, ``iRobot``) and brands written as a
    domain (``bol.com``).

    In a Title Case headline that is every word; the check in :func:`conflicting`
    only needs them to appear in the *other* item, which a true copy's text does.
    """
    found = {_number(n) for n in _NUMBER.findall(title)}
    found.update(fold(t) for t in _WORD.findall(title) if t[0].isalpha() and not t.islower())
    found.update(fold(m) for m in _DOMAIN_NAME.findall(title) if m[0].isalpha())
    return frozenset(found)


def mentions(text: str) -> frozenset[str]:
    """The folded words and the numbers (``7.5``, ``7552800``) of ``text``."""
    return frozenset(words(text)) | {_number(n) for n in _NUMBER.findall(text)}


def conflicting(a: Fingerprint, b: Fingerprint) -> bool:
    """True when a and b cannot be one event however alike they read: two pages of one
    site (a regulator does not republish its own release under another address, but
    does reuse templates), or titles that each name something the other never mentions."""
    if a.site and a.site == b.site:
        return True
    return bool(a.names - b.mentions) and bool(b.names - a.mentions)


def _number(text: str) -> str:
    """``7,552,800`` and ``7.552.800`` -> ``7552800``; ``7.5`` and ``7,5`` -> ``7.5``."""
    digits = re.sub(r"[.,'](?=\d{3}(?:\D|$))", "", text)
    return digits.replace(",", ".")


def _strip_publisher(title: str, publisher: Any) -> str:
    """``Clearview fined - The Guardian`` -> ``Clearview fined``."""
    if isinstance(publisher, str) and publisher and title.endswith(" - " + publisher):
        return title[: -len(publisher) - 3].rstrip()
    head, sep, _ = title.rpartition(" - ")
    return head.rstrip() if sep and head else title


def key_id(key: str) -> int:
    """The stored form of an exact dedupe key: a signed 64-bit hash (SQLite INTEGER,
    BIGINT), in the space band keys (:func:`band_keys`) share."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), signed=True)


def _signed64(value: int) -> int:
    """An unsigned 64-bit value as the signed integer SQLite and BIGINT store."""
    return value - (1 << 64) if value >= 1 << 63 else value


def site_of(url: str | None, fields: Mapping[str, Any]) -> str:
    """The domain of an item's own page; "" for an aggregator copy (``source_url`` in
    its fields), whose page is another site's story."""
    publisher = fields.get("source_url")
    return "" if isinstance(publisher, str) and publisher else _domain(url)


def _domain(url: Any) -> str:
    if not isinstance(url, str) or not url:
        return ""
    try:
        host = (urlsplit(url.strip()).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""
    return host.removeprefix("www.")


__all__ = [
    "MIN_SHARED_BANDS",
    "Fingerprint",
    "KeyQuery",
    "band_keys",
    "compared_body",
    "conflicting",
    "fingerprint",
    "item_fingerprint",
    "key_id",
    "mentions",
    "min_shared_bands",
    "minhash",
    "names",
    "similarity",
    "site_of",
]
