"""Parsing large feed and page bodies in worker processes, so a poll uses every core.

A poll's event loop spends its time on storing, dedupe and matching, which must stay in
one process (no await between the dedupe decision and its commit). Parsing is pure and
needs only the source's config and the fetched body, so a large body is parsed in a
process pool while the loop goes on with other sources. The composition root
(``monitor.app.open_app``) owns the pool and shuts it down on exit; the workers are
started on the first large body only, so a cycle of 304s never pays for them.

The worker builds the source from its config and calls the same ``parse`` as the
thread path: the items are identical (tests/test_parsepool.py checks every fixture). A
source error raised in the worker is carried back as its parts and raised again here,
because SourceError's constructor does not survive pickling.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

from monitor.config_base import SourceConfig
from monitor.errors import SourceError
from monitor.heap import settle_heap
from monitor.models import Item
from monitor.prepare import Prepared, prepare_items
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import Fetched, FetchLimits, Source

# Below this a body parses in a few milliseconds: shipping it to a worker and the items
# back costs more than it saves.
MIN_BYTES = 32 * 1024
# Fewer changed items than this are prepared in place: pickling them to a worker and
# back costs about what preparing a handful does.
MIN_PREPARE = 10
# Workers run at a lower CPU priority than the event loop: the loop is the one
# sequential path (storing, dedupe, deliveries, the API), so when a worker and the loop
# both want a core, the loop gets it and the worker takes what is left.
WORKER_NICENESS = 10
# Threads that parse the bodies below MIN_BYTES. The GIL lets little of two parses run
# at once, and each thread that allocates keeps its own glibc arena: the loop's default
# executor grew to six threads in `run`, their arenas ~9 MB for ~1.5 MB in use
# (bench/README.md, twenty-ninth session).
PARSE_THREADS = 2
# Types whose parse is pure and whose source is rebuilt from its config alone (the API
# sources carry a request ledger, and their JSON parses quickly).
POOLED_TYPES = frozenset({"rss", "html"})


def default_workers() -> int:
    """One worker per core on two cores or more, none on one.

    Not one core fewer for the event loop: it waits on SQLite's I/O and for parse
    results part of the time, and the workers' niceness gives it its core back when it
    wants it. A cold 1,000-source poll on 2 cores took 49.3-51.7 s with two workers,
    53.0-59.9 s with one (three interleaved pairs, bench/README.md), for ~80 MB more.
    """
    cores = os.cpu_count() or 1
    return cores if cores >= 2 else 0


@dataclass(frozen=True)
class _Failed:
    kind: type[SourceError]
    source: str
    what: str
    hint: str | None


def _start_worker(niceness: int) -> None:
    """A worker's start-up: below the loop's priority, and its modules (imported to
    find this function) frozen out of the garbage collector's work (``monitor.heap``)."""
    os.nice(niceness)
    settle_heap()


def _parse_in_worker(config: SourceConfig, fetched: Fetched) -> list[Item] | _Failed:
    # FetchLimits() as monitor.app.build_sources builds every source: parse reads none.
    source = SOURCE_TYPES[config.type].build(config, FetchLimits())
    try:
        return source.parse(fetched)
    except SourceError as e:
        return _Failed(type(e), e.source, e.what, e.hint)


class ParsePool:
    """``parse(source, fetched)``: in a worker process for large bodies, else a thread;
    ``prepare(...)``: in a worker for many changed items, else in place."""

    def __init__(
        self, workers: int, *, min_bytes: int = MIN_BYTES, min_prepare: int = MIN_PREPARE
    ) -> None:
        self.workers = workers
        self.min_bytes = min_bytes
        self.min_prepare = min_prepare
        self._pool: ProcessPoolExecutor | None = None
        self._threads: ThreadPoolExecutor | None = None

    def pooled(self, source: Source, fetched: Fetched) -> bool:
        return (
            self.workers > 0 and source.type in POOLED_TYPES and len(fetched.body) >= self.min_bytes
        )

    async def parse(self, source: Source, fetched: Fetched) -> list[Item]:
        loop = asyncio.get_running_loop()
        if not self.pooled(source, fetched):
            return await loop.run_in_executor(self._thread_executor(), source.parse, fetched)
        result = await loop.run_in_executor(
            self._executor(), _parse_in_worker, source.config, fetched
        )
        if isinstance(result, _Failed):
            raise result.kind(result.source, result.what, hint=result.hint)
        return result

    async def prepare(
        self, items: list[Item], fingerprint: frozenset[str], *, templated_summary: bool
    ) -> Prepared:
        """:func:`monitor.prepare.prepare_items`, off the event loop when it pays."""
        if self.workers == 0 or len(items) < self.min_prepare:
            return prepare_items(items, fingerprint, templated_summary=templated_summary)
        loop = asyncio.get_running_loop()
        work = functools.partial(prepare_items, templated_summary=templated_summary)
        return await loop.run_in_executor(self._executor(), work, items, fingerprint)

    def _executor(self) -> Executor:
        if self._pool is None:
            # spawn, not fork: the parent has threads (the default executor, SQLite).
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_start_worker,
                initargs=(WORKER_NICENESS,),
            )
        return self._pool

    def _thread_executor(self) -> Executor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="parse")
        return self._threads

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True, cancel_futures=True)
            self._threads = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
