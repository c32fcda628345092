"""The cyclic garbage collector's settings for a process that polls many sources.

A cold ``poll`` of 1,000 sources spent ~2 s of its event loop's ~27 s of CPU in the
collector (bench/README.md, seventeenth session): 17 full collections, each walking the
~157,000 objects that the imports, the configuration and the sources had made and that
live as long as the process, and 3,000 young ones. Frozen once the configuration is
loaded, the imports' and the configuration's objects are left out of every collection
(the sources, built later, are not); a larger young generation makes collections rarer.
"""

from __future__ import annotations

import gc

# Container objects allocated between two young collections (CPython's default: 700).
# A source's items and their rows are thousands of short-lived objects, freed by
# reference counting well before a collection could find them.
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Collect once, then freeze every object made so far (never collected again, but
    still freed when its last reference goes) and raise the young threshold. For the
    process's own start-up (the CLI run as a program, a parse worker), never a library
    call: a frozen object that becomes cyclic garbage is never reclaimed."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)


__all__ = ["YOUNG_THRESHOLD", "settle_heap"]
