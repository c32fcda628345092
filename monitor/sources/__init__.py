"""The source registry: every source type noticewatch knows, keyed by ``type``.

Built-in types register exactly as a plug-in would: their module exposes a
``SOURCE_TYPE`` and it is listed below. A name registered twice fails at import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from monitor.sources import rss
from monitor.sources.base import SourceType


def make_registry(types: Iterable[SourceType]) -> Mapping[str, SourceType]:
    """A read-only mapping of name to source type; ValueError on a duplicate name."""
    registry: dict[str, SourceType] = {}
    for source_type in types:
        if source_type.name in registry:
            raise ValueError(f"source type {source_type.name!r} is registered twice")
        registry[source_type.name] = source_type
    return MappingProxyType(registry)


SOURCE_TYPES: Mapping[str, SourceType] = make_registry([rss.SOURCE_TYPE])

__all__ = ["SOURCE_TYPES", "make_registry"]
