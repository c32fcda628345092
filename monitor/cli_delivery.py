"""The delivery commands: ``deliveries``, ``replay``, ``enable`` and ``notify-test``.

They share cli.py's exit codes: 0 success; 1 the action ran but failed (a test message
not delivered); 2 the command line names something that does not exist.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import datetime
from typing import Any

from monitor.alerts import iso_utc
from monitor.app import App
from monitor.delivery import fingerprint
from monitor.system import EVENT_TEST
from notifiers.base import Delivery, Outcome
from notifiers.mail_render import one_line
from storage.tables import AlertRow

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_commands(commands: Any) -> list[argparse.ArgumentParser]:
    """Register the subcommands on cli.py's subparsers; returns them for --config."""
    deliveries = commands.add_parser(
        "deliveries", help="list deliveries with their attempts and last error"
    )
    deliveries.add_argument("--dead", action="store_true", help="only dead letters")
    deliveries.add_argument("--notifier", metavar="NAME")
    deliveries.add_argument("--limit", type=int, default=200, metavar="N")
    replay = commands.add_parser("replay", help="queue deliveries again, with the same webhook-id")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("alert_id", nargs="?", metavar="ALERT_ID")
    which.add_argument("--dead", action="store_true", help="every dead letter")
    replay.add_argument("--notifier", metavar="NAME")
    enable = commands.add_parser("enable", help="turn a disabled notifier back on")
    enable.add_argument("name", metavar="NAME")
    test = commands.add_parser("notify-test", help="send a test message through a notifier")
    test.add_argument("name", metavar="NAME")
    return [deliveries, replay, enable, test]


async def run_command(app: App, args: argparse.Namespace) -> int:
    name = getattr(args, "notifier", None) or getattr(args, "name", None)
    if name is not None and name not in app.notifiers:
        known = ", ".join(app.notifiers) or "(none)"
        print(f"error: no notifier named {name!r}; known notifiers: {known}")
        return EXIT_USAGE
    if args.command == "deliveries":
        rows = app.store.deliveries(dead=args.dead, notifier=args.notifier, limit=args.limit)
        print(deliveries_table(rows))
        return EXIT_OK
    if args.command == "replay":
        return _replay(app, args)
    if args.command == "enable":
        was_off = app.store.enable_notifier(args.name, app.clock())
        state = "enabled" if was_off else "was not disabled; its held deliveries are due now"
        print(f"notifier {args.name}: {state}")
        return EXIT_OK
    return await notify_test(app, args.name)


def _replay(app: App, args: argparse.Namespace) -> int:
    rows = app.store.replay(app.clock(), alert_id=args.alert_id, notifier=args.notifier)
    if args.alert_id is not None and not rows:
        where = f" for notifier {args.notifier}" if args.notifier else ""
        print(f"error: no delivery with id {args.alert_id!r}{where}; see `noticewatch deliveries`")
        return EXIT_USAGE
    for row in rows:
        print(f"queued {row.id}")
    print(f"{len(rows)} queued again; `noticewatch run` or the next `poll` delivers them")
    disabled = app.store.disabled_notifiers()
    for name in sorted({row.notifier for row in rows} & set(disabled)):
        print(f"warning: notifier {name} is disabled; run `noticewatch enable {name}` first")
    return EXIT_OK


async def notify_test(app: App, name: str) -> int:
    """Send one test message now, outside the outbox, and report what happened."""
    notifier = app.notifiers[name]
    reason = app.store.notifier_disabled(name, fingerprint(notifier))
    if reason is not None:
        print(f"note: notifier {name} is disabled ({reason}); testing it anyway")
    now = app.clock()
    delivery = Delivery(
        delivery_id=f"test_{uuid.uuid4().hex[:26]}",
        event_type=EVENT_TEST,
        created_at=now,
        data={"notifier": name, "message": "noticewatch test message", "sent_at": iso_utc(now)},
        attempt=1,
    )
    result = await notifier.send(app.deliverer.http, delivery, now)
    if result.outcome is Outcome.DELIVERED:
        status = f" (HTTP {result.status_code})" if result.status_code else ""
        print(f"notifier {name}: test message delivered{status} in {result.duration:.2f}s")
        return EXIT_OK
    print(f"notifier {name}: test message NOT delivered: {result.error}")
    return EXIT_FAILED


def deliveries_table(rows: list[AlertRow]) -> str:
    if not rows:
        return "no deliveries"
    lines = []
    for row in rows:
        what = _subject(row)
        lines.append(
            f"{row.id}  {row.notifier}  {row.event_type}  {row.status}  "
            f"attempts {row.attempts}  created {_when(row.created_at)}"
            + (f"  next {_when(row.next_attempt_at)}" if row.status == "pending" else "")
            # Titles and endpoint replies are untrusted: no escape sequences on a terminal.
            + (f"\n    {one_line(what, 300)}" if what else "")
            + (f"\n    last error: {one_line(row.last_error, 1000)}" if row.last_error else "")
        )
    return "\n".join(lines)


def _subject(row: AlertRow) -> str:
    item = row.data.get("item") if isinstance(row.data, dict) else None
    if isinstance(item, dict):
        return f"{item.get('source')}: {item.get('title')}"
    if row.event_type == "alert.digest":
        return f"digest of {row.data.get('count', 0)} alerts"
    subject = row.data.get("source") or row.data.get("notifier")
    return f"{row.event_type}: {subject}" if subject else ""


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "never"
