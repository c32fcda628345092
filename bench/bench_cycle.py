"""One full ``noticewatch poll`` cycle over N loopback sources, and the idle memory of ``run``.

Run by hand from the repository root (see bench/README.md, "Poll cycle at scale")::

    python bench/bench_cycle.py                        # N = 100, 1,000 and 5,000: ~10 min
    python bench/bench_cycle.py --sizes 100,1000       # a quicker look
    python bench/bench_cycle.py --idle 3600            # `run` polling 1,000 sources for 1 h
    python bench/bench_cycle.py --idle 3600 --idle-python VENV/bin/python   # as installed

The parent builds the sources (cycle_corpus.py: two in five RSS, one in five each of Atom,
HTML listings and SAM-style JSON behind a ``sam`` source whose ``base_url`` is the loopback
server; 50 items each), serves them from cycle_server.py on 127.0.0.1, receives the webhooks
(tests/support/webhook_receiver.py) and runs every cycle as the real command in a fresh
child, ``python -m monitor poll --config PATH``, with this checkout first on PYTHONPATH.
Per cycle it records the wall time of the child, its CPU time (user + sys from ``wait4``:
the child and every process it waited for, e.g. parse workers), its peak memory (the
largest sum over the child and its children of RSS or of each one's own high-water mark
VmHWM, sampled every 20 ms; never ``ru_maxrss``, which Linux starts at the parent's RSS)
and what the poll printed (outcome and new items per source).

Scenarios per N, each from the same database state:

cold     the first poll of every source (baseline: all 50 items stored, no alerts);
304      nothing changed; RSS, Atom and HTML answer 304 to the stored ETag, SAM (which sends
         no validators) gets the same JSON again;
same     nothing changed; no validators, every source gets the same bytes again;
10% new  every source has 5 new items (the rest byte-identical); alerts delivered.

Nothing but 127.0.0.1 is contacted, and proxy variables are removed from the child's env.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Bench this checkout, whatever an editable install of noticewatch happens to point at.
sys.path.insert(0, str(ROOT))

import cycle_corpus as corpus  # noqa: E402  (bench/ is on sys.path when run as a script)
from cycle_server import CycleServer, Route  # noqa: E402
from machine import cpu_model  # noqa: E402

SECRET_ENV = "BENCH_WEBHOOK_SECRET"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_LINE = re.compile(r"^(?P<name>\S+): (?P<outcome>[a-z_]+): (?P<items>\d+) items, (?P<new>\d+) new")
_FAILED = re.compile(r"^(?P<name>\S+): FAILED: ")
SCENARIOS = ("cold", "304", "same", "10% new")


# --- Building what the server serves ---------------------------------------------------------


def _build(args: tuple[int, int, int]) -> tuple[bytes, int]:
    return corpus.body(*args)


def build_bodies(feeds: int, items: int, version: int, pool: ProcessPoolExecutor) -> list[Any]:
    """Every source's body of ``version`` (built on all cores: 5,000 feeds take a while)."""
    jobs = [(i, items, version) for i in range(feeds)]
    return list(pool.map(_build, jobs, chunksize=50))


def routes(bodies: list[tuple[bytes, int]], version: int, *, validators: bool) -> dict[str, Route]:
    return {
        corpus.path_of(i): Route(
            body,
            corpus.CONTENT_TYPES[corpus.kind_of(i)],
            f'"v{version}-{i}"' if validators else None,
        )
        for i, (body, _) in enumerate(bodies)
    }


# --- Measuring one child ----------------------------------------------------------------------


def tree_rss_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) summed over ``pid`` and all its descendants, in KiB ((0, 0) once it
    is gone). VmHWM is each process's own high-water mark since its exec, so a peak
    between two samples is not missed."""
    rss = hwm = 0
    for current in _tree(pid):
        rss += _status_kb(current, "VmRSS:")
        hwm += _status_kb(current, "VmHWM:")
    return rss, hwm


def tree_pss_kb(pid: int) -> int:
    """PSS summed over ``pid`` and its descendants, in KiB: each shared page (libpython,
    lxml, the parse worker's copies of the same .so files) counted once, split between
    the processes that map it, as a container's memory limit charges it. RSS counts a
    shared page in every process that maps it."""
    total = 0
    for current in _tree(pid):
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def _status_kb(pid: int, field_name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class Sampler:
    """Samples the RSS of a process tree every ``every`` seconds in a thread."""

    pid: int
    every: float = 0.02
    peak_kb: int = 0
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, tree, main, pss
    pss: bool = False  # PSS too (reads smaps_rollup: for slow idle sampling only)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Sampler:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.every):
            rss, hwm = tree_rss_kb(self.pid)
            if rss:
                self.peak_kb = max(self.peak_kb, rss, hwm)
                main = _status_kb(self.pid, "VmRSS:")
                pss = tree_pss_kb(self.pid) if self.pss else 0
                self.samples.append((time.monotonic() - started, rss, main, pss))

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Cycle:
    wall: float
    cpu: float
    peak_kb: int
    exit: int
    outcomes: Counter[str]
    items: int
    new: int
    requests: int
    webhooks: int
    failures: list[str]


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from tests.support.webhook_receiver import WebhookReceiver

        self.args = args
        self.workdir = workdir
        secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.server = CycleServer()
        self.receiver = WebhookReceiver(secret)
        self.env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
        self.env.update(
            {
                SECRET_ENV: secret,
                "NO_PROXY": "127.0.0.1",
                "no_proxy": "127.0.0.1",
                "PYTHONPATH": os.pathsep.join([str(ROOT), self.env.get("PYTHONPATH", "")]),
                "NOTICEWATCH_LOG_LEVEL": "INFO",
            }
        )
        self.runs = 0
        self.profiles: list[str] = []

    def command(self, verb: str, config: Path, python: str = sys.executable) -> list[str]:
        return [python, "-m", "monitor", verb, "--config", str(config)]

    def poll(
        self, config: Path, database: Path, start: Path | None, profile: bool, label: str = ""
    ) -> Cycle:
        """One ``poll`` in a fresh child on a copy of ``start`` (or an empty database)."""
        copy_db(start, database)
        self.runs += 1
        out = self.workdir / f"poll-{self.runs}.out"
        log = self.workdir / f"poll-{self.runs}.log"
        command = self.command("poll", config)
        if profile:
            svg = self.workdir / f"profile-{self.runs}.txt"
            command = ["py-spy", "record", "--subprocesses", "--idle", "-r", "200",
                       "-f", "raw", "-o", str(svg), "--", *command]  # fmt: skip
        requests, webhooks = self.server.requests, len(self.receiver.deliveries)
        with out.open("w") as stdout, log.open("w") as stderr:
            wall = time.perf_counter()
            child = subprocess.Popen(command, env=self.env, stdout=stdout, stderr=stderr)
            sampler = Sampler(child.pid).start()
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - wall
            sampler.stop()
            child.returncode = os.waitstatus_to_exitcode(status)
        outcomes: Counter[str] = Counter()
        items = new = 0
        failures = []
        for line in out.read_text().splitlines():
            if m := _LINE.match(line):
                outcomes[m["outcome"]] += 1
                items += int(m["items"])
                new += int(m["new"])
            elif _FAILED.match(line):
                outcomes["error"] += 1
                failures.append(line)
        if profile:
            print(f"  py-spy profile (collapsed stacks): {svg}", file=sys.stderr)
            self.profiles.append(f"{config.stem.split('-')[-1]} sources, {label}: " + stages(svg))
        return Cycle(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            # Not ru_maxrss: Linux starts a forked child's maximum at its parent's RSS, so it
            # reported this script's own size (the bodies of every source) for small polls.
            peak_kb=sampler.peak_kb,
            exit=child.returncode,
            outcomes=outcomes,
            items=items,
            new=new,
            requests=self.server.requests - requests,
            webhooks=len(self.receiver.deliveries) - webhooks,
            failures=failures,
        )

    def size(self, feeds: int, pool: ProcessPoolExecutor) -> list[Row]:
        items = self.args.items
        config = self.workdir / f"sources-{feeds}.toml"
        database, after_cold = self.workdir / "poll.db", self.workdir / f"cold-{feeds}.db"
        config.write_text(
            corpus.config_toml(database, feeds, self.server.base, self.receiver.url, SECRET_ENV)
        )
        started = time.perf_counter()
        v0 = build_bodies(feeds, items, 0, pool)
        v1 = build_bodies(feeds, items, 1, pool)
        megabytes = sum(len(b) for b, _ in v0) / 1e6
        print(
            f"N={feeds}: built {2 * feeds} bodies ({megabytes:.0f} MB a version) in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        plan = [
            ("cold", v0, 0, True, None),
            ("304", v0, 0, True, after_cold),
            ("same", v0, 0, False, after_cold),
            ("10% new", v1, 1, True, after_cold),
        ]
        rows = []
        for label, bodies, number, validators, start in plan:
            self.server.serve(routes(bodies, number, validators=validators))
            row = Row(label, feeds, items, megabytes)
            alone = feeds >= 5000 or (label == "cold" and feeds >= 1000)
            repeats = 1 if alone else self.args.repeats
            for repeat in range(repeats):
                profile = f"{feeds}:{label}" in self.args.profile and repeat == 0
                cycle = self.poll(config, database, start, profile, label)
                row.cycles.append(cycle)
                print(
                    f"  N={feeds} {label}: {cycle.wall:.2f} s wall, {cycle.cpu:.2f} s CPU, "
                    f"{cycle.peak_kb / 1024:.0f} MB, {dict(cycle.outcomes)}, "
                    f"{cycle.new} new, {cycle.webhooks} webhooks",
                    file=sys.stderr,
                    flush=True,
                )
                for failure in cycle.failures[:5]:
                    print(f"    {failure}", file=sys.stderr)
            if label == "cold":
                copy_db(database, after_cold)
            rows.append(row)
        return rows


def copy_db(source: Path | None, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
        if source is not None and Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", f"{target}{suffix}")


# --- Profile ------------------------------------------------------------------------------------

# Our own frames decide first (the one nearest the leaf), so the dedupe keys' INSERT counts
# as dedupe and not as SQLAlchemy; a stack of library frames only goes by the library.
_OWN = (
    ("dedupe", ("monitor/dedupe/", "storage/dedupe.py")),
    ("parse", ("monitor/sources/", "monitor/parsepool.py")),
    ("match", ("monitor/matching/",)),
    ("store", ("storage/",)),
    ("delivery", ("monitor/delivery.py", "notifiers/")),
)
_LIBRARIES = (
    ("parse", ("feedparser/", "bs4/", "soupsieve/", "lxml", "json/")),
    ("store", ("sqlalchemy/", "sqlmodel/", "sqlite3")),
    ("http", ("httpx/", "httpcore/", "h11/", "asyncio/", "ssl")),
    ("start-up", ("importlib", "<module>")),
)
_IDLE = ("_worker (concurrent/futures/thread.py", "wait (threading.py", "select (selectors.py")


def _stage(frames: list[str]) -> str:
    if any("_find_and_load" in frame for frame in frames):
        return "start-up"  # importing a module, whichever module it is
    for table in (_OWN, _LIBRARIES):
        for frame in reversed(frames):
            for name, marks in table:
                if any(mark in frame for mark in marks):
                    return name
    return "other"


def stages(path: Path) -> str:
    """Where the on-CPU samples of a py-spy raw profile went, by pipeline stage."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if not any(frames[-1].startswith(idle) for idle in _IDLE):
            counts[_stage(frames)] += int(number)
    total = sum(counts.values()) or 1
    return ", ".join(f"{name} {n / total:.0%}" for name, n in counts.most_common())


# --- Report -----------------------------------------------------------------------------------


@dataclass
class Row:
    label: str
    feeds: int
    items: int
    megabytes: float
    cycles: list[Cycle] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(c, name) for c in self.cycles)


def report(rows: list[Row]) -> str:
    lines = [
        "| N | scenario | outcomes | new items | wall | ms per source | CPU (user+sys) | "
        "peak RSS | items/s | webhooks |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        wall = row.median("wall")
        walls = [c.wall for c in row.cycles]
        spread = f" ({min(walls):.2f}–{max(walls):.2f})" if len(walls) > 1 else ""
        outcomes: Counter[str] = Counter()
        for c in row.cycles:
            outcomes.update(c.outcomes)
        shown = ", ".join(f"{n // len(row.cycles):,} {o}" for o, n in sorted(outcomes.items()))
        lines.append(
            f"| {row.feeds:,} | {row.label} | {shown} | {row.median('new'):,.0f} | "
            f"{wall:.2f} s{spread} | {wall / row.feeds * 1000:.2f} | "
            f"{row.median('cpu'):.2f} s | {row.median('peak_kb') / 1024:.0f} MB | "
            f"{row.feeds * row.items / wall:,.0f} | {row.median('webhooks'):.0f} |"
        )
    return "\n".join(lines)


def machine_line() -> str:
    import monitor

    return (
        f"Python {platform.python_version()}, httpx {version('httpx')}, SQLAlchemy "
        f"{version('sqlalchemy')}, SQLite {__import__('sqlite3').sqlite_version}, feedparser "
        f"{version('feedparser')}; {cpu_model()}, {os.cpu_count()} CPUs; code under test: "
        f"{Path(monitor.__file__).parent}"
    )


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


# --- Idle memory of `run` ---------------------------------------------------------------------


def parse_every(text: str) -> timedelta:
    from monitor.durations import parse_duration

    return parse_duration(text)


def idle(bench: Bench, seconds: float, pool: ProcessPoolExecutor) -> None:
    """``run`` over ``--idle-sources`` sources for ``seconds``; RSS sampled over time.

    Every ``--idle-every`` the server moves every source to its next version (10 % new
    items), so each poll after the first stores new items and queues the odd alert.
    """
    args = bench.args
    feeds, items = args.idle_sources, args.items
    every = parse_every(args.idle_every)
    config = bench.workdir / "idle.toml"
    database = bench.workdir / "idle.db"
    config.write_text(
        corpus.config_toml(
            database, feeds, bench.server.base, bench.receiver.url, SECRET_ENV, args.idle_every
        )
    )
    versions = [build_bodies(feeds, items, 0, pool)]
    bench.server.serve(routes(versions[0], 0, validators=True))
    # The service starts on a database that already knows the sources (one cold `poll`),
    # so the hour measures polling, not the first-sight burst of 1,000 baselines.
    warm = bench.poll(config, database, None, profile=False)
    print(f"idle: cold poll first: {warm.wall:.0f} s wall, {dict(warm.outcomes)}", file=sys.stderr)
    out = Path(args.idle_out)
    log = bench.workdir / "idle-run.log"
    python = args.idle_python or sys.executable
    print(f"idle: {feeds} sources every {args.idle_every} for {seconds:.0f} s with {python}; "
          f"samples in {out}; log in {log}; {load()}", file=sys.stderr, flush=True)  # fmt: skip
    with log.open("w") as stderr:
        child = subprocess.Popen(
            bench.command("run", config, python), env=bench.env, stdout=stderr, stderr=stderr
        )
    sampler = Sampler(child.pid, every=args.sample, pss=True).start()
    started = time.monotonic()
    version = 0
    try:
        with out.open("w") as record:
            next_write = 0
            while (elapsed := time.monotonic() - started) < seconds:
                if child.poll() is not None:
                    raise SystemExit(f"run exited {child.returncode}; see {log}")
                if elapsed >= (version + 1) * every.total_seconds():
                    version += 1
                    bodies = build_bodies(feeds, items, version, pool)
                    bench.server.serve(routes(bodies, version, validators=True))
                for t, rss, main, pss in sampler.samples[next_write:]:
                    sample = {"t": round(t, 1), "rss_kb": rss, "main_kb": main, "pss_kb": pss,
                              "requests": bench.server.requests,
                              "version": version, "load": os.getloadavg()[0]}  # fmt: skip
                    record.write(json.dumps(sample) + "\n")
                next_write = len(sampler.samples)
                record.flush()
                time.sleep(1)
    finally:
        sampler.stop()
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    print(idle_report(out, feeds, args.idle_every, bench.server.requests, log))


def idle_report(samples_file: Path, feeds: int, every: str, requests: int, log: Path) -> str:
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    polls = Counter(
        m[1] for m in re.finditer(r"outcome=([a-z_]+)", log.read_text(errors="replace"))
    )
    marks = sorted({60 * m for m in (1, 5, 10, 15, 30, 45, 60, 90, 120)} | {samples[-1]["t"]})
    lines = [
        f'`run` with {feeds:,} sources (`every = "{every}"`), {requests:,} requests served, '
        f"poll outcomes {dict(polls)}:",
        "",
        "| after | RSS (run + parse worker) | of which `run` itself | PSS (run + worker) "
        "| peak RSS so far | load |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for mark in marks:
        upto = [s for s in samples if s["t"] <= mark]
        if not upto or (mark != samples[-1]["t"] and mark > samples[-1]["t"]):
            continue
        last = upto[-1]
        peak = max(s["rss_kb"] for s in upto)
        lines.append(
            f"| {last['t'] / 60:.0f} min | {last['rss_kb'] / 1024:.0f} MB | "
            f"{last.get('main_kb', 0) / 1024:.0f} MB | {last.get('pss_kb', 0) / 1024:.0f} MB | "
            f"{peak / 1024:.0f} MB | {last['load']:.2f} |"
        )
    return "\n".join(lines)


# --- Main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="the Ns, comma-separated")
    parser.add_argument("--items", type=int, default=50, help="items per source")
    parser.add_argument("--repeats", type=int, default=3, help="cycles per row (median); "
                        "1 for cold at N >= 1,000 and for N >= 5,000")  # fmt: skip
    parser.add_argument("--profile", action="append", default=[], metavar="N:SCENARIO",
                        help="py-spy the first cycle of this row, e.g. 1000:cold")  # fmt: skip
    parser.add_argument("--idle", type=float, metavar="SECONDS",
                        help="instead: run `run` this long and record its RSS")  # fmt: skip
    parser.add_argument("--idle-sources", type=int, default=1000)
    parser.add_argument("--idle-every", default="15m", help="the sources' `every` when idle")
    parser.add_argument("--idle-out", default="idle-rss.jsonl", help="where samples go")
    parser.add_argument("--idle-python", metavar="PATH",
                        help="idle: the interpreter `run` is measured with, e.g. a venv's "
                        "where `pip install .` installed what the README's run command "
                        "does, without the test packages (default: this one)")  # fmt: skip
    parser.add_argument("--sample", type=float, default=10.0, help="idle: seconds per sample")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    started = time.perf_counter()
    print(machine_line(), flush=True)
    print(f"Before: {load()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="noticewatch-bench-cycle-"))
    bench = Bench(args, workdir)
    rows: list[Row] = []
    try:
        with bench.server, bench.receiver, ProcessPoolExecutor(2) as pool:
            if args.idle is not None:
                idle(bench, args.idle, pool)
                return
            for feeds in (int(n) for n in args.sizes.split(",")):
                rows += bench.size(feeds, pool)
                print(f"after N={feeds}: {load()}", file=sys.stderr, flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"After: {load()}; whole run {time.perf_counter() - started:.0f} s\n")
    print(report(rows))
    if bench.profiles:
        print("\nOn-CPU samples by stage (py-spy, poll and its workers):\n")
        print("\n".join(f"- {line}" for line in bench.profiles))
    bad = [f"{row.feeds} {row.label}: exit {c.exit}" for row in rows for c in row.cycles if c.exit]
    if bad or bench.receiver.rejected:
        print("\nProblems:", *bad, f"{len(bench.receiver.rejected)} bad signatures", sep="\n")


if __name__ == "__main__":
    main()
