"""run_source(): fetch, parse, store, match and queue alerts for one source.

It ties the stages together and holds no parsing, SQL or message formatting itself.
The source's validators (ETag, Last-Modified, body hash) advance only in the
transaction that records the items and their alerts, so a crash never loses one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta

import httpx

from monitor.alerts import AlertDraft, NotifierRoute, plan_alerts, plan_updates
from monitor.dedupe import (
    DedupeOutcome,
    DedupePolicy,
    Fingerprint,
    dedupe_batch,
    settle_amended,
)
from monitor.errors import FetchError, LeaseLost, MonitorError, ParseError
from monitor.matching import Matcher
from monitor.models import Item
from monitor.parsepool import ParsePool
from monitor.prepare import prepare_items
from monitor.quota import QuotaExhausted
from monitor.retry_after import parse_retry_after
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import Enriching, Source
from monitor.system import HealthPolicy
from storage.leases import SourceClaim
from storage.store import Change, IngestCounts, Store

log = logging.getLogger("noticewatch.pipeline")

MAX_PAUSE = timedelta(days=1)  # the longest a Retry-After may keep a source quiet


@dataclass(frozen=True)
class PipelineContext:
    store: Store
    http: httpx.AsyncClient
    matcher: Matcher
    routes: tuple[NotifierRoute, ...]
    clock: Callable[[], datetime]
    _: KW_ONLY  # the policies below grow with features; naming them keeps call sites right
    baseline: bool = True
    health: HealthPolicy = field(default_factory=HealthPolicy)
    quiet_on_update: frozenset[str] = frozenset()  # rules with on_update = false
    dedupe: DedupePolicy | None = None  # None: every copy of an event alerts
    on_match: Callable[[str], None] | None = None  # told each rule that matched an item
    parser: ParsePool | None = None  # None: parse in a thread (large bodies go to a pool)


@dataclass(frozen=True)
class SourceRun:
    """What one run of one source did; ``drafts`` is filled only by a dry run."""

    source: str
    outcome: str  # ok | not_modified | unchanged | baseline | paused | error | lease_lost
    items: int = 0
    counts: IngestCounts = field(default_factory=IngestCounts)
    duration: float = 0.0
    error: str | None = None
    drafts: tuple[AlertDraft, ...] = field(default=())
    paused_until: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.outcome == "error"


async def run_source(
    source: Source,
    ctx: PipelineContext,
    *,
    dry_run: bool = False,
    lease: SourceClaim | None = None,
) -> SourceRun:
    """Run ``source`` once; failures are recorded on the source, never raised.

    With ``lease`` (this replica's claim on the source), the run's results are recorded
    only while the lease is still this replica's, and recording them ends it.
    """
    started = time.monotonic()
    fail = functools.partial(_failed, lease=lease)
    try:
        run = await _run(source, ctx, dry_run=dry_run, started=started, lease=lease)
    except LeaseLost as e:
        duration = time.monotonic() - started
        run = SourceRun(source.name, "lease_lost", duration=duration, error=str(e))
    except QuotaExhausted as e:
        # Waiting for the quota is not a failure: paused, with the reason, uncounted.
        run = _quota_paused(source, ctx, e, started, dry_run=dry_run, lease=lease)
    except FetchError as e:
        # The server asked us to come back later: not before then, whatever the schedule.
        until = _pause_until(e.retry_after, ctx)
        run = fail(source, ctx, str(e), started, dry_run=dry_run, paused_until=until)
    except MonitorError as e:
        run = fail(source, ctx, str(e), started, dry_run=dry_run)
    except Exception as e:  # a bug in one source must not stop the others
        log.exception("source=%s outcome=bug", source.name)
        what = f"internal error: {type(e).__name__}: {e}"
        run = fail(source, ctx, str(ParseError(source.name, what)), started, dry_run=dry_run)
    _log_run(run)
    return run


async def _run(
    source: Source,
    ctx: PipelineContext,
    *,
    dry_run: bool,
    started: float,
    lease: SourceClaim | None = None,
) -> SourceRun:
    name, kind = source.name, source.type
    identity = source.config.identity()
    snapshot = ctx.store.snapshot(name, identity)
    if snapshot.paused_until is not None and ctx.clock() < snapshot.paused_until:
        return SourceRun(name, "paused", paused_until=snapshot.paused_until)
    fetched = await source.fetch(ctx.http, snapshot.fetch)
    # A result cut short by a quota: keep it, and send nothing before the quota is back.
    pause = _pause_until(fetched.retry_after, ctx)
    if fetched.not_modified or fetched.body_hash == snapshot.fetch.body_hash:
        # A server that ignores conditional GET still costs us no parse.
        outcome = "not_modified" if fetched.not_modified else "unchanged"
        if not dry_run:
            ctx.store.record_fetch(
                name, kind, fetched, outcome, ctx.clock(), identity, health=ctx.health,
                paused_until=pause, lease=lease,
            )  # fmt: skip
        return SourceRun(name, outcome, duration=time.monotonic() - started)

    if ctx.parser is not None:
        items = await ctx.parser.parse(source, fetched)
    else:
        items = await asyncio.to_thread(source.parse, fetched)
    known = ctx.store.known_hashes(name, [item.key for item in items])
    changes = [
        (item, Change.NEW if item.key not in known else Change.UPDATED)
        for item in items
        if known.get(item.key) != item.content_hash
    ]
    if changes and isinstance(source, Enriching):
        items, changes = await _enrich(source, ctx, items, changes)
    # Money in the text becomes the item's ``amounts`` field (stored and alerted); new
    # items get their dedupe fingerprints. Many of them: in a parse worker.
    changes, prints = await _prepare(kind, changes, ctx)
    alerting = snapshot.baselined or not ctx.baseline
    drafts = _plan(name, changes, ctx) if alerting else []
    # No await from here to the commit: concurrent sources cannot both take one
    # event's copy for its first; replicas sharing the database take turns on a lock.
    with ctx.store.serialised("dedupe", enabled=ctx.dedupe is not None and not dry_run):
        if ctx.dedupe is not None:
            drafts = _settle_amended(name, changes, drafts, ctx)
        dedupe = _dedupe(changes, prints, drafts, ctx) if ctx.dedupe is not None else None
        if dedupe is not None:
            drafts = dedupe.drafts
        if dry_run:
            counts = _dry_counts(items, changes, drafts)
        else:
            now = ctx.clock()
            counts = ctx.store.commit_batch(
                name,
                kind,
                fetched,
                items,
                changes,
                drafts,
                now,
                identity=identity,
                health=ctx.health,
                dedupe=dedupe,
                paused_until=pause,
                lease=lease,
            )
    return SourceRun(
        name,
        "ok" if alerting else "baseline",
        items=len(items),
        counts=counts,
        duration=time.monotonic() - started,
        drafts=tuple(drafts) if dry_run else (),
    )


async def _enrich(
    source: Enriching,
    ctx: PipelineContext,
    items: list[Item],
    changes: list[tuple[Item, Change]],
) -> tuple[list[Item], list[tuple[Item, Change]]]:
    """Swap in the enriched versions of the changed items, matched up by key."""
    wanted = ctx.matcher.fields(getattr(source, "name", None))
    enriched = await source.enrich(ctx.http, [item for item, _ in changes], wanted)
    by_key = {item.key: item for item in enriched}
    return (
        [by_key.get(item.key, item) for item in items],
        [(by_key.get(item.key, item), change) for item, change in changes],
    )


def _plan(
    source: str, changes: Sequence[tuple[Item, Change]], ctx: PipelineContext
) -> list[AlertDraft]:
    """alert.created for new items; for amended ones, compare with the stored version."""
    updated = [item.key for item, change in changes if change is Change.UPDATED]
    before = ctx.store.stored_items(source, updated) if updated else {}
    alerted = ctx.store.alerted_notifiers(source, updated) if updated else {}
    versions = ctx.store.item_versions(source, updated) if updated else {}
    drafts: list[AlertDraft] = []
    for item, _ in changes:
        matches = ctx.matcher.match(item)
        if ctx.on_match is not None:
            for rule in dict.fromkeys(m.rule for m in matches):
                ctx.on_match(rule)
        if not matches:
            continue
        old = before.get(item.key)
        if old is None:
            drafts.extend(plan_alerts(item, matches, ctx.routes))
            continue
        told = frozenset(alerted.get(item.key, ()))
        version = versions.get(item.key, 1) + 1  # the version this amendment is stored as
        drafts.extend(
            plan_updates(item, old, matches, ctx.routes, told, ctx.quiet_on_update, version)
        )
    return drafts


def _dedupe(
    changes: Sequence[tuple[Item, Change]],
    prints: dict[str, Fingerprint],
    drafts: list[AlertDraft],
    ctx: PipelineContext,
) -> DedupeOutcome | None:
    """Later copies of events already seen attach to their alerts instead of alerting."""
    assert ctx.dedupe is not None
    new = [item for item, change in changes if change is Change.NEW]
    if not new:
        return None
    now = ctx.clock()
    queries = [print_.query for print_ in prints.values()]
    sites = {print_.site for print_ in prints.values()}
    site = next(iter(sites)) if len(sites) == 1 else ""  # one feed's pages: mostly one site
    since = now - ctx.dedupe.window
    history = ctx.store.dedupe_history(queries, since, ctx.dedupe.min_bands, site)
    return dedupe_batch(new, prints, drafts, history, ctx.dedupe, now)


async def _prepare(
    source_type: str, changes: list[tuple[Item, Change]], ctx: PipelineContext
) -> tuple[list[tuple[Item, Change]], dict[str, Fingerprint]]:
    """The changed items with their amounts and text views, and the new ones' dedupe
    fingerprints (none without dedupe)."""
    kind = SOURCE_TYPES.get(source_type)
    templated = kind is not None and kind.templated_summary
    dedupe = ctx.dedupe is not None
    new = frozenset(i.key for i, change in changes if change is Change.NEW and dedupe)
    items = [item for item, _ in changes]
    if ctx.parser is not None:
        prepared = await ctx.parser.prepare(items, new, templated_summary=templated)
    else:
        prepared = prepare_items(items, new, templated_summary=templated)
    ready = list(zip(prepared.items, (change for _, change in changes), strict=True))
    return ready, prepared.prints


def _settle_amended(
    source: str,
    changes: Sequence[tuple[Item, Change]],
    drafts: list[AlertDraft],
    ctx: PipelineContext,
) -> list[AlertDraft]:
    """An amended item is still the event it was: no second alert for a notifier that
    heard of it through another copy, and its alerts keep listing the other copies."""
    updated = [item.key for item, change in changes if change is Change.UPDATED]
    if not updated or not drafts:
        return drafts
    return settle_amended(drafts, ctx.store.dedupe_events(source, updated))


def _dry_counts(
    items: Sequence[Item], changes: Sequence[tuple[Item, Change]], drafts: Sequence[AlertDraft]
) -> IngestCounts:
    new = sum(1 for _, change in changes if change is Change.NEW)
    return IngestCounts(new, len(changes) - new, len(items) - len(changes), len(drafts))


def _failed(
    source: Source,
    ctx: PipelineContext,
    error: str,
    started: float,
    *,
    dry_run: bool,
    paused_until: datetime | None = None,
    lease: SourceClaim | None = None,
) -> SourceRun:
    if not dry_run:
        try:
            ctx.store.record_failure(
                source.name,
                source.type,
                error,
                ctx.clock(),
                paused_until,
                identity=source.config.identity(),
                health=ctx.health,
                lease=lease,
            )
        except LeaseLost as e:
            log.warning("source=%s outcome=lease_lost %s", source.name, e)
        except MonitorError as e:
            log.error("source=%s outcome=error could not record failure: %s", source.name, e)
    duration = time.monotonic() - started
    return SourceRun(
        source.name, "error", duration=duration, error=error, paused_until=paused_until
    )


def _pause_until(retry_after: str | None, ctx: PipelineContext) -> datetime | None:
    """The moment a ``Retry-After`` value names (capped at MAX_PAUSE), or None."""
    now = ctx.clock()
    wait = parse_retry_after(retry_after, now, cap=MAX_PAUSE)
    return now + wait if wait else None


def _quota_paused(
    source: Source,
    ctx: PipelineContext,
    e: QuotaExhausted,
    started: float,
    *,
    dry_run: bool,
    lease: SourceClaim | None = None,
) -> SourceRun:
    until = _pause_until(e.retry_after, ctx)
    if not dry_run:
        try:
            ctx.store.record_pause(
                source.name, source.type, str(e), ctx.clock(), until,
                identity=source.config.identity(), lease=lease,
            )  # fmt: skip
        except MonitorError as err:
            log.error("source=%s outcome=paused could not record it: %s", source.name, err)
    duration = time.monotonic() - started
    return SourceRun(source.name, "paused", duration=duration, error=str(e), paused_until=until)


def _log_run(run: SourceRun) -> None:
    if run.outcome == "lease_lost":
        log.warning("source=%s outcome=lease_lost %s", run.source, run.error)
        return
    if run.outcome == "paused":
        log.info(
            "source=%s outcome=paused until=%s%s", run.source, run.paused_until,
            f" reason={run.error}" if run.error else "",
        )  # fmt: skip
        return
    if run.failed:
        log.warning(
            "source=%s outcome=error duration=%.2fs error=%s", run.source, run.duration, run.error
        )
        return
    c = run.counts
    log.info(
        "source=%s outcome=%s items=%d new=%d updated=%d seen=%d alerts=%d duration=%.2fs",
        run.source,
        run.outcome,
        run.items,
        c.new,
        c.updated,
        c.seen,
        c.alerts,
        run.duration,
    )
