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
    """
    a, b = _columns(coefficients)
    h = reduce61(np.frombuffer(digests, dtype=">u8").astype(np.uint64))
    values = reduce61(mulmod61(a, h[np.newaxis, :]) + b)
    return tuple(values.min(axis=1).tolist())


@cache
def _columns(
    coefficients: tuple[tuple[int, int], ...],
) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    a = np.array([a for a, _ in coefficients], dtype=np.uint64)[:, np.newaxis]
    b = np.array([b for _, b in coefficients], dtype=np.uint64)[:, np.newaxis]
    return a, b


def reduce61(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """x mod 2**61 - 1 for any 64-bit x (2**61 = 1 modulo the prime; the first sum is
    below 2**61 + 7, so one subtraction finishes it)."""
    x = (x & _M61) + (x >> np.uint64(61))
    return np.where(x >= _M61, x - _M61, x)


def mulmod61(a: NDArray[np.uint64], b: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """a * b mod 2**61 - 1 for a, b < 2**61, without a 128-bit product: split both in
    32-bit halves, and fold 2**64 = 8 and 2**61 = 1 (mod 2**61 - 1) so every partial
    sum stays below 2**63."""
    a_hi, a_lo = a >> np.uint64(32), a & _LOW32
    b_hi, b_lo = b >> np.uint64(32), b & _LOW32
    high = (a_hi * b_hi) << np.uint64(3)  # a_hi*b_hi*2**64 = 8*a_hi*b_hi, < 2**61
    mid = a_hi * b_lo + a_lo * b_hi  # < 2**62; mid * 2**32 folded below
    mid = (mid >> np.uint64(29)) + ((mid & _LOW29) << np.uint64(32))
    low = a_lo * b_lo  # < 2**64
    low = (low >> np.uint64(61)) + (low & _M61)
    return reduce61(reduce61(high + mid + low))
