"""The few statistics the analyses need, with the standard library only (no SciPy).

- `fisher_greater`: one-sided Fisher exact test that a group's failure rate exceeds the rest's.
- `mann_whitney_greater`: one-sided Mann-Whitney U test (normal approximation with tie and
  continuity correction) that one sample tends to be larger than another.
- `welch_t`: Welch's unequal-variance t test, two-sided, with a normal approximation of the t
  distribution for the p-value when there are enough degrees of freedom.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Sequence
from itertools import chain


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def quantile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of already sorted values (linear interpolation)."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _hypergeometric_log_pmf(k: int, hits: int, n_a: int, total: int) -> float:
    return _log_choose(hits, k) + _log_choose(total - hits, n_a - k) - _log_choose(total, n_a)


def fisher_greater(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """P(a group of n_a drawn from all n_a + n_b tries holds >= hits_a of the hits_a + hits_b
    hits): small when group a's rate is higher than chance allows.

    The hypergeometric terms fall off geometrically away from the mean, so each tail is
    summed from its start outwards only until the terms stop mattering (relative 1e-17):
    a few hundred terms even for a million tries."""
    hits, total = hits_a + hits_b, n_a + n_b
    if n_a <= 0 or hits <= 0 or total <= 0:
        return 1.0
    low, high = max(0, n_a - (total - hits)), min(hits, n_a)
    if hits_a <= low:
        return 1.0
    if hits_a > high:
        return 0.0
    mean = n_a * hits / total
    if hits_a > mean:  # upper tail: from hits_a up
        return min(1.0, _tail(hits_a, high, 1, hits, n_a, total))
    # hits_a at or below the mean: 1 - P(X <= hits_a - 1), the lower tail summed downwards
    return max(0.0, min(1.0, 1.0 - _tail(hits_a - 1, low, -1, hits, n_a, total)))


def _tail(start: int, stop: int, step: int, hits: int, n_a: int, total: int) -> float:
    first = _hypergeometric_log_pmf(start, hits, n_a, total)
    log_term, acc, k = 0.0, 0.0, start
    while True:
        acc += math.exp(log_term)
        if k == stop or log_term < -40.0:  # e^-40: below a double's precision of acc
            break
        # The ratio of consecutive terms, so no lgamma per term.
        if step > 0:
            ratio = (hits - k) * (n_a - k) / ((k + 1) * (total - hits - n_a + k + 1))
        else:
            ratio = k * (total - hits - n_a + k) / ((hits - k + 1) * (n_a - k + 1))
        if ratio <= 0:
            break
        log_term += math.log(ratio)
        k += step
    return math.exp(first) * acc


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mann_whitney_greater(a: Sequence[float], b: Sequence[float]) -> float:
    """One-sided p-value that values in `a` tend to be larger than values in `b`."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 1.0
    # U is the number of pairs (x of a, y of b) with x > y, a tie counting half: counted by
    # bisecting the sorted `b` (the same figure as the rank sum, without ranking a+b).
    ordered = sorted(b)
    below = tied = 0
    for value in a:
        low = bisect_left(ordered, value)
        below += low
        tied += bisect_right(ordered, value, low) - low
    u = below + tied / 2
    tie_term = sum(size**3 - size for size in Counter(chain(a, b)).values() if size > 1)
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return _normal_sf(z)


def mann_whitney_two_sided(a: Sequence[float], b: Sequence[float]) -> float:
    return min(1.0, 2 * min(mann_whitney_greater(a, b), mann_whitney_greater(b, a)))


def two_proportions(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    """Two-sided p-value that two failure rates differ: Fisher's test both ways, doubled."""
    return min(
        1.0,
        2 * min(fisher_greater(hits_a, n_a, hits_b, n_b), fisher_greater(hits_b, n_b, hits_a, n_a)),
    )
