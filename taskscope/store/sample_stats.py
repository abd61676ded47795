"""Figures over a bounded sample of a run's rows, computed in Python.

The resources page reads a hashed sample of tasks (`sampling.py`): tens of thousands of
resource rows, delivered in index order. Pairing each sample with the previous one of its
try and sorting values into quartiles is what SQLite's window functions did over them; on
the 10^6-task run that took ~75% of the CPU/memory part's time (the probes themselves about
50 ms), so the rows are read plainly and these functions do the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from taskscope.store.records import BoxStats

# (task_id, try_id, end, rss, cpu): one resource sample, its time in seconds since the run
# began; (start, end, memory, cpu rate): the period a sample describes.
Sample = tuple[int, int, float, float, float]
Interval = tuple[float, float, float, float]


def sample_intervals(
    samples: Iterable[Sample],
    try_starts: Mapping[tuple[int, int], float | None],
    cpu_from_zero: bool,
) -> list[Interval]:
    """Each sample covers the time since the previous sample of its try (or since the try
    started running, or nothing when that is unknown), with its resident memory and its CPU
    rate over that time. `cpu_from_zero`: the samples' CPU time counts from the try's start
    (taskscope), so a try's first sample used all of it; otherwise (Parsl: the worker
    process's total) only differences between a try's samples count."""
    intervals: list[Interval] = []
    append = intervals.append
    prev_task = prev_try = None
    prev_end = prev_cpu = 0.0
    # Sorted as tuples: by task, try, then time (the index already delivers that order); a
    # sample whose time cannot be read (NULL from julianday) describes no period.
    for task_id, try_id, end, rss, cpu in sorted(s for s in samples if s[2] is not None):
        if try_id != prev_try or task_id != prev_task:
            prev_task, prev_try = task_id, try_id
            started = try_starts.get((task_id, try_id))
            start = end if started is None else started
            before = 0.0 if cpu_from_zero else cpu
        else:
            start, before = prev_end, prev_cpu
        used = cpu - before
        append((start, end, rss, max(used, 0.0) / (end - start) if end > start else 0.0))
        prev_end, prev_cpu = end, cpu
    return intervals


def bucket_sums(
    intervals: Iterable[Interval], buckets: int, width: float
) -> tuple[list[float], list[float]]:
    """Time-weighted averages of the two weights in each of `buckets` buckets of `width`
    seconds from 0 (intervals clipped to them): an interval adds its weight times its
    overlap with the bucket, over the bucket's width. Whole buckets an interval covers are
    added through a difference array, so a long interval costs no more than a short one.
    (Written out for both weights: this loop runs once per sampled row.)"""
    horizon, last = width * buckets, buckets - 1
    part1, part2 = [0.0] * buckets, [0.0] * buckets
    diff1, diff2 = [0.0] * (buckets + 1), [0.0] * (buckets + 1)
    for s, e, w1, w2 in intervals:
        if s < 0.0:
            s = 0.0
        if e > horizon:
            e = horizon
        if e <= s:
            continue
        bs, be = int(s / width), int(e / width)
        if bs > last:
            bs = last
        if be > last:
            be = last
        if bs == be:
            part1[bs] += w1 * (e - s)
            part2[bs] += w2 * (e - s)
            continue
        head, tail = (bs + 1) * width - s, e - be * width
        part1[bs] += w1 * head
        part2[bs] += w2 * head
        part1[be] += w1 * tail
        part2[be] += w2 * tail
        diff1[bs + 1] += w1
        diff1[be] -= w1
        diff2[bs + 1] += w2
        diff2[be] -= w2
    result = ([0.0] * buckets, [0.0] * buckets)
    for out, part, diff in ((result[0], part1, diff1), (result[1], part2, diff2)):
        running = 0.0
        for b in range(buckets):
            running += diff[b]
            out[b] = (part[b] + running * width) / width
    return result


def box_stats(values: Iterable[float | None]) -> BoxStats | None:
    """Count, minimum, quartiles (the value at rank floor((n - 1) q) of the sorted values),
    maximum and mean of the values that are not None; None when there are none."""
    kept = sorted(v for v in values if v is not None)
    if not kept:
        return None
    n = len(kept)

    def rank(q: float) -> float:
        return kept[int((n - 1) * q)]

    return BoxStats(n, kept[0], rank(0.25), rank(0.5), rank(0.75), kept[-1], sum(kept) / n)
