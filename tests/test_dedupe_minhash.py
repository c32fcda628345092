"""The vectorised MinHash gives exactly the integers of the big-integer formula.

Signatures are stored (``dedupe_signatures``) and compared with those of later items, so
a faster computation must not change a single value: every case here is checked against
``min((a * h + b) % (2**61 - 1) for h in hashes)`` computed with Python integers.
"""

from __future__ import annotations

import hashlib
import importlib
import random
from pathlib import Path

import pytest

from monitor.dedupe import minhash61
from monitor.matching.fold import words
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import Fetched, FetchLimits

# The module, not the function the package re-exports under the same name.
fp = importlib.import_module("monitor.dedupe.fingerprint")
DATA = Path(__file__).parent / "data"
PRIME = (1 << 61) - 1


def reference(items: set[str]) -> tuple[int, ...]:
    """The signature as first written: one big-integer expression per permutation."""
    if len(items) < fp.MIN_SHINGLES:
        return ()
    hashes = [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest()) for s in items]
    return tuple(min((a * h + b) % PRIME for h in hashes) for a, b in fp._COEFFICIENTS)


def test_min_hashes_at_the_edges_of_the_field() -> None:
    """The fused ``a * h + b`` reduction, value by value: with one hash, each minimum is
    that hash's value, for edge and random coefficients and hashes (raw 64-bit hashes
    included, which are reduced first)."""
    edges = [0, 1, 2, 3, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, 1 << 60, PRIME - 2, PRIME - 1]
    rng = random.Random(29)
    values = edges + [rng.randrange(PRIME) for _ in range(30)]
    coefficients = tuple((a, b) for a in values for b in (*edges, rng.randrange(PRIME)))
    hashes = [*values, PRIME, PRIME + 5, (1 << 64) - 1, (1 << 63) + 12345]
    for h in hashes:
        got = minhash61.min_hashes(h.to_bytes(8, "big"), coefficients)
        assert list(got) == [(a * (h % PRIME) + b) % PRIME for a, b in coefficients], h
    many = b"".join(h.to_bytes(8, "big") for h in hashes)
    assert minhash61.min_hashes(many, coefficients) == tuple(
        min((a * (h % PRIME) + b) % PRIME for h in hashes) for a, b in coefficients
    )


@pytest.mark.parametrize("seed", range(20))
def test_random_shingle_sets(seed: int) -> None:
    rng = random.Random(seed)
    for size in (0, 1, fp.MIN_SHINGLES - 1, fp.MIN_SHINGLES, 7, 64, 149, 400):
        items = {f"{rng.getrandbits(40):x} {rng.random()}" for _ in range(size)}
        assert fp.minhash(items) == reference(items)


def _real_texts() -> list[str]:
    """Titles and summaries of the real feeds and the golden RSS/Atom and HTML pages."""
    rss = SOURCE_TYPES["rss"]
    config = rss.config_model.model_validate(
        {"name": "real", "type": "rss", "url": "https://feed.example.org/rss", "every": "1h"}
    )
    source = rss.build(config, FetchLimits())
    texts = []
    bodies = sorted((DATA / "real").glob("*.xml")) + sorted((DATA / "rss").glob("*.xml"))
    for path in bodies:
        fetched = Fetched(url="https://feed.example.org/rss", status=200, body=path.read_bytes())
        texts += [f"{item.title}\n{item.summary}" for item in source.parse(fetched)]
    for path in sorted((DATA / "html").glob("*.html")):
        texts.append(path.read_text(encoding="utf-8", errors="replace")[:20_000])
    return texts


def test_real_feeds_give_the_same_signatures() -> None:
    texts = _real_texts()
    assert len(texts) > 50
    compared = 0
    for text in texts:
        items = fp.shingles(words(text)[: fp.MAX_WORDS])
        assert fp.minhash(items) == reference(items)
        compared += len(items) >= fp.MIN_SHINGLES
    assert compared > 50


def test_numpy_loads_with_the_first_minhash_not_with_the_command_line() -> None:
    import subprocess
    import sys

    probe = "import monitor.cli, sys; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
