"""MinHash of word pairs with 64-bit arithmetic, vectorised with numpy.

Kept apart from fingerprint.py so that numpy (~0.1-0.3 s and ~15 MB to import) loads on the
first MinHash, not in every command: a poll of unchanged sources never computes one.

Every operation wraps modulo 2**64, which numpy's unsigned arrays do natively:

- a word pair hashes to ``mix(h1 * GOLDEN + h2)``, ``h1`` and ``h2`` the words' own 64-bit
  hashes and ``mix`` the finaliser of SplitMix64 (Steele, Lea and Flood 2014), so that
  ``a b`` and ``b a`` differ and every bit of the pair's hash depends on both words;
- permutation ``j`` maps a pair hash ``s`` to ``A[j] * s + B[j]``, ``A[j]`` odd (a
  bijection of the 64-bit integers), and the signature is each permutation's minimum;
- band ``k`` is ``mix(sig[2k] * GOLDEN + sig[2k + 1] + k * GOLDEN2)``: the band's two
  minima and its number, as one 64-bit key.

Until migration 0010 each word pair's text was hashed with BLAKE2b and reduced modulo
2**61 - 1, which took ~22 numpy passes over the permutations x pairs matrix, and each band
key took two more BLAKE2b calls: ``item_fingerprint`` with its key ids took ~300 us an
item, ~170-180 us since (bench/README.md, twenty-fifth session).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache

import numpy as np
from numpy.typing import NDArray

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd
_GOLDEN2 = np.uint64(0xD1B54A32D192ED03)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """SplitMix64's finaliser, element-wise (a bijection: distinct inputs stay distinct)."""
    x = x ^ (x >> _S30)
    x *= _MIX1
    x ^= x >> _S27
    x *= _MIX2
    x ^= x >> _S31
    return x


def pair_hashes(word_hashes: Sequence[int]) -> NDArray[np.uint64]:
    """The hash of each pair of consecutive words, in order (repeats included)."""
    words = np.array(word_hashes, dtype=np.uint64)
    pairs = words[:-1] * _GOLDEN
    pairs += words[1:]
    return mix(pairs)


def min_hashes(pairs: NDArray[np.uint64], permutations: int) -> NDArray[np.uint64]:
    """Each permutation's minimum over ``pairs`` (a repeated pair changes nothing)."""
    a, b = _coefficients(permutations)
    values = a * pairs[np.newaxis, :]
    values += b
    result: NDArray[np.uint64] = values.min(axis=1)
    return result


def band_ids(signature: Sequence[int] | NDArray[np.uint64], bands: int) -> list[int]:
    """One unsigned 64-bit key a band of consecutive minima (two a band for 64 and 32)."""
    values = np.asarray(signature, dtype=np.uint64).reshape(bands, -1)
    key = values[:, 0].copy()
    for column in range(1, values.shape[1]):
        key *= _GOLDEN
        key += values[:, column]
    key += np.arange(bands, dtype=np.uint64) * _GOLDEN2
    ids: list[int] = mix(key).tolist()
    return ids


def shared_bands(
    found: NDArray[np.uint64], asked: NDArray[np.uint64], bands: int
) -> NDArray[np.intp]:
    """How many whole bands each signature of ``found`` (one a row) has equal to each of
    ``asked``, as a ``len(found) x len(asked)`` matrix.

    Bands are compared by their values, not their keys, so no hash collision counts.
    """
    rows = found.shape[1] // bands
    equal = found[:, None, :] == asked[None, :, :]
    whole = equal.reshape(len(found), len(asked), bands, rows).all(axis=3)
    counts: NDArray[np.intp] = whole.sum(axis=2)
    return counts


@cache
def _coefficients(permutations: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """``A`` (odd) and ``B`` as columns, from BLAKE2b of their names: fixed for ever,
    since signatures and band keys are stored."""

    def word(name: str) -> int:
        return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest())

    a = np.array([word(f"minhash64 a{j}") | 1 for j in range(permutations)], dtype=np.uint64)
    b = np.array([word(f"minhash64 b{j}") for j in range(permutations)], dtype=np.uint64)
    return a[:, np.newaxis], b[:, np.newaxis]


__all__ = ["band_ids", "min_hashes", "mix", "pair_hashes", "shared_bands"]
