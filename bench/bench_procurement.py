"""How fast the procurement sources parse a full page: SAM.gov, OCDS and TED.

Run by hand from the repository root (no network; see bench/README.md)::

    python bench/bench_procurement.py                 # median of 15 repeats, ~20 s
    python bench/bench_procurement.py --repeats 5     # a quick look, noisier

Each page is built in memory from the real samples in tests/data/real/, made distinct
(ids changed) and repeated to the largest page the API serves: 1000 SAM.gov records
(``limit`` 1000), 1000 OCDS releases, 250 TED notices. The figure is the median wall
time of ``parse`` over ``--repeats`` runs, and the peak memory tracemalloc saw in one
run, on one CPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

from monitor.sources.ocds import parse_releases
from monitor.sources.sam_records import parse_sam
from monitor.sources.ted import parse_notices

REAL = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"


def sam_page(size: int) -> bytes:
    records = json.loads((REAL / "samgov_v2_search_2026-02-02_limit10.json").read_bytes())
    base = records["opportunitiesData"]
    page = []
    for n in range(size):
        record = deepcopy(base[n % len(base)])
        record["noticeId"] = f"{n:032x}"
        page.append(record)
    return json.dumps({"totalRecords": size, "opportunitiesData": page}).encode()


def ocds_page(size: int) -> bytes:
    base = json.loads((REAL / "contractsfinder_ocds_releases_2025_selection.json").read_bytes())
    releases = []
    for n in range(size):
        release = deepcopy(base[n % len(base)])
        release["ocid"] = f"ocds-b5fd17-{n:08d}"
        releases.append(release)
    return json.dumps({"releases": releases}).encode()


def ted_page(size: int) -> bytes:
    notice = json.loads((REAL / "ted_v3_search_response_excerpt_2026-09-24.json").read_bytes())
    notices = [notice["notices"][0] | {"publication-number": f"{n}-2026"} for n in range(size)]
    return json.dumps({"notices": notices, "totalNoticeCount": size}).encode()


def measure(run: Callable[[], Any], repeats: int) -> tuple[float, int]:
    times = []
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    sam, ocds, ted = sam_page(1000), ocds_page(1000), ted_page(250)
    cases: list[tuple[str, bytes, Callable[[], Any]]] = [
        ("sam: 1000 records", sam, lambda: parse_sam(sam, "sam")),
        ("ocds: 1000 releases", ocds, lambda: parse_releases(ocds, "ocds")),
        ("ted: 250 notices", ted, lambda: parse_notices(ted, "ted", ("eng",))),
    ]
    print(f"python {platform.python_version()}, {cpu_model()}, 1 CPU, {args.repeats} repeats")
    print(f"{'page':<22}{'body':>10}{'parse (median)':>17}{'per item':>11}{'peak memory':>14}")
    for name, body, run in cases:
        seconds, peak = measure(run, args.repeats)
        count = int(name.split(":")[1].split()[0])
        print(
            f"{name:<22}{len(body) / 1e6:>8.2f}MB{seconds * 1000:>14.1f} ms"
            f"{seconds / count * 1e6:>8.0f} µs{peak / 1e6:>11.1f} MB"
        )


if __name__ == "__main__":
    main()
