"""MinHash arithmetic modulo the Mersenne prime 2**61 - 1, vectorised with numpy.

Kept apart from fingerprint.py so that numpy (~0.1-0.3 s and ~15 MB to import) loads on the
first MinHash, not in every command: a poll of unchanged sources never computes one.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

MERSENNE = (1 << 61) - 1
_M61 = np.uint64(MERSENNE)
_LOW32 = np.uint64(0xFFFFFFFF)
_LOW29 = np.uint64((1 << 29) - 1)


def min_hashes(digests: bytes, coefficients: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """``min((a * h + b) % MERSENNE for h in hashes)`` for each ``(a, b)``, exactly: the
    same integers as Python's big ints (a < 2**61 and b < 2**61 are required).

    ``digests`` holds each ``h`` as 8 big-endian bytes, one after the other: read as one
    array, not converted to a Python int each.

    No 128-bit product: ``a`` and ``h`` are split in 32-bit halves, and 2**64 = 8 and
    2**61 = 1 (mod MERSENNE) fold ``a * h + b`` into six parts, each below 2**61, whose
    sum fits in 64 bits; one fold then leaves it below 2 * MERSENNE.

    Every step over the permutations x shingles matrix writes into one of three buffers
    (``out=`` and in-place operators) and the last reduction is a wrapping subtraction
    and a minimum, not a mask and ``np.where``: a new array per step and ``np.where``
    made it ~4 times slower (~290 against ~60-85 us for 149 shingles, bench/README.md,
    twenty-fourth session).
    """
    a_hi, a_lo, b = _columns(coefficients)
    h = reduce61(np.frombuffer(digests, dtype=">u8").astype(np.uint64))
    h_hi = (h >> np.uint64(32))[np.newaxis, :]
    h_lo = (h & _LOW32)[np.newaxis, :]
    mid = np.multiply(a_hi, h_lo)
    x = np.multiply(a_lo, h_hi)
    mid += x  # < 2**62
    np.multiply(a_hi, h_hi, out=x)
    x <<= np.uint64(3)  # 2**64 = 8: < 2**61
    part = np.right_shift(mid, np.uint64(29))  # mid * 2**32 = (mid >> 29) * 2**61 + ...
    x += part  # this part < 2**33
    mid &= _LOW29
    mid <<= np.uint64(32)
    x += mid  # this part < 2**61
    np.multiply(a_lo, h_lo, out=part)
    np.bitwise_and(part, _M61, out=mid)
    x += mid  # this part < 2**61
    part >>= np.uint64(61)
    x += part  # this part < 8
    x += b  # this part < 2**61; six parts, each as bounded, fit in 64 bits
    np.bitwise_and(x, _M61, out=mid)
    x >>= np.uint64(61)
    mid += x  # below 2**61 + 4, congruent to a * h + b
    # mid - MERSENNE wraps past 2**63 unless mid >= MERSENNE: the minimum of the two is
    # mid reduced.
    np.subtract(mid, _M61, out=x)
    np.minimum(mid, x, out=mid)
    return tuple(mid.min(axis=1).tolist())


@cache
def _columns(
    coefficients: tuple[tuple[int, int], ...],
) -> tuple[NDArray[np.uint64], NDArray[np.uint64], NDArray[np.uint64]]:
    """``a``'s high and low 32 bits and ``b``, as columns (one row a permutation)."""
    a = np.array([a for a, _ in coefficients], dtype=np.uint64)[:, np.newaxis]
    b = np.array([b for _, b in coefficients], dtype=np.uint64)[:, np.newaxis]
    return a >> np.uint64(32), a & _LOW32, b


def reduce61(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """x mod 2**61 - 1 for any 64-bit x (2**61 = 1 modulo the prime; the first sum is
    below 2**61 + 7, so one subtraction finishes it)."""
    x = (x & _M61) + (x >> np.uint64(61))
    return np.where(x >= _M61, x - _M61, x)
