"""Sick nodes: hosts (and blocks) whose tries fail more often, or run slower, than chance
allows.

Per host: tries, failed tries, failure rate, and slowdown: each try's run time divided by the
median run time of its app over the whole run, the median of those ratios on this host
against the median elsewhere (1.0: as fast as the other hosts on the same apps).

A host is flagged only when a test says the difference is not chance, with a Bonferroni
correction over the hosts tested (`ALPHA` / hosts):

- failures: one-sided Fisher exact test of its failed/total tries against the other hosts';
- slowdown: one-sided Mann-Whitney U test of its run-time ratios against the other hosts',
  and a slowdown of at least `MIN_SLOWDOWN` (a significant 3% is not worth reporting).

Run-time ratios come from the tries of a hashed sample of about 50,000 tasks on large runs;
failure counts are exact.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from taskscope.store.analysis.context import RunContext
from taskscope.store.analysis.stats import fisher_greater, mann_whitney_greater, median
from taskscope.store.analysis.tries import (
    INTERNAL_EXECUTORS,
    Places,
    failed_users_tries_per_place,
    sampled_finished_tries,
    tries_per_place,
)

ALPHA = 0.01
MIN_SLOWDOWN = 1.25
MIN_TRIES = 5  # a host with fewer tries is listed, never tested


@dataclass(frozen=True)
class HostHealth:
    kind: str  # "host" or "block"
    name: str
    tries: int
    failed: int
    failure_rate: float
    others_failure_rate: float | None
    failure_p: float | None  # None: not tested
    slowdown: float | None  # median run-time ratio here ÷ elsewhere
    slowdown_p: float | None
    flagged: bool
    reasons: list[str]


def _failed_per_place_sql(ctx: RunContext) -> Places:
    """Failed tries of users' executors per (host, block): a pass over the failures."""
    if ctx.by_taskscope and ctx.has("taskscope_try_failure"):
        failed_sql = (
            "SELECT y.hostname, y.block_id, COUNT(*) FROM taskscope_try_failure f "
            "CROSS JOIN try y ON y.run_id = f.run_id AND y.task_id = f.task_id "
            "AND y.try_id = f.try_id WHERE f.run_id = ? AND y.task_executor NOT IN (?, ?) "
            "GROUP BY 1, 2"
        )
    else:
        failed_sql = (
            "SELECT hostname, block_id, COUNT(*) FROM try WHERE run_id = ? AND "
            "task_fail_history IS NOT NULL AND task_fail_history != '' "
            "AND task_executor NOT IN (?, ?) GROUP BY 1, 2"
        )
    failed: Places = {}
    for host, block, n in ctx.conn.execute(failed_sql, (ctx.run_id, *INTERNAL_EXECUTORS)):
        key = (host or None, None if block in (None, "") else str(block))
        failed[key] = failed.get(key, 0) + n
    return failed


def _counts(ctx: RunContext) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    """(host -> (tries, failed tries), block -> (tries, failed tries)), exact: the shared
    tries per place (tries.tries_per_place) and the failed ones."""
    tries: Places = {}
    for (host, block, users), n in tries_per_place(ctx).items():
        if not users:
            continue
        key = (host or None, None if block in (None, "") else str(block))
        tries[key] = tries.get(key, 0) + n
    # Read by failure_groups when it ran first, else kept by the writer, else counted in SQL.
    failed: Places | None = ctx.shared.get("failed_places")
    if failed is None:
        failed = failed_users_tries_per_place(ctx)
    if failed is None:
        failed = _failed_per_place_sql(ctx)
    hosts: dict[str, list[int]] = {}
    blocks: dict[str, list[int]] = {}
    for (host, block), n in tries.items():
        bad = failed.get((host, block), 0)
        for table, name in ((hosts, host), (blocks, block)):
            if name is not None:
                entry = table.setdefault(name, [0, 0])
                entry[0] += n
                entry[1] += bad
    return (
        {k: (v[0], v[1]) for k, v in hosts.items()},
        {k: (v[0], v[1]) for k, v in blocks.items()},
    )


def host_health(ctx: RunContext) -> list[HostHealth]:
    """Every host and every block of the run, flagged ones first."""
    if not ctx.has("try"):
        return []
    host_counts, block_counts = _counts(ctx)
    counts = {"host": host_counts, "block": block_counts}
    sample = [t for t in sampled_finished_tries(ctx)[0] if not t.failed]
    by_app: dict[str, list[float]] = defaultdict(list)
    for attempt in sample:
        by_app[attempt.app].append(attempt.run_s)
    app_median = {app: median(values) or 0.0 for app, values in by_app.items()}
    ratios: dict[str, dict[str, list[float]]] = {
        "host": defaultdict(list),
        "block": defaultdict(list),
    }
    for attempt in sample:
        typical = app_median.get(attempt.app) or 0.0
        if typical <= 0:
            continue
        ratio = attempt.run_s / typical
        if attempt.hostname:
            ratios["host"][attempt.hostname].append(ratio)
        if attempt.block_id:
            ratios["block"][attempt.block_id].append(ratio)
    result = []
    for kind in ("host", "block"):
        result += _assess(kind, counts[kind], ratios[kind])
    result.sort(key=lambda h: (not h.flagged, h.kind, -h.tries, h.name))
    return result


def _assess(
    kind: str, counts: dict[str, tuple[int, int]], ratios: dict[str, list[float]]
) -> list[HostHealth]:
    if not counts:
        return []
    total_tries = sum(n for n, _ in counts.values())
    total_failed = sum(f for _, f in counts.values())
    tested = [name for name, (n, _) in counts.items() if n >= MIN_TRIES]
    level = ALPHA / max(1, len(tested))
    several = len(counts) > 1
    found = []
    for name, (n, failed) in counts.items():
        rest_n, rest_failed = total_tries - n, total_failed - failed
        rate = failed / n if n else 0.0
        rest_rate = rest_failed / rest_n if rest_n else None
        failure_p = slowdown = slowdown_p = None
        reasons = []
        if several and name in tested and rest_n:
            failure_p = fisher_greater(failed, n, rest_failed, rest_n)
            if failure_p < level and rest_rate is not None and rate > rest_rate:
                reasons.append(
                    f"{rate:.0%} of its {n:,} tries failed against "
                    f"{rest_rate:.0%} elsewhere (Fisher p = {failure_p:.1e})"
                )
            here = ratios.get(name, [])
            elsewhere = [r for other, values in ratios.items() if other != name for r in values]
            if len(here) >= MIN_TRIES and len(elsewhere) >= MIN_TRIES:
                here_median, other_median = median(here), median(elsewhere)
                if here_median and other_median:
                    slowdown = here_median / other_median
                    slowdown_p = mann_whitney_greater(here, elsewhere)
                    if slowdown_p < level and slowdown >= MIN_SLOWDOWN:
                        reasons.append(
                            f"its tries ran {slowdown:.1f}x as long as the same "
                            f"apps' elsewhere (Mann-Whitney p = {slowdown_p:.1e})"
                        )
        found.append(
            HostHealth(
                kind,
                name,
                n,
                failed,
                rate,
                rest_rate,
                failure_p,
                slowdown,
                slowdown_p,
                bool(reasons),
                reasons,
            )
        )
    return found
