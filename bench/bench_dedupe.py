"""What one-alert-per-event costs: fingerprints, the history lookup, the stored keys.

Run by hand from the repository root (no network; see bench/README.md)::

    python bench/bench_dedupe.py            # ~1 min
    python bench/bench_dedupe.py --items 2000

It builds ``--items`` stored items (titles of 10 words and 40-word summaries drawn
with a Zipf law from 20,000 pseudo-words, seeded, so runs are comparable) in a
temporary SQLite database through the real Store, then measures, on one CPU:

- ``fingerprint()`` per item (MinHash of 64 permutations over word pairs, names);
- one poll's dedupe step for 50 new items: ``Store.dedupe_history`` (the indexed key
  lookup plus re-fingerprinting the candidates) and ``dedupe_batch``;
- the size of ``dedupe_keys`` per item.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from monitor.dedupe import DedupeOutcome, DedupePolicy, dedupe_batch, item_fingerprint
from monitor.identity import content_hash
from monitor.models import Item
from monitor.sources.base import Fetched
from storage.db import create_db_engine
from storage.store import Change, Store

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)
VOCABULARY = 20_000  # pseudo-words drawn with a Zipf law, like the words of news text
NAMES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Clearview", "Stark", "Wayne"]
REGULATORS = ["CNIL", "ICO", "Garante", "AEPD", "AP", "DPC", "BfDI", "FTC"]


def vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(VOCABULARY)]
    return words, [1 / rank for rank in range(1, VOCABULARY + 1)]


def make_item(rng: random.Random, n: int, vocab: tuple[list[str], list[float]]) -> Item:
    words, weights = vocab
    title = f"{rng.choice(REGULATORS)} fines {rng.choice(NAMES)} {rng.randint(1, 900)} " + " ".join(
        rng.choices(words, weights, k=6)
    )
    summary = " ".join(rng.choices(words, weights, k=40))
    url = f"https://news{n % 40}.example.org/story/{n}"
    return Item(
        source=f"s{n % 10}",
        source_type="rss",
        key=f"url://news{n % 40}.example.org/story/{n}",
        content_hash=content_hash(title, summary, "", url, {}),
        title=title,
        url=url,
        summary_html=summary,
    )


def timed(operation: Callable[[], object], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = random.Random(4)
    vocab = vocabulary(rng)
    stored = [make_item(rng, n, vocab) for n in range(args.items)]
    new = [make_item(rng, args.items + n, vocab) for n in range(50)]
    per_item = timed(lambda: [item_fingerprint(i) for i in new]) / len(new)

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(create_db_engine(f"sqlite:///{Path(tmp) / 'bench.db'}"))
        policy = DedupePolicy()
        for source in sorted({i.source for i in stored}):
            batch = [i for i in stored if i.source == source]
            prints = {i.key: item_fingerprint(i) for i in batch}
            outcome = DedupeOutcome([], prints, [], [])
            store.commit_batch(
                source,
                "rss",
                Fetched("https://example.org/", 200, source.encode()),
                batch,
                [(i, Change.NEW) for i in batch],
                [],
                NOW - timedelta(days=1),
                dedupe=outcome,
            )
        prints = {i.key: item_fingerprint(i) for i in new}
        queries = [p.query for p in prints.values()]
        lookup = frozenset(k for q in queries for k in q.exact | q.bands)
        since = NOW - policy.window
        history_time = timed(lambda: store.dedupe_history(queries, since, policy.min_bands))
        history = store.dedupe_history(queries, since, policy.min_bands)
        batch_time = timed(lambda: dedupe_batch(new, prints, [], history, policy, NOW))
        with store.engine.connect() as conn:
            rows = conn.exec_driver_sql("select count(*) from dedupe_keys").scalar_one()
            pages = conn.exec_driver_sql(
                "select sum(pgsize) from dbstat where name like '%dedupe_keys%'"
            ).scalar()
        store.engine.dispose()

    print(f"{args.items} stored items; {cpu_model()}; Python {sys.version.split()[0]}\n")
    print("| measure | value |")
    print("|---|---|")
    print(f"| fingerprint() per item | {per_item * 1e6:.0f} µs |")
    print(
        f"| Store.dedupe_history, 50 new items ({len(lookup)} keys) | {history_time * 1e3:.1f} ms |"
    )
    print(f"| candidates found (share a key) | {len(history.seen)} |")
    print(f"| dedupe_batch, 50 new items | {batch_time * 1e3:.1f} ms |")
    print(f"| dedupe_keys rows per item | {rows / args.items:.1f} |")
    if pages:
        print(f"| dedupe_keys table + indexes per item | {pages / args.items / 1024:.1f} KiB |")


if __name__ == "__main__":
    main()
