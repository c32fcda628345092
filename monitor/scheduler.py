"""The long-lived service: APScheduler 3.x decides *when*, asyncio tasks do the work.

Each enabled source gets an interval job at its ``every`` (coalesced, jittered, one run
at a time); each notifier gets a delivery job, also woken right after a source queues
alerts. Jobs only spawn tracked tasks, so that a stop can cancel fetches (nothing is
committed before the end of a fetch, so nothing is lost) and let deliveries finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.app import App
from monitor.pipeline import run_source

log = logging.getLogger("noticewatch.scheduler")

DELIVERY_EVERY = timedelta(seconds=5)
STOP_GRACE = timedelta(seconds=7)


class Service:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stop = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.scheduler = AsyncIOScheduler(timezone="UTC")

    async def run(self) -> None:
        """Run until ``self.stop`` is set, then stop cleanly within ~STOP_GRACE."""
        self._schedule()
        self.scheduler.start()
        log.info(
            "service=started sources=%d notifiers=%d",
            len(self.app.sources),
            len(self.app.notifiers),
        )
        try:
            await self.stop.wait()
        finally:
            await self._shutdown()

    def _schedule(self) -> None:
        now = self.app.clock()
        for index, (name, source) in enumerate(self.app.sources.items()):
            every = source.config.every
            self.scheduler.add_job(
                self._trigger_source,
                IntervalTrigger(
                    seconds=every.total_seconds(),
                    jitter=min(every.total_seconds() / 10, 60),
                ),
                args=[name],
                id=f"source:{name}",
                # Stagger the first fetches so a restart does not burst every host at once.
                next_run_time=now + timedelta(seconds=index * 0.5),
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        for name in self.app.notifiers:
            self.scheduler.add_job(
                self._trigger_delivery,
                IntervalTrigger(seconds=DELIVERY_EVERY.total_seconds()),
                args=[name],
                id=f"deliver:{name}",
                next_run_time=now,
                coalesce=True,
                max_instances=1,
            )

    async def _trigger_source(self, name: str) -> None:
        self._spawn(f"source:{name}", self._source(name))

    async def _trigger_delivery(self, name: str) -> None:
        self._spawn(f"deliver:{name}", self.app.deliverer.deliver_due(name, self.stop))

    async def _source(self, name: str) -> None:
        run = await run_source(self.app.sources[name], self.app.pipeline)
        if run.counts.alerts and not self.stop.is_set():
            for notifier in self.app.notifiers:
                await self._trigger_delivery(notifier)

    def _spawn(self, key: str, work: Coroutine[Any, Any, Any]) -> None:
        running = self.tasks.get(key)
        if self.stop.is_set() or (running is not None and not running.done()):
            work.close()  # one instance at a time; the next trigger picks up what is left
            return
        task = asyncio.create_task(work, name=key)
        task.add_done_callback(self._done)
        self.tasks[key] = task

    def _done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task=%s outcome=crashed error=%r", task.get_name(), task.exception())

    async def _shutdown(self) -> None:
        log.info("service=stopping")
        self.scheduler.shutdown(wait=False)
        pending = [t for t in self.tasks.values() if not t.done()]
        for task in pending:
            if task.get_name().startswith("source:"):
                task.cancel()  # an unfinished fetch has committed nothing: safe to drop
        if pending:
            # Deliveries see ``stop`` and finish the request in flight; a request cut off
            # here is retried on the next start with the same webhook-id.
            _, late = await asyncio.wait(pending, timeout=STOP_GRACE.total_seconds())
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        log.info("service=stopped")
