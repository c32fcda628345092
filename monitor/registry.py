"""Plain, read-only registries keyed by the ``type`` users write in sources.toml."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol, TypeVar


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


def make_registry(kind: str, entries: Iterable[T]) -> Mapping[str, T]:
    """A read-only mapping of name to entry; ValueError at import on a duplicate name."""
    registry: dict[str, T] = {}
    for entry in entries:
        if entry.name in registry:
            raise ValueError(f"{kind} type {entry.name!r} is registered twice")
        registry[entry.name] = entry
    return MappingProxyType(registry)
