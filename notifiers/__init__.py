"""The notifier registry: every notifier type noticewatch knows, keyed by ``type``.

Built-in types register exactly as a plug-in would: their module exposes a
``NOTIFIER_TYPE`` and it is listed below. A name registered twice fails at import.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from notifiers import webhook
from notifiers.base import NotifierType


def make_registry(types: Iterable[NotifierType]) -> Mapping[str, NotifierType]:
    """A read-only mapping of name to notifier type; ValueError on a duplicate name."""
    registry: dict[str, NotifierType] = {}
    for notifier_type in types:
        if notifier_type.name in registry:
            raise ValueError(f"notifier type {notifier_type.name!r} is registered twice")
        registry[notifier_type.name] = notifier_type
    return MappingProxyType(registry)


NOTIFIER_TYPES: Mapping[str, NotifierType] = make_registry([webhook.NOTIFIER_TYPE])

__all__ = ["NOTIFIER_TYPES", "make_registry"]
