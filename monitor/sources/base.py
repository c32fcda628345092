"""The Source protocol, what a fetch returns, and the limits every fetch obeys.

A source type is one module with a pydantic config model (``extra="forbid"``), a
docstring that doubles as user help, and a class implementing :class:`Source`:
``fetch`` is the only place that does network I/O, ``parse`` is pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

import httpx

from monitor.config_base import SourceConfig
from monitor.models import Item


@dataclass(frozen=True)
class FetchState:
    """What the store remembers of a source between fetches (conditional GET).

    ``last_success`` lets a windowed API (SAM.gov's postedFrom) ask only for what is new.
    """

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_success: datetime | None = None


@dataclass(frozen=True)
class FetchLimits:
    """Bounds on one fetch; every source type applies them through the shared helpers."""

    connect_timeout: timedelta = timedelta(seconds=10)
    read_timeout: timedelta = timedelta(seconds=20)
    deadline: timedelta = timedelta(seconds=30)
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5


@dataclass(frozen=True)
class Fetched:
    """The outcome of one successful fetch: a fresh body, or ``not_modified`` (HTTP 304).

    ``retry_after`` (an HTTP-date, as in the header) is set when the result is partial
    because a quota ran out: what came is kept, and the source is paused until then.
    """

    url: str
    status: int
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    elapsed: float = 0.0
    retry_after: str | None = None
    body_hash: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "body_hash", hashlib.sha256(self.body).hexdigest())

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class Source(Protocol):
    """A configured source of one type."""

    type: ClassVar[str]

    @property
    def config(self) -> SourceConfig:
        """The validated config (read-only here, so a type may narrow it)."""
        ...

    @property
    def name(self) -> str: ...

    async def fetch(self, client: httpx.AsyncClient, state: FetchState) -> Fetched:
        """Fetch the source; raise FetchError naming the source on any failure."""
        ...

    def parse(self, fetched: Fetched) -> list[Item]:
        """Turn a fetched body into items; pure; raise ParseError on a bad body."""
        ...


@runtime_checkable
class Enriching(Protocol):
    """A source whose new or changed items can be completed with extra requests.

    The pipeline calls ``enrich`` after ``parse`` and before matching, with only the
    items that are new or changed since the last poll, so the extra cost (a detail
    page, a description document) is paid once per item version. ``wanted`` holds
    the item fields the rules for this source search; a source skips the work when
    nothing it could add is wanted. It returns the items to store and match, in any
    order, keeping each item's ``key`` and ``content_hash`` (extra text is not a new
    version). A failure for one item degrades that item (logged), never the poll.
    """

    async def enrich(
        self, client: httpx.AsyncClient, items: Sequence[Item], wanted: frozenset[str]
    ) -> list[Item]: ...


@dataclass(frozen=True)
class SourceType:
    """A registry entry: the config model users write and how to build the source.

    ``fields`` names the structured ``Item.fields`` the type provides (beyond title,
    summary and content) with the kind of value each holds (``text``, ``number``,
    ``money``, ``date``, ``bool``: ``monitor.matching.schema``), so that a rule naming a
    field no configured source has, or comparing a text field, is a config error.

    ``templated_summary``: the type writes its summary from its fields (SAM.gov's
    "type · agency · NAICS · deadline" line), so near-copy detection compares the title
    and the ``description`` field instead: a template every notice shares would make
    every notice a near-copy candidate of every other one.
    """

    name: str
    config_model: type[SourceConfig]
    build: Callable[[SourceConfig, FetchLimits], Source]
    help: str
    fields: Mapping[str, str] = field(default_factory=dict)
    templated_summary: bool = False


C = TypeVar("C", bound=SourceConfig)


def builder(
    model: type[C], make: Callable[[C, FetchLimits], Source]
) -> Callable[[SourceConfig, FetchLimits], Source]:
    """A registry ``build`` for one type: the config must be of that type's own model."""

    def build(config: SourceConfig, limits: FetchLimits) -> Source:
        if not isinstance(config, model):
            raise TypeError(f"a {model.__name__} is needed, not {type(config).__name__}")
        return make(config, limits)

    return build
