"""The delivery worker: reads due alerts from the outbox and hands them to notifiers.

At-least-once: an alert leaves ``pending`` only after its notifier confirmed it (or it
ran out of attempts), and its ``webhook-id`` never changes, so receivers drop repeats.
Each notifier is worked on its own, so a dead or slow endpoint never delays the others;
a failing endpoint holds its whole queue until the failed alert's next attempt instead
of being hammered with every other pending alert.

Replicas share the outbox: a round claims a batch of due alerts for this replica
(``storage/leases.py``), renews the claim of each just before sending it, records the
attempt only while it still holds the claim, and gives back what it did not send.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

import httpx

from monitor.digest import EVENT_DIGEST, latest_slot, parse_schedule
from monitor.errors import LeaseLost, MonitorError
from monitor.replicas import delivery_lease
from monitor.system import EVENT_NOTIFIER_DISABLED, HealthPolicy, notifier_disabled_data
from notifiers.base import Delivery, DeliveryResult, Notifier, Outcome
from storage.store import Store
from storage.tables import AlertRow

log = logging.getLogger("noticewatch.delivery")

CLAIM_BATCH = 20  # alerts claimed at once; small, so a slow endpoint strands few claims
DEFAULT_TIMEOUT = timedelta(seconds=30)  # a notifier type without a timeout setting


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: 10 attempts span about three days by default.

    Waits after attempts 1..9: 30s, 1.5m, 4.5m, 13.5m, 40m, 2h, 6h, 18h, 36h (capped).
    """

    max_attempts: int = 10
    first: timedelta = timedelta(seconds=30)
    factor: float = 3.0
    cap: timedelta = timedelta(hours=36)
    jitter: float = 0.1

    def delay(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        base = min(
            self.first.total_seconds() * self.factor ** (attempts - 1), self.cap.total_seconds()
        )
        return timedelta(seconds=base * rng.uniform(1 - self.jitter, 1 + self.jitter))


@dataclass
class RoundCounts:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    held: int = 0


def fingerprint(notifier: Notifier) -> str:
    """Identifies a notifier's config (secrets masked) so that editing it re-enables it."""
    return hashlib.sha256(notifier.config.model_dump_json().encode()).hexdigest()[:16]


class Deliverer:
    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        http: httpx.AsyncClient,
        clock: Callable[[], datetime],
        policy: RetryPolicy,
        rng: random.Random,
        health: HealthPolicy | None = None,
        disable_after: timedelta = timedelta(days=5),
        zone: tzinfo = UTC,
        replica: str = "local",
    ) -> None:
        self.store = store
        self.notifiers = notifiers
        self.http = http
        self.clock = clock
        self.policy = policy
        self.rng = rng
        self.health = health or HealthPolicy()
        self.disable_after = disable_after
        self.zone = zone  # of "daily HH:MM" digests
        self.replica = replica  # the holder of this process's outbox claims

    async def deliver_all(self, stop: asyncio.Event | None = None) -> dict[str, RoundCounts]:
        """One round for every notifier, concurrently."""
        names = list(self.notifiers)
        rounds = await asyncio.gather(*(self.deliver_due(name, stop) for name in names))
        return dict(zip(names, rounds, strict=True))

    async def deliver_due(self, name: str, stop: asyncio.Event | None = None) -> RoundCounts:
        """Deliver every alert of ``name`` that is due now, oldest first."""
        notifier = self.notifiers[name]
        counts = RoundCounts()
        reason = self.store.notifier_disabled(name, fingerprint(notifier))
        if reason is not None:
            return counts
        schedule = parse_schedule(notifier.config.digest)
        if not schedule.immediate:
            slot = latest_slot(schedule, self.clock(), self.zone)
            for ident in self.store.make_digest(name, slot, self.clock()):
                log.info("notifier=%s digest=%s outcome=queued slot=%s", name, ident, slot)
        lease = delivery_lease(getattr(notifier.config, "timeout", DEFAULT_TIMEOUT))
        while stop is None or not stop.is_set():
            batch = self.store.claim_alerts(
                name, self.replica, self.clock(), lease, CLAIM_BATCH, with_items=schedule.immediate
            )
            if not batch:
                break
            try:
                for alert in batch:
                    if stop is not None and stop.is_set():
                        return counts
                    if not self.store.renew_alert(alert.id, self.replica, self.clock(), lease):
                        continue  # our claim ran out and another replica has it now
                    if not await self._deliver_one(notifier, alert, counts):
                        return counts
            finally:
                # What this round did not send goes back to the queue for any replica.
                self.store.release_alerts([a.id for a in batch], self.replica)
        return counts

    async def _deliver_one(self, notifier: Notifier, alert: AlertRow, counts: RoundCounts) -> bool:
        """Deliver one alert; False when the endpoint is failing and the round should stop."""
        data = self.store.digest_payload(alert) if alert.event_type == EVENT_DIGEST else alert.data
        delivery = Delivery(
            delivery_id=alert.id,
            event_type=alert.event_type,
            created_at=alert.created_at,
            data=data,
            attempt=alert.attempts + 1,
        )
        try:
            result = await notifier.send(self.http, delivery, self.clock())
        except MonitorError as e:
            result = DeliveryResult(Outcome.RETRY, error=str(e))
        except Exception as e:  # a notifier bug must cost a retry, never the alert
            log.exception("notifier=%s alert=%s outcome=bug", notifier.name, alert.id)
            result = DeliveryResult(Outcome.RETRY, error=f"internal error: {type(e).__name__}")
        now = self.clock()
        attempt = alert.attempts + 1
        if result.outcome is Outcome.DELIVERED:
            self._record(alert, result, "delivered", "delivered", now, None)
            if counts.delivered == 0 or counts.dead:
                # Only a failure sets failing_since; one that ends in a retry or a
                # disable also ends the round. So after this round's first success it
                # is clear until a dead letter: not a write transaction per delivery.
                self.store.notifier_succeeded(notifier.name)
            counts.delivered += 1
            log.info(
                "notifier=%s alert=%s outcome=delivered attempt=%d status=%s duration=%.2fs",
                notifier.name, alert.id, attempt, result.status_code, result.duration,
            )  # fmt: skip
            return True
        if result.outcome is Outcome.GONE:
            self._record(alert, result, "gone", "pending", now, None)
            reason = f"endpoint answered HTTP {result.status_code} Gone at attempt {attempt}"
            self._disable(notifier, reason, now, None)
            return False
        # While failing, an endpoint is tried at least every `cap` (plus jitter) as long
        # as anything is queued; a longer silence means the queue ran dry, and the
        # next failure starts a new episode instead of continuing the old one.
        quiet = self.policy.cap * (1 + self.policy.jitter) + timedelta(hours=1)
        since = self.store.notifier_failing(notifier.name, fingerprint(notifier), now, quiet)
        if now - since >= self.disable_after:
            self._record(alert, result, "failed", "pending", now, None)
            reason = f"failing continuously since {since:%Y-%m-%d %H:%M}Z: {result.error}"
            self._disable(notifier, reason, now, since)
            return False
        if attempt >= self.policy.max_attempts:
            self._record(alert, result, "failed", "dead", now, None)
            counts.dead += 1
            log.error(
                "notifier=%s alert=%s outcome=dead attempts=%d error=%s",
                notifier.name, alert.id, attempt, result.error,
            )  # fmt: skip
            return True
        wait = result.retry_after or self.policy.delay(attempt, self.rng)
        retry_at = now + wait
        self._record(alert, result, "failed", "pending", now, retry_at)
        counts.retried += 1
        counts.held += self.store.postpone(notifier.name, now, retry_at)
        log.warning(
            "notifier=%s alert=%s outcome=retry attempt=%d retry_in=%ds error=%s",
            notifier.name, alert.id, attempt, wait.total_seconds(), result.error,
        )  # fmt: skip
        return False

    def _disable(
        self, notifier: Notifier, reason: str, now: datetime, since: datetime | None
    ) -> None:
        """Turn the notifier off and tell the other ``source_health`` subscribers."""
        data = notifier_disabled_data(notifier.name, reason, since, now)
        announce = self.health.plan(
            EVENT_NOTIFIER_DISABLED, notifier.name, now, data, exclude=notifier.name
        )
        self.store.disable_notifier(notifier.name, fingerprint(notifier), reason, now, announce)
        log.warning(
            "notifier=%s outcome=disabled reason=%r hint=%r",
            notifier.name, reason, f"fix the endpoint, then: noticewatch enable {notifier.name}",
        )  # fmt: skip

    def _record(
        self,
        alert: AlertRow,
        result: DeliveryResult,
        outcome: str,
        status: str,
        now: datetime,
        retry_at: datetime | None,
    ) -> None:
        try:
            self.store.record_attempt(
                alert,
                outcome=outcome,
                status=status,
                now=now,
                next_attempt_at=retry_at,
                status_code=result.status_code,
                error=result.error,
                duration=result.duration,
                holder=self.replica,
            )
        except LeaseLost as e:
            log.warning("notifier=%s alert=%s outcome=lease_lost %s", alert.notifier, alert.id, e)
