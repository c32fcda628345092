"""The long-lived service: APScheduler 3.x decides *when*, asyncio tasks do the work.

Each enabled source gets an interval job at its ``every`` (coalesced, jittered, one run
at a time); each notifier gets a delivery job, also woken right after a source queues
alerts. Jobs only spawn tracked tasks, so that a stop can cancel fetches (nothing is
committed before the end of a fetch, so nothing is lost) and let deliveries finish.

``apply`` swaps in a new App (a reloaded config, a new API subscription) between
polls: each task takes ``self.app`` once when it starts, so a run in progress finishes
with the rules and notifiers it began with and the next one uses the new ones.

Several replicas may share one database: a source's timer fires in every replica, and
the one that claims the source in the database (``storage/leases.py``) fetches it; the
others skip it until it is due again (see ``monitor/replicas.py`` for the lease lengths).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from monitor.app import App, config_secrets, reconfigure
from monitor.config import Config
from monitor.errors import MonitorError
from monitor.pipeline import SourceRun, run_source
from monitor.reload import STATUS_KEY, ConfigWatcher, needs_restart
from monitor.replicas import (
    due_again,
    gone_from_this_host,
    pid_alive,
    renew_every,
    source_jitter,
    source_lease,
)
from monitor.subscriptions import missing_rules
from storage.leases import SourceClaim

log = logging.getLogger("noticewatch.scheduler")

DELIVERY_EVERY = timedelta(seconds=5)
# Sources fetched and processed at once. Parsing, dedupe and the commit run on the event
# loop; with hundreds of sources due together (a first start, a long outage) and no cap,
# the requests in flight would spend their deadlines waiting for the loop and fail.
SOURCES_IN_FLIGHT = 8
# After another replica's lease on a source, try it again this long after the expiry.
LEASE_RETRY_MARGIN = timedelta(seconds=1)
STOP_GRACE = timedelta(seconds=7)
WATCH_EVERY = timedelta(seconds=2)


@dataclass(frozen=True)
class Changes:
    """What ``apply`` changed, for the log and the tests."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rescheduled: tuple[str, ...] = ()
    notifiers_added: tuple[str, ...] = ()
    notifiers_removed: tuple[str, ...] = ()


class Service:
    def __init__(
        self,
        app: App,
        watcher: ConfigWatcher | None = None,
        on_secrets: Callable[[list[str]], None] | None = None,
        own_secrets: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.watcher = watcher
        self.on_secrets = on_secrets
        self.own_secrets = list(own_secrets)  # e.g. the API token: scrubbed, never in config
        # Every secret seen since start stays scrubbed: a line about an old subscription
        # or a removed notifier may still be logged after the reload that dropped it.
        self._secrets: dict[str, None] = {}
        self.stop = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.source_gate = asyncio.Semaphore(SOURCES_IN_FLIGHT)

    async def run(self) -> None:
        """Run until ``self.stop`` is set, then stop cleanly within ~STOP_GRACE."""
        self._share_secrets()
        self._record_status()  # replaces what a previous run may have left (e.g. STALE)
        self._warn_missing_rules()
        self._free_ended_replicas()
        self._schedule()
        self.scheduler.start()
        log.info(
            "service=started replica=%s sources=%d notifiers=%d",
            self.app.replica.id,
            len(self.app.sources),
            len(self.app.notifiers),
        )
        try:
            await self.stop.wait()
        finally:
            await self._shutdown()

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running) and not self.stop.is_set()

    def _schedule(self) -> None:
        now = self.app.clock()
        for index, (name, source) in enumerate(self.app.sources.items()):
            # Stagger the first fetches so a restart does not burst every host at once.
            self._add_source_job(name, source.config.every, now + timedelta(seconds=index * 0.5))
        for name in self.app.notifiers:
            self._add_delivery_job(name)
        if self.watcher is not None:
            self.scheduler.add_job(
                self.reload,
                IntervalTrigger(seconds=WATCH_EVERY.total_seconds()),
                id="config:watch",
                coalesce=True,
                max_instances=1,
            )

    @staticmethod
    def _source_trigger(every: timedelta) -> IntervalTrigger:
        return IntervalTrigger(
            seconds=every.total_seconds(), jitter=source_jitter(every).total_seconds()
        )

    def _add_source_job(self, name: str, every: timedelta, first: Any) -> None:
        self.scheduler.add_job(
            self._trigger_source,
            self._source_trigger(every),
            args=[name],
            id=f"source:{name}",
            next_run_time=first,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )

    def _add_delivery_job(self, name: str) -> None:
        self.scheduler.add_job(
            self._trigger_delivery,
            IntervalTrigger(seconds=DELIVERY_EVERY.total_seconds()),
            args=[name],
            id=f"deliver:{name}",
            next_run_time=self.app.clock(),
            coalesce=True,
            max_instances=1,
        )

    # --- reconfiguring while running ------------------------------------------------------

    def apply(self, new: App) -> Changes:
        """Run ``new`` from now on: start, stop and reschedule jobs for what differs."""
        old, self.app = self.app, new
        now = new.clock()
        added = tuple(n for n in new.sources if n not in old.sources)
        removed = tuple(n for n in old.sources if n not in new.sources)
        rescheduled = tuple(
            n
            for n in new.sources
            if n in old.sources and new.sources[n].config.every != old.sources[n].config.every
        )
        for name in removed:
            self.scheduler.remove_job(f"source:{name}")
            task = self.tasks.get(f"source:{name}")
            if task is not None and not task.done():
                task.cancel()  # an unfinished fetch has committed nothing
        for name in added:  # a new source's first run is its baseline, as at start-up
            self._add_source_job(name, new.sources[name].config.every, now)
        for name in rescheduled:
            trigger = self._source_trigger(new.sources[name].config.every)
            self.scheduler.reschedule_job(f"source:{name}", trigger=trigger)
        notifiers_added = tuple(n for n in new.notifiers if n not in old.notifiers)
        notifiers_removed = tuple(n for n in old.notifiers if n not in new.notifiers)
        for name in notifiers_removed:
            self.scheduler.remove_job(f"deliver:{name}")
        for name in notifiers_added:
            self._add_delivery_job(name)
        self._share_secrets()
        return Changes(added, removed, rescheduled, notifiers_added, notifiers_removed)

    def request_reload(self) -> None:
        """SIGHUP: re-read sources.toml now, even if it looks unchanged."""
        self._spawn("config:reload", self.reload(force=True))

    def _share_secrets(self) -> None:
        """Give the log scrubber the config's secrets and every subscription's."""
        if self.on_secrets is not None:
            app = self.app
            subscriptions = [s.secret for s in app.subscriptions]
            current = config_secrets(app.config) + subscriptions + self.own_secrets
            self._secrets.update(dict.fromkeys(current))
            self.on_secrets(list(self._secrets))

    async def refresh(self) -> Changes:
        """Re-read the stored subscriptions (the API changed them) and apply them."""
        return self.apply(reconfigure(self.app))

    async def reload(self, *, force: bool = False) -> Changes | None:
        """Apply sources.toml if it changed (or ``force``, on SIGHUP); refuse a bad edit."""
        if self.watcher is None:
            return None
        refusals = self.watcher.refusals
        config = self.watcher.poll(force=force)
        if config is not None:
            try:
                return self._reconfigure(config)
            except (MonitorError, ValueError) as e:  # e.g. a source that cannot be built
                self.watcher.refuse([f"cannot apply the new configuration: {e}"])
        if self.watcher.refusals != refusals:
            self.app.metrics.reloads.labels("refused").inc()
            self._record_status()
        return None

    def _reconfigure(self, config: Config) -> Changes:
        assert self.watcher is not None
        new = reconfigure(self.app, config)
        for key in needs_restart(self.app.config, config):
            log.warning("config=%s setting=%s outcome=needs_restart", config.path, key)
        changes = self.apply(new)
        self.watcher.accepted()
        self._record_status()
        self.app.metrics.reloads.labels("applied").inc()
        log.info(
            "config=%s outcome=reloaded added=%s removed=%s rescheduled=%s "
            "notifiers_added=%s notifiers_removed=%s",
            config.path, ",".join(changes.added) or "-", ",".join(changes.removed) or "-",
            ",".join(changes.rescheduled) or "-", ",".join(changes.notifiers_added) or "-",
            ",".join(changes.notifiers_removed) or "-",
        )  # fmt: skip
        self._warn_missing_rules()
        return changes

    def _warn_missing_rules(self) -> None:
        """Name each API subscription left without a rule it asked for (a config edit
        removed or renamed it): it stays, but gets no alerts for that rule."""
        app = self.app
        rules = [rule.name for rule in app.config.rules]
        for ident, names in missing_rules(app.subscriptions, rules).items():
            log.warning(
                "notifier=%s outcome=missing_rules the subscription is for rule %s, which "
                "%s no longer has: it gets no alerts for it; restore the rule, or "
                "DELETE /api/subscriptions/%s and subscribe again",
                ident, ", ".join(names), app.config.path, ident,
            )  # fmt: skip

    def _record_status(self) -> None:
        """Leave the config status where ``noticewatch status`` (another process) finds it."""
        if self.watcher is None:
            return
        try:
            self.app.store.set_meta(STATUS_KEY, self.watcher.status.to_json())
        except MonitorError as e:
            log.error(
                "config=%s outcome=error could not record its status: %s", self.app.config.path, e
            )

    async def _trigger_source(self, name: str) -> None:
        self._spawn(f"source:{name}", self._source(name))

    async def _trigger_delivery(self, name: str) -> None:
        self._spawn(f"deliver:{name}", self._deliver(name))

    async def _source(self, name: str) -> None:
        app = self.app
        source = app.sources.get(name)
        if source is None:  # removed by a reload since the job fired
            return
        # The claim is taken only once a slot is free: a lease (and the fetch's deadline)
        # must not run out while the source waits its turn.
        async with self.source_gate:
            if self.stop.is_set():
                return
            run = await self._claimed_run(app, name)
        if run is None:
            return
        c = run.counts
        app.metrics.observe_run(name, run.outcome, run.duration, c.new, c.updated, c.seen)
        if c.alerts:
            self._retire_deleted(app)
        if c.alerts and not self.stop.is_set():
            for notifier in self.app.notifiers:
                await self._trigger_delivery(notifier)

    async def _claimed_run(self, app: App, name: str) -> SourceRun | None:
        """Run the source if this replica claims it; None when another replica has it
        or it is not due yet. The lease is renewed while the run lasts, and ended by the
        run's own commit (or here, when the run committed nothing)."""
        source = app.sources[name]
        replica = app.replica
        now = app.clock()
        lease = source_lease(source.config.timeout)
        try:
            claim = app.store.claim_source(
                name, replica.id, now, lease, due_again(source.config.every)
            )
            held_until = None if claim else app.store.held_until(name, now)
        except MonitorError as e:  # the database is unreachable: the next timer tries again
            log.error("source=%s outcome=error could not claim it: %s", name, e)
            return None
        if held_until is not None:
            # Another replica holds it, perhaps a dead one (this replica's own previous
            # process, after a crash): try again when that lease runs out rather than a
            # whole interval later.
            retry = held_until + LEASE_RETRY_MARGIN
            log.info(
                "source=%s outcome=skipped replica=%s held by another replica until %s;"
                " trying again then",
                name, replica.id, held_until.isoformat(timespec="seconds"),
            )  # fmt: skip
            self._retry_source(name, retry)
            return None
        if claim is None:
            log.debug("source=%s outcome=skipped replica=%s not due here", name, replica.id)
            return None
        renewing = asyncio.create_task(self._renew(app, claim), name=f"lease:{name}")
        run: SourceRun | None = None
        try:
            run = await run_source(source, app.pipeline, lease=claim)
            return run
        finally:
            renewing.cancel()
            # A run that recorded its outcome ended the lease in that commit; a pause met
            # at the start, a failure not recorded, or a cancelled run did not.
            if run is None or run.outcome in ("paused", "error"):
                self._release(app, claim)

    @staticmethod
    def _release(app: App, claim: SourceClaim) -> None:
        try:
            app.store.release_source(claim)
        except MonitorError as e:  # it runs out by itself: nothing is stuck
            log.error("source=%s outcome=error could not end its lease: %s", claim.name, e)

    def _free_ended_replicas(self) -> None:
        """Take back at once what processes of this host that have ended (a crash, a
        kill -9) still held, instead of waiting for their leases to expire."""
        store = self.app.store
        try:
            gone = gone_from_this_host(
                store.holders(), socket.gethostname(), os.getpid(), pid_alive
            )
            sources, alerts = store.release_holders(gone)
        except MonitorError as e:  # they expire by themselves
            log.error(
                "replica=%s outcome=error could not check ended replicas: %s",
                self.app.replica.id,
                e,
            )
            return
        if gone:
            log.warning(
                "replica=%s outcome=freed ended replicas of this host: %s (%d source leases,"
                " %d alert claims)",
                self.app.replica.id, ", ".join(gone), sources, alerts,
            )  # fmt: skip

    def _retry_source(self, name: str, when: datetime) -> None:
        job = self.scheduler.get_job(f"source:{name}")
        if job is not None and (job.next_run_time is None or when < job.next_run_time):
            job.modify(next_run_time=when)

    @staticmethod
    async def _renew(app: App, claim: SourceClaim) -> None:
        lease = claim.expires_at - claim.claimed_at
        every = renew_every(lease).total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                held = app.store.renew_source(claim, app.clock(), lease)
            except MonitorError as e:
                log.error("source=%s outcome=error could not renew its lease: %s", claim.name, e)
                continue
            if not held:
                log.warning("source=%s outcome=lease_lost replica=%s", claim.name, claim.holder)
                return

    def _retire_deleted(self, began: App) -> None:
        """A subscription deleted while this run went on may have got alerts from it, or
        an alert back to pending after a failed attempt (the run used the App it began
        with); nothing would ever send them."""
        current = {sub.id for sub in self.app.subscriptions}
        for sub in began.subscriptions:
            if sub.id not in current:
                try:
                    self.app.store.retire_pending(sub.id)
                except MonitorError as e:
                    log.error("notifier=%s outcome=error could not retire alerts: %s", sub.id, e)

    async def _deliver(self, name: str) -> None:
        app = self.app
        if name not in app.notifiers:
            return
        counts = await app.deliverer.deliver_due(name, self.stop)
        app.metrics.observe_deliveries(name, counts.delivered, counts.retried, counts.dead)
        if counts.retried:  # a retry puts an alert back to pending
            self._retire_deleted(app)

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
