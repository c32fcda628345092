"""What one full ``noticewatch poll`` cycle costs, over loopback only (127.0.0.1).

Run by hand from the repository root (see bench/README.md)::

    python bench/bench_poll.py                      # 100 feeds x 50 items, then 1,000 feeds
    python bench/bench_poll.py --feeds 20 --items 20 --repeats 1 --skip-large   # a quick look

The parent process starts a loopback FeedServer and a signed WebhookReceiver (both from
tests/support), writes a temporary sources.toml and SQLite database, and runs every poll
cycle in a fresh child process that calls ``monitor.cli.main(["poll", "--config", PATH],
env)``: the real command, fetching over HTTP from the loopback server and delivering to
the loopback receiver. A child per cycle gives each cycle its own CPU time and peak RSS
(a high-water mark, see ``peak_rss_kb``) and keeps the servers' CPU out of the poll's
figures. Each child also records the CPU time of the stages (parse, match, store, ...).

Scenarios (each repeat starts from the same database state):

a. cold: the first poll of every feed (a baseline: items stored, no alerts);
b. unchanged, the server answers 304 to the stored ETag;
c. unchanged, the server sends no ETag / Last-Modified and re-serves the same bytes
   (the byte-identical skip: fetched and hashed, not parsed);
d. 10 % new items per feed, the rest byte-identical; alerts delivered to the receiver;
e. d with --large-feeds feeds (1,000 by default), after its own cold poll (e0).

Nothing but 127.0.0.1 is contacted: the servers bind it, every URL in the config names
it, and proxy variables are removed from the child's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import html
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
# Bench this checkout, whatever an editable install of noticewatch happens to point at.
sys.path.insert(0, str(ROOT))

SECRET_ENV = "BENCH_WEBHOOK_SECRET"
CLEARVIEW_SHARE = 0.05  # of the items mention Clearview with a fine
NEW_SHARE = 0.10  # of each feed's items are new in scenario d
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")

RULES = """
[[rules]]
name = "clearview-fines"
query = '''clearview AND (fine* OR penalt* OR boete* OR amende* OR sanction* OR sanzion*
         OR multa OR reprimand* OR "cease and desist" OR settlement)'''

[[rules]]
name = "clearview-sole-source"
query = '''(clearview OR "facial recognition") AND ("sole source" OR "intent to award"
         OR "6.302-1" OR "justification and approval" OR "only one responsible source")'''

[[rules]]
name = "clearview-courts"
query = 'clearview AND (lawsuit* OR injunction* OR "class action" OR court OR contract*)'
sources = ["feed-0000", "feed-0001", "feed-0002"]

[[rules]]
name = "biometrics-enforcement"
query = 'title:("facial recognition" OR biometric*) AND (fine* OR reprimand* OR "data protection")'

[[rules]]
name = "procurement-notices"
query = '("intent to award" OR "sole source" OR "justification and approval") NOT title:cancelled'
"""


# --- Building the feeds ------------------------------------------------------------------------

_REGULATORS = ("CNIL", "Autoriteit Persoonsgegevens", "ICO", "Garante", "the FTC", "AEPD")
_AMOUNTS = ("€20 million", "€30.5 million", "£7.5m", "€5.2 million", "$1.1m", "€250,000")
_CLEARVIEW_TITLES = (
    "{reg} fines Clearview AI {amount} over its facial recognition database",
    "Clearview AI hit with {amount} penalty by {reg}",
    "{reg} legt Clearview boete op van {amount}",
    "{reg} inflige une amende de {amount} à Clearview AI",
    "Clearview ordered to pay {amount} fine after {reg} investigation",
)


def feed_item(feed: int, number: int) -> tuple[str, bool]:
    """Item ``number`` of feed ``feed`` as RSS 2.0 XML: the same bytes every time it is built.

    About CLEARVIEW_SHARE of the items are about a fine against Clearview; the rest are
    the parse benchmark's ~1.5 KB WordPress-style HTML summaries.
    """
    from bench_parse import WORDS, summary_html  # here: the child processes do not need it

    rng = random.Random(feed * 1_000_003 + number)
    clearview = rng.random() < CLEARVIEW_SHARE
    summary = summary_html(rng, number)
    if clearview:
        reg, amount = rng.choice(_REGULATORS), rng.choice(_AMOUNTS)
        title = rng.choice(_CLEARVIEW_TITLES).format(reg=reg, amount=amount)
        summary = (
            f"<p>{html.escape(reg)} said Clearview AI must pay a fine of {amount} for "
            f"scraping faces without a legal basis; the company may appeal.</p>{summary}"
        )
    else:
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 12))]
        title = " ".join(words).capitalize()
    day, hour = 1 + number % 28, number % 24
    xml = (
        f"<item><title>{html.escape(title, quote=False)}</title>"
        f"<link>https://www.example.gov/feed{feed}/news/{number}-notice?utm_source=rss</link>"
        f'<guid isPermaLink="false">urn:example:feed{feed}:notice:{number}</guid>'
        f"<pubDate>Tue, {day:02d} Sep 2026 {hour:02d}:15:00 +0000</pubDate>"
        f"<dc:creator>Press office</dc:creator><category>{rng.choice(WORDS)}</category>"
        f"<description><![CDATA[{summary}]]></description></item>\n"
    )
    return xml, clearview


def new_per_version(items: int) -> int:
    return max(1, round(items * NEW_SHARE))


def feed_body(feed: int, items: int, version: int) -> tuple[bytes, int]:
    """Version ``version`` of a feed: its newest ``items`` items, newest first.

    Each version adds NEW_SHARE new items on top and drops as many off the end, so the
    items the versions share are byte-identical. Returns the body and how many of the
    items that are new in this version are about Clearview.
    """
    first = version * new_per_version(items)
    entries, clearview = [], 0
    for number in reversed(range(first, first + items)):
        xml, about_clearview = feed_item(feed, number)
        entries.append(xml)
        if number >= first + items - new_per_version(items) and about_clearview:
            clearview += 1
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Example notices {feed}</title>"
        f"<link>https://www.example.gov/feed{feed}/</link>"
        "<description>Notices</description><language>en-gb</language>\n"
        + "".join(entries)
        + "</channel></rss>\n"
    ).encode()
    return body, clearview


def feed_path(feed: int) -> str:
    return f"/feeds/{feed:04d}.xml"


def write_config(path: Path, database: Path, feeds: int, server: Any, hook_url: str) -> None:
    sources = "".join(
        f'\n[[sources]]\nname = "feed-{i:04d}"\ntype = "rss"\n'
        f'url = "{server.url(feed_path(i))}"\nevery = "15m"\nlanguage = "en"\n'
        for i in range(feeds)
    )
    path.write_text(
        "[monitor]\n"
        f'database = "sqlite:///{database}"\n'
        'user_agent = "noticewatch-bench/0.1 (+loopback only)"\n'
        "baseline = true\n"
        f"{sources}{RULES}\n"
        '[[notifiers]]\nname = "bench"\ntype = "webhook"\n'
        f'url = "{hook_url}"\nsecret = "${{{SECRET_ENV}}}"\n'
    )


# --- The child: one poll cycle, measured ---------------------------------------------------------


def child(config: str, result_path: str, profile: str | None) -> None:
    """Run ``noticewatch poll`` once in this process and write what it cost as JSON."""
    for name in _PROXY_VARS:
        os.environ.pop(name, None)
    started = time.perf_counter()
    from monitor import cli
    from monitor.delivery import Deliverer
    from monitor.matching import Matcher
    from monitor.sources.rss import RssSource
    from storage.store import Store

    imports = time.perf_counter() - started
    rss_before = peak_rss_kb()

    # Thin wrappers that only record: what each source did, the CPU time of each stage
    # (per thread: the parse runs in worker threads) and what delivery took.
    runs: list[Any] = []
    stages: Counter[str] = Counter()
    lock = threading.Lock()
    delivery: dict[str, float] = {}

    def account(owner: type, name: str, stage: str) -> None:
        real = getattr(owner, name)

        @functools.wraps(real)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cpu = time.thread_time()
            try:
                return real(*args, **kwargs)
            finally:
                with lock:
                    stages[stage] += time.thread_time() - cpu

        setattr(owner, name, wrapper)

    account(RssSource, "parse", "parse")
    account(Matcher, "match", "match")
    for method in ("snapshot", "known_hashes", "record_fetch", "commit_batch"):
        account(Store, method, "store")
    real_run_source, real_deliver_all = cli.run_source, Deliverer.deliver_all

    async def run_source(*args: Any, **kwargs: Any) -> Any:
        if "startup" not in stages:  # config, logging, engine and schema, sources built
            stages["startup"] = time.process_time() - cycle_cpu
        run = await real_run_source(*args, **kwargs)
        runs.append(run)
        return run

    async def deliver_all(self: Deliverer, *args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.thread_time()
        rounds = await real_deliver_all(self, *args, **kwargs)
        delivery["wall"] = time.perf_counter() - wall
        stages["delivery"] = time.thread_time() - cpu
        delivery["delivered"] = sum(r.delivered for r in rounds.values())
        delivery["failed"] = sum(r.retried + r.dead for r in rounds.values())
        return rounds

    cli.run_source = run_source  # type: ignore[assignment]
    Deliverer.deliver_all = deliver_all  # type: ignore[method-assign]
    env = {SECRET_ENV: os.environ[SECRET_ENV], "NOTICEWATCH_LOG_LEVEL": "INFO"}

    with profiled(profile):
        wall, cycle_cpu = time.perf_counter(), time.process_time()
        code = cli.main(["poll", "--config", config], env)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cycle_cpu
    stages["other"] = cpu - sum(stages.values())
    result = {
        "exit": code,
        "wall": wall,
        "cpu": cpu,
        "stages": stages,
        "imports": imports,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak_rss_kb(),
        "outcomes": Counter(run.outcome for run in runs),
        "items": sum(run.items for run in runs),
        "new": sum(run.counts.new for run in runs),
        "alerts": sum(run.counts.alerts for run in runs),
        "delivery": delivery,
    }
    Path(result_path).write_text(json.dumps(result))


def peak_rss_kb() -> int:
    """This process's peak RSS in KiB: VmHWM from /proc, else ``ru_maxrss``.

    ``ru_maxrss`` is not enough here: on Linux the child of a big parent reports the
    parent's high-water mark (subprocess starts it with vfork, and exec folds the
    shared address space's peak into the child's ``ru_maxrss``). VmHWM belongs to the
    address space that exec created.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """With ``path``, profile the cycle with cProfile into ``path``.

    cProfile sees only the thread it runs in, so while profiling the parse that the
    pipeline hands to ``asyncio.to_thread`` runs inline on the event loop instead.
    """
    if path is None:
        yield
        return
    import cProfile

    async def inline(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    real_to_thread = asyncio.to_thread
    asyncio.to_thread = inline
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        asyncio.to_thread = real_to_thread
        profiler.dump_stats(path)


# --- The parent: servers, scenarios, report ----------------------------------------------------


@dataclass
class Row:
    label: str
    feeds: int
    items: int  # per feed
    results: list[dict[str, Any]]
    server_cpu: list[float]
    received: list[int]  # accepted, correctly signed deliveries the receiver saw
    expected_alerts: int

    def median(self, pick: Callable[[dict[str, Any]], float]) -> float:
        return statistics.median(pick(r) for r in self.results)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from tests.support import feed_server
        from tests.support.webhook_receiver import WebhookReceiver

        # socketserver listens with a backlog of 5. `poll` opens 8 connections at once, and
        # the SYN that overflows the backlog is retried by the kernel only after 1 s: a
        # stall of the test server, not of noticewatch. Real feed servers listen deeper.
        feed_server._HTTPServer.request_queue_size = 128

        self.args = args
        self.workdir = workdir
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.server = feed_server.FeedServer()
        self.receiver = WebhookReceiver(secret)
        self.env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
        self.env.update({SECRET_ENV: secret, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"})
        self.runs = 0

    def serve(self, feeds: int, items: int, version: int, *, validators: bool) -> int:
        """Serve ``version`` of every feed; returns how many new items are about Clearview."""
        clearview = 0
        for i in range(feeds):
            body, about = feed_body(i, items, version)
            clearview += about
            etag = f'"v{version}-{i}"' if validators else None
            self.server.serve(feed_path(i), body, content_type="application/rss+xml", etag=etag)
        return clearview

    def poll(self, config: Path, database: Path, start: Path | None, profile: bool) -> Any:
        """One poll cycle in a fresh child, on a copy of ``start`` (or an empty database)."""
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
            if start is not None and Path(f"{start}{suffix}").exists():
                shutil.copyfile(f"{start}{suffix}", f"{database}{suffix}")
        self.runs += 1
        result_path = self.workdir / f"result-{self.runs}.json"
        command = [sys.executable, __file__, "--child", str(config), str(result_path)]
        if profile:
            command += ["--profile-to", str(self.workdir / "poll.prof")]
        received = len(self.receiver.deliveries)
        server_cpu = time.process_time()
        with (self.workdir / f"poll-{self.runs}.log").open("w") as log:
            subprocess.run(command, env=self.env, stdout=log, stderr=subprocess.STDOUT, check=True)
        server_cpu = time.process_time() - server_cpu
        result = json.loads(result_path.read_text())
        if result["exit"] != 0:
            raise SystemExit(f"poll exited {result['exit']}; see {log.name}")
        return result, server_cpu, len(self.receiver.deliveries) - received

    def scenario(
        self,
        label: str,
        feeds: int,
        items: int,
        config: Path,
        start: Path | None,
        *,
        repeats: int,
        expected_alerts: int = 0,
        keep_as: Path | None = None,
    ) -> Row:
        row = Row(label, feeds, items, [], [], [], expected_alerts)
        database = self.workdir / "poll.db"
        for repeat in range(repeats):
            profile = self.args.profile == label.partition(".")[0] and repeat == 0
            result, server_cpu, received = self.poll(config, database, start, profile)
            row.results.append(result)
            row.server_cpu.append(server_cpu)
            row.received.append(received)
            print(
                f"  {label}: repeat {repeat + 1}/{repeats}: {result['wall']:.2f} s wall, "
                f"{dict(result['outcomes'])}, {received} alerts received",
                file=sys.stderr,
                flush=True,
            )
        if keep_as is not None:
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{database}{suffix}").exists():
                    shutil.copyfile(f"{database}{suffix}", f"{keep_as}{suffix}")
        return row

    def suite(self, feeds: int, items: int, *, large: bool) -> list[Row]:
        """Scenarios a-d for ``feeds`` feeds (or e0 and e when ``large``)."""
        tag = f"-{feeds}"
        config, after_cold = self.workdir / f"sources{tag}.toml", self.workdir / f"cold{tag}.db"
        write_config(config, self.workdir / "poll.db", feeds, self.server, self.receiver.url)
        repeats = self.args.large_repeats if large else self.args.repeats
        self.serve(feeds, items, 0, validators=True)
        cold = self.scenario(
            "e0. cold" if large else "a. cold",
            feeds,
            items,
            config,
            None,
            repeats=1 if large else repeats,
            keep_as=after_cold,
        )
        rows = [cold]
        if not large:
            rows.append(
                self.scenario(
                    "b. unchanged, 304", feeds, items, config, after_cold, repeats=repeats
                )
            )
            self.serve(feeds, items, 0, validators=False)
            rows.append(
                self.scenario(
                    "c. unchanged, same bytes", feeds, items, config, after_cold, repeats=repeats
                )
            )
        expected = self.serve(feeds, items, 1, validators=True)
        label = "e. 10 % new" if large else "d. 10 % new"
        rows.append(
            self.scenario(
                label, feeds, items, config, after_cold, repeats=repeats, expected_alerts=expected
            )
        )
        return rows


def mb(kb: float) -> str:
    return f"{kb / 1024:.0f} MB"


def report(rows: list[Row]) -> str:
    lines = [
        "| scenario | feeds × items | sources | new items | wall (min–max) | CPU | "
        "peak RSS (at start) | items/s | alerts delivered | delivery | servers' CPU |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        walls = [r["wall"] for r in row.results]
        wall = statistics.median(walls)
        spread = f"{min(walls):.2f}–{max(walls):.2f}" if len(walls) > 1 else "1 run"
        outcomes = Counter[str]()
        for r in row.results:
            outcomes.update(r["outcomes"])
        sources = ", ".join(f"{n // len(row.results)} {o}" for o, n in sorted(outcomes.items()))
        delivered = statistics.median(row.received)
        alerts = f"{delivered:.0f}" + (f" of {row.expected_alerts}" if row.expected_alerts else "")
        delivery = row.median(lambda r: r["delivery"].get("wall", 0.0))
        lines.append(
            f"| {row.label} | {row.feeds:,} × {row.items} | {sources} | "
            f"{row.median(lambda r: r['new']):,.0f} | {wall:.2f} s ({spread}) | "
            f"{row.median(lambda r: r['cpu']):.2f} s | "
            f"{mb(row.median(lambda r: r['peak_rss_kb']))} "
            f"({mb(row.median(lambda r: r['rss_before_kb']))}) | "
            f"{row.feeds * row.items / wall:,.0f} | {alerts} | "
            f"{delivery * 1000:.0f} ms | {statistics.median(row.server_cpu):.2f} s |"
        )
    return "\n".join(lines)


STAGES = ("startup", "other", "parse", "match", "store", "delivery")


def stage_report(rows: list[Row]) -> str:
    lines = [
        "| CPU by stage (median) | CPU per feed | start-up | fetch, asyncio, logs | parse | "
        "match | store | delivery |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cpu = row.median(lambda r: r["cpu"])
        cells = []
        for stage in STAGES:
            seconds = row.median(lambda r, stage=stage: r["stages"].get(stage, 0.0))
            cells.append(f"{seconds:.2f} s ({seconds / cpu:.0%})")
        per_feed = cpu / row.feeds * 1000
        lines.append(f"| {row.label} | {per_feed:.1f} ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check(rows: list[Row]) -> list[str]:
    """What did not go as the scenario intends (an empty list when all is well)."""
    problems = []
    for row in rows:
        for result, received in zip(row.results, row.received, strict=True):
            if result["alerts"] != row.expected_alerts or received != row.expected_alerts:
                problems.append(
                    f"{row.label}: expected {row.expected_alerts} alerts, queued "
                    f"{result['alerts']}, receiver accepted {received}"
                )
    return problems


def print_profile(path: Path) -> None:
    import pstats

    print("\ncProfile of one poll cycle (parse inlined), top functions by own time:\n")
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=100, help="feeds in scenarios a-d")
    parser.add_argument("--items", type=int, default=50, help="items per feed")
    parser.add_argument("--repeats", type=int, default=3, help="cycles per scenario (median)")
    parser.add_argument("--large-feeds", type=int, default=1000, help="feeds in scenario e")
    parser.add_argument("--large-repeats", type=int, default=1, help="cycles in scenario e")
    parser.add_argument("--skip-large", action="store_true", help="skip scenario e (and e0)")
    parser.add_argument(
        "--profile",
        choices=("a", "b", "c", "d", "e0", "e"),
        help="also cProfile the first cycle of this scenario and print the top functions",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "RESULT"), help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.profile_to)
        return

    import monitor

    started = time.perf_counter()
    print(
        f"Python {platform.python_version()}, httpx {version('httpx')}, "
        f"SQLAlchemy {version('sqlalchemy')}, SQLite {__import__('sqlite3').sqlite_version}, "
        f"feedparser {version('feedparser')}, nh3 {version('nh3')}; {cpu_model()}, "
        f"{os.cpu_count()} CPUs; code under test: {Path(monitor.__file__).parent}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="noticewatch-bench-poll-"))
    bench = Bench(args, workdir)
    rows: list[Row] = []
    try:
        with bench.server, bench.receiver:
            rows += bench.suite(args.feeds, args.items, large=False)
            if not args.skip_large:
                rows += bench.suite(args.large_feeds, args.items, large=True)
        if args.profile:
            print_profile(workdir / "poll.prof")
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nMedian of {args.repeats} cycles per row (e: {args.large_repeats}); each cycle in a "
        "fresh process, after its imports "
        f"({statistics.median(r['imports'] for row in rows for r in row.results):.2f} s, "
        "not counted).\n"
    )
    print(report(rows))
    print()
    print(stage_report(rows))
    problems = check(rows) + [
        f"{len(bench.receiver.rejected)} webhooks with a bad signature"
    ] * bool(bench.receiver.rejected)
    print(f"\nWhole run: {time.perf_counter() - started:.0f} s.", *problems, sep="\n")


if __name__ == "__main__":
    main()
