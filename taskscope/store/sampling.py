"""Bounded samples of a run's tasks, for statistics that would otherwise read every row.

A task is in a 1-in-k sample when a multiplicative (Knuth) hash of its id is divisible by k.
The hash spreads consecutive ids, so the sample does not follow the periodic id patterns that
workflows produce (every tenth task being the same app). The test needs only the task id, so
it runs on index entries before any table row is read.
"""

from __future__ import annotations

_HASHED = "(({col} * 2654435761) % 4294967296)"


def sample_stride(rows: int, budget: int) -> int:
    """k for a 1-in-k sample that keeps about `budget` of `rows` rows (1: keep all)."""
    return max(1, -(-int(rows) // max(1, int(budget))))


def in_sample(col: str, stride: int) -> str:
    """SQL that is true for the rows of the sample (always true when `stride` is 1)."""
    if stride <= 1:
        return "1"
    return f"({_HASHED.format(col=col)} % {int(stride)} = 0)"
