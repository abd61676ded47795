"""Bounded samples of a run's tasks, for statistics that would otherwise read every row.

A 1-in-k sample keeps one task id in every block of k consecutive ids (ids bk .. bk+k-1), at
a position in the block chosen by a multiplicative (Knuth) hash of the block number. The hash
spreads the positions, so the sample does not follow the periodic id patterns that workflows
produce (every tenth task being the same app), and it keeps exactly one id per block, so the
sample's size is known. The test needs only the task id, so it runs on index entries before
any table row is read; `in_sample` is the test in SQL, `hashed_in_sample` in Python, and
`sampled_ids` lists the sample of an id range in O(range / k) steps, so a reader can probe
an index for each sampled task instead of testing every one of a million ids.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from taskscope.store.key_order import index_leading_with

# The high 16 bits of the 32-bit product: its low bits keep the block's low bits (the
# multiplier is odd), so consecutive blocks would take positions in a fixed pattern. Knuth:
# take the top bits of the product.
_MULTIPLIER = 2654435761
_POSITION = "(((({block}) * 2654435761) % 4294967296) >> 16) % {k}"


def sample_stride(rows: int, budget: int) -> int:
    """k for a 1-in-k sample that keeps about `budget` of `rows` rows (1: keep all)."""
    return max(1, -(-int(rows) // max(1, int(budget))))


def _position(block: int, stride: int) -> int:
    return (((block * _MULTIPLIER) % 4294967296) >> 16) % stride


def in_sample(col: str, stride: int) -> str:
    """SQL that is true for the rows of the sample (always true when `stride` is 1). `col`
    must be a non-negative integer column (SQLite's `/` is then integer division)."""
    if stride <= 1:
        return "1"
    k = int(stride)
    return f"({_POSITION.format(block=f'{col} / {k}', k=k)} = {col} % {k})"


def hashed_in_sample(task_id: int, stride: int) -> bool:
    """`in_sample` for one id, in Python."""
    return stride <= 1 or _position(task_id // stride, stride) == task_id % stride


def hashed_in_sample_each(ids: Iterable[int], stride: int) -> list[bool]:
    """`hashed_in_sample` of each id, the arithmetic inlined (no call per id)."""
    k = int(stride)
    if k <= 1:
        return [True for _ in ids]
    return [((((i // k) * _MULTIPLIER) % 4294967296) >> 16) % k == i % k for i in ids]


def sampled_ids(first: int, last: int, stride: int) -> list[int]:
    """The ids from `first` to `last` (inclusive, non-negative) that are in the sample."""
    k = max(1, int(stride))
    if k == 1:
        return list(range(first, last + 1))
    ids = (block * k + _position(block, k) for block in range(first // k, last // k + 1))
    return [i for i in ids if first <= i <= last]


# Ids far sparser than the rows (say ids up to 10^15) would list more ids than there are
# rows: the sample test on every row is then the cheaper read.
MAX_LISTED_IDS = 100_000


def indexed_id_range(conn: sqlite3.Connection, table: str, run_id: str) -> range | None:
    """The run's first to last task id in `table`, where a (run_id, task_id) index on it gives
    them in two probes and lets SQLite probe it once per listed id; None
    without that index (or with ids a sample cannot list)."""
    # With an index (or a key) led by (run_id, task_id), taskscope's, a sample's tasks are
    # probed one by one; without one (Parsl's databases) the sample test runs over every row.
    if index_leading_with(conn, table, ("run_id", "task_id")) is None:
        return None
    first, last = (
        conn.execute(f"SELECT {f}(task_id) FROM {table} WHERE run_id = ?", (run_id,)).fetchone()[0]
        for f in ("MIN", "MAX")
    )
    if first is None:
        return range(0)
    if not isinstance(first, int) or not isinstance(last, int) or first < 0:
        return None
    return range(first, last + 1)


def listed_sample(ids: range, stride: int) -> str:
    """The sample of `ids` as a JSON list, listed in Python (`sampled_ids`) rather than by
    SQLite hashing a million ids."""
    if not ids:
        return "[]"
    return "[" + ",".join(map(str, sampled_ids(ids.start, ids.stop - 1, stride))) + "]"


def sampled_rows(
    conn: sqlite3.Connection,
    table: str,
    alias: str,
    run_id: str,
    stride: int,
    params: dict[str, Any],
) -> str:
    """FROM ... WHERE SQL for the rows of `table` (as `alias`) of the run's sampled tasks:
    index probes for a listed sample where possible, else the sample test on every row (the
    same rows either way)."""
    keep = f"{table} {alias} WHERE {alias}.run_id = :run"
    if stride <= 1:
        return keep
    ids = indexed_id_range(conn, table, run_id)
    if ids is None or len(ids) // stride > MAX_LISTED_IDS:
        return f"{keep} AND {in_sample(f'{alias}.task_id', stride)}"
    name = f"ids_{table}"
    params[name] = listed_sample(ids, stride)
    return (
        f"json_each(:{name}) AS j_{table} CROSS JOIN {table} {alias} "
        f"WHERE {alias}.run_id = :run AND {alias}.task_id = j_{table}.value"
    )
