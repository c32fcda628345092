"""The 64-bit MinHash: exactly its plain-integer definition, stable, and a fair estimate.

Signatures and band keys are stored (``dedupe_signatures``, the key tables) and compared
with those of later items, so the vectorised code must give the integers of the
definition in ``monitor.dedupe.minhash64`` (checked here with Python integers masked to
64 bits), and a change of a single value needs a migration (the golden values below).
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import random
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from monitor.dedupe import minhash64
from monitor.matching.fold import words
from monitor.sources import SOURCE_TYPES
from monitor.sources.base import Fetched, FetchLimits
from tests.support.fakes import make_item

# The module, not the function the package re-exports under the same name.
fp = importlib.import_module("monitor.dedupe.fingerprint")
DATA = Path(__file__).parent / "data"
MASK = (1 << 64) - 1


def _blake(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())


def _mix(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def reference(tokens: list[str]) -> tuple[int, ...]:
    """The signature from its definition, one Python integer at a time."""
    hashes = [_blake(t) for t in tokens]
    pairs = {_mix((a * 0x9E3779B97F4A7C15 + b) & MASK) for a, b in itertools.pairwise(hashes)}
    if len(pairs) < fp.MIN_SHINGLES:
        return ()
    coefficients = [
        (_blake(f"minhash64 a{j}") | 1, _blake(f"minhash64 b{j}")) for j in range(fp.PERMUTATIONS)
    ]
    return tuple(min((a * s + b) & MASK for s in pairs) for a, b in coefficients)


def _reference_band_key(values: tuple[int, ...], band: int) -> int:
    key = values[0]
    for value in values[1:]:
        key = (key * 0x9E3779B97F4A7C15 + value) & MASK
    return _mix((key + band * 0xD1B54A32D192ED03) & MASK)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["a", "b", "c", "clearview", "cnil", "6", "302", "é"])
        | st.text(min_size=1, max_size=8),
        max_size=40,
    )
)
def test_the_vectorised_signature_is_the_definition(tokens: list[str]) -> None:
    assert fp.minhash(tokens) == reference(tokens)


def _signed(value: int) -> int:
    return int.from_bytes(value.to_bytes(8, "big"), "big", signed=True)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, MASK), min_size=64, max_size=64))
def test_band_keys_are_the_definition_at_any_64_bit_values(values: list[int]) -> None:
    """A band key is the band's 64-bit mix, stored as the signed integer of its bits."""
    signature = tuple(values)
    expected = {_reference_band_key(signature[2 * b : 2 * b + 2], b) for b in range(fp.BANDS)}
    bands = fp.band_keys(signature)
    assert all(-(1 << 63) <= band < 1 << 63 for band in bands)
    assert {band & MASK for band in bands} == expected


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 3), min_size=8, max_size=8), min_size=1, max_size=6),
    st.lists(st.lists(st.integers(0, 3), min_size=8, max_size=8), min_size=1, max_size=6),
)
def test_shared_bands_counts_whole_equal_bands(
    found: list[list[int]], asked: list[list[int]]
) -> None:
    """Values drawn from four, so that bands often agree in one row and not the other,
    which must not count; the 64-bit top bit is set on some, which must compare too."""
    top = [[v | (1 << 63) if v == 3 else v for v in row] for row in found]
    wanted = [[v | (1 << 63) if v == 3 else v for v in row] for row in asked]
    counts = minhash64.shared_bands(
        np.array(top, dtype=np.uint64), np.array(wanted, dtype=np.uint64), 4
    ).tolist()
    expected = [
        [sum(f[2 * b : 2 * b + 2] == a[2 * b : 2 * b + 2] for b in range(4)) for a in wanted]
        for f in top
    ]
    assert counts == expected


def test_edges_of_the_64_bit_range() -> None:
    """Hashes and minima at 0 and 2**64 - 1 wrap as unsigned integers, never as floats."""
    signature = (0, MASK) * 32
    assert fp.band_keys(signature) == {
        _signed(_reference_band_key((0, MASK), b)) for b in range(fp.BANDS)
    }
    assert _signed(MASK) == -1 and _signed(1 << 63) == -(1 << 63)
    # Exact keys are hashed, whatever they look like.
    for other in ("b:0:x", "b:" + "0" * 16, "u:" + "0" * 16):
        assert fp.key_id(other) == int.from_bytes(
            hashlib.blake2b(other.encode(), digest_size=8).digest(), signed=True
        )


def test_golden_signature_and_bands() -> None:
    """Stored values: these change only with a migration of the stored signatures and band
    rows (storage/migrations/versions/0010_minhash64_band_keys.py did the last)."""
    tokens = words(
        "Clearview AI fined 20 million euros by the Italian Garante for facial recognition"
    )
    signature = fp.minhash(tokens)
    assert signature[:4] == (
        246703537307461670,
        1348234193929299631,
        655387101982387585,
        620704738481849912,
    )
    bands = sorted(band & MASK for band in fp.band_keys(signature))
    assert bands[:2] == [0x053036EC3BF85B57, 0x12646D29A1F529ED]


def test_too_few_distinct_pairs_give_no_signature() -> None:
    assert fp.minhash(["a", "b", "c", "d", "e"]) == ()  # four pairs
    assert fp.minhash(["a", "b", "c", "d", "e", "f"]) != ()  # five
    assert (
        fp.minhash(["a", "b", "a", "b", "a", "b", "a", "b", "a", "b", "a", "b"]) == ()
    )  # two distinct pairs, repeated


def test_word_order_and_repeats() -> None:
    text = [
        "the",
        "agency",
        "intends",
        "to",
        "award",
        "a",
        "sole",
        "source",
        "contract",
        "to",
        "clearview",
    ]
    assert fp.minhash(text) != fp.minhash(list(reversed(text)))
    assert fp.minhash(text + text) == fp.minhash(text + text + text)  # no new pair


def test_the_estimate_is_a_fair_jaccard_similarity() -> None:
    """Over 300 pairs of pair sets at known Jaccard similarities (0.1 to 0.9), the 64-value
    signature's estimate is unbiased (mean error under 0.01) and as precise as 64
    independent permutations allow (mean absolute error under 0.055; the binomial
    expectation is about 0.045)."""
    rng = random.Random(64)
    errors = []
    for n in range(300):
        shared = rng.randint(10, 90)
        own = rng.randint(0, 60)
        common = [f"w{n}-{i}" for i in range(shared)]
        a = set(common) | {f"a{n}-{i}" for i in range(own)}
        b = set(common) | {f"b{n}-{i}" for i in range(own)}
        truth = len(a & b) / len(a | b)
        signature_a = minhash64.min_hashes(_pairs_of(a), fp.PERMUTATIONS).tolist()
        signature_b = minhash64.min_hashes(_pairs_of(b), fp.PERMUTATIONS).tolist()
        errors.append(fp.similarity(tuple(signature_a), tuple(signature_b)) - truth)
    assert abs(sum(errors) / len(errors)) < 0.01
    assert sum(map(abs, errors)) / len(errors) < 0.055


def _pairs_of(pairs: set[str]) -> NDArray[np.uint64]:
    """Each element as one pair hash (the text of a word pair, hashed like a word)."""
    return minhash64.mix(np.array([_blake(p) for p in sorted(pairs)], dtype=np.uint64))


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


def test_real_feeds_give_the_signatures_of_the_definition() -> None:
    texts = _real_texts()
    assert len(texts) > 50
    compared = 0
    for text in texts:
        tokens = words(text)[: fp.MAX_WORDS]
        signature = fp.minhash(tokens)
        assert signature == reference(tokens)
        compared += bool(signature)
    assert compared > 50


def test_numpy_loads_with_the_first_minhash_not_with_the_command_line() -> None:
    import subprocess
    import sys

    probe = "import monitor.cli, sys; print('numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_pickled_fingerprint_keeps_its_key_ids_and_its_band_keys() -> None:
    """From a parse worker, a fingerprint comes back with its exact keys' ids computed,
    and its band keys, which are their own stored form."""
    import pickle

    item = make_item(
        "ap-nl", "id:ap-p", title="AP legt Clearview AI boete op van 30,5 miljoen euro",
        summary="De Autoriteit Persoonsgegevens legt Clearview AI een boete op van 30,5 "
        "miljoen euro en dwangsommen voor illegale dataverzameling.",
    )  # fmt: skip
    fresh = fp.item_fingerprint(item)
    assert len(fresh.bands) == fp.BANDS and fresh.bands == fp.band_keys(fresh.signature)
    assert fresh.stored and not any(k.startswith("b:") for k in fresh.stored | fresh.lookup)
    early = pickle.loads(pickle.dumps(fresh))
    assert early == fresh and "key_ids" not in early.__dict__
    expected = {k: fp.key_id(k) for k in fresh.stored | fresh.lookup}
    assert fresh.key_ids == expected
    sent = pickle.loads(pickle.dumps(fresh))
    assert sent == fresh and sent.__dict__["key_ids"] == expected
    assert early.key_ids == expected
    assert sorted(sent.stored_ids) == sorted([*(expected[k] for k in fresh.stored), *fresh.bands])
    query = sent.query
    assert query.exact == {expected[k] for k in fresh.lookup} and query.bands == fresh.bands
