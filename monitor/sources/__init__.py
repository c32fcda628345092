"""The source registry: every source type noticewatch knows, keyed by ``type``.

Built-in types register exactly as a plug-in would: their module exposes a
``SOURCE_TYPE`` and it is listed below. A name registered twice fails at import.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.registry import make_registry
from monitor.sources import html, ocds, rss, sam, ted
from monitor.sources.base import SourceType

SOURCE_TYPES: Mapping[str, SourceType] = make_registry(
    "source",
    [rss.SOURCE_TYPE, html.SOURCE_TYPE, sam.SOURCE_TYPE, ocds.SOURCE_TYPE, ted.SOURCE_TYPE],
)

__all__ = ["SOURCE_TYPES"]
