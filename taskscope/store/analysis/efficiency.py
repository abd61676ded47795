"""Efficiency per app, and conservative advice with its evidence.

Per app, over its tries with a run time (on large runs a hashed sample of about
`EFFICIENCY_TRIES` tries, drawn at random from the sample the other analyses share):

- CPU efficiency: CPU seconds ÷ (run seconds x cores per worker), where cores per worker is
  the host's CPU count ÷ its workers (node table). 100% = every core a worker could use was
  busy for the whole try;
- peak resident memory (median, p99, max) against the memory per worker (host memory ÷
  workers);
- bytes read and written per try and their rate.

"Available" means what the node table says each worker had; what each task asked for (its
``parsl_resource_specification`` and ``walltime``) is compared with its use in `requests`.

Advice is only given with evidence that would survive a second look:

- more workers per node: the run's tries used under `UNDERUSED_CPU` of their cores, tasks on
  the critical path waited for a worker, and the larger count still fits the p99 memory;
- more cores per worker: an app's tries kept more than `OVERUSED_CPU` x their cores busy;
- memory: an app's p99 peak plus `MEMORY_MARGIN` exceeds the memory per worker (or its tries
  died of memory); the request to make is that p99 plus margin;
- walltime: an app's tries ran out of their ``walltime`` while its successful tries' p99
  plus `WALLTIME_MARGIN` says how long to allow; tries that outlived their block say how much
  longer blocks must last.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from taskscope.store.analysis.advice import (
    MEMORY_MARGIN,
    MIN_TRIES_FOR_ADVICE,
    OVERUSED_CPU,
    WALLTIME_MARGIN,
    Advice,
    gib,
)
from taskscope.store.analysis.context import RunContext, chunks
from taskscope.store.analysis.failures import MEMORY, WALLTIME, FailureGroup
from taskscope.store.analysis.requests import (
    RequestKey,
    RequestUse,
    read_requests,
    request_advice,
    request_use,
)
from taskscope.store.analysis.stats import quantile
from taskscope.store.analysis.tries import sampled_finished_tries
from taskscope.store.timestamps import parse_timestamp

UNDERUSED_CPU = 0.5
MEMORY_HEADROOM = 0.8  # more workers only while their p99 memory fits in 80% of the node
EFFICIENCY_TRIES = 12_000  # tries measured per run at most (a random sub-sample beyond)
EFFICIENCY_SEED = 12345
_CPU = "(COALESCE(psutil_process_time_user, 0) + COALESCE(psutil_process_time_system, 0))"
_WALLTIME_OF = re.compile(r"walltime(?: of|:)\s*([0-9.]+)\s*s", re.IGNORECASE)


@dataclass
class AppEfficiency:
    app: str
    tries: int  # tries measured (with a run time), of the sample on large runs
    failed_tries: int
    run_s_median: float | None
    run_s_p99: float | None
    cpu_s_mean: float | None
    cpu_efficiency: float | None  # CPU s ÷ (run s x cores per worker)
    cores_used: float | None  # CPU s ÷ run s: cores kept busy, on average
    cores_per_worker: float | None
    peak_rss_median: float | None
    peak_rss_p99: float | None
    peak_rss_max: float | None
    memory_per_worker: float | None
    read_bytes_median: float | None
    write_bytes_median: float | None
    io_bytes_per_s: float | None  # (read + write) ÷ run time, over its tries
    suggested_memory_bytes: float | None  # p99 peak + margin
    suggested_walltime_s: float | None  # p99 run time of successful tries + margin
    sample_fraction: float
    request: RequestUse | None = None  # what its tasks asked for, against what they used
    advice: list[Advice] = field(default_factory=list)


@dataclass(frozen=True)
class _Measured:
    app: str
    host: str | None
    run_s: float
    failed: bool
    cpu_s: float | None
    rss: float | None
    read: float | None
    write: float | None
    request: RequestKey | None = None  # what its task asked for (taskscope_task_request)


@dataclass(frozen=True)
class WorkerShape:
    """What one worker had on a host, from the node table's latest row of each pool."""

    cores: float
    memory: float
    workers: int  # on the host
    host_memory: float
    host_cores: int


def worker_shapes(ctx: RunContext) -> dict[str, WorkerShape]:
    if not ctx.has("node"):
        return {}
    per_host: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for host, cpus, memory, workers, _ in ctx.conn.execute(
        "SELECT hostname, cpu_count, total_memory, worker_count, MAX(timestamp) FROM node "
        "WHERE run_id = ? GROUP BY hostname, uid, block_id",
        (ctx.run_id,),
    ):
        per_host[host].append((cpus or 0, float(memory or 0), workers or 0))
    shapes = {}
    for host, pools in per_host.items():
        cpus = max(p[0] for p in pools)
        memory = max(p[1] for p in pools)
        workers = sum(p[2] for p in pools)
        if workers > 0 and cpus > 0:
            shapes[host] = WorkerShape(cpus / workers, memory / workers, workers, memory, cpus)
    return shapes


def _measured(ctx: RunContext) -> tuple[list[_Measured], int]:
    """The shared sample's tries (see `tries.sampled_finished_tries`) with their resource
    figures, read by task id (index seeks, not a pass over every sample of the run)."""
    sample, stride = sampled_finished_tries(ctx)
    if len(sample) > EFFICIENCY_TRIES:
        # Percentiles per app need far fewer tries than the shared sample holds: a hashed
        # sub-sample keeps the resource reads to a few thousand index seeks.
        # (A seeded random choice: the shared sample is in task order, and a workflow's apps
        # often repeat with the task id, so every k-th try would pick the same apps.)
        fraction = EFFICIENCY_TRIES / len(sample)
        sample = random.Random(EFFICIENCY_SEED).sample(sample, EFFICIENCY_TRIES)
        stride = max(1, round(stride / fraction))
    figures: dict[tuple[int, int], tuple[Any, ...]] = {}
    if ctx.has("resource") and sample:
        for chunk in chunks({t.task_id for t in sample}):
            marks = ",".join("?" * len(chunk))
            for row in ctx.conn.execute(
                "SELECT task_id, try_id, COUNT(*), "
                f"MAX({_CPU}), MIN({_CPU}), MAX(psutil_process_memory_resident), "
                "MAX(psutil_process_disk_read), MIN(psutil_process_disk_read), "
                "MAX(psutil_process_disk_write), MIN(psutil_process_disk_write) "
                f"FROM resource WHERE run_id = ? AND task_id IN ({marks}) "
                "GROUP BY task_id, try_id",
                (ctx.run_id, *chunk),
            ):
                figures[(row[0], row[1])] = row[2:]
    requests = read_requests(ctx, (t.task_id for t in sample))
    per_try_figures = ctx.by_taskscope  # taskscope: counters per try; Parsl: per worker process
    measured = []
    for attempt in sample:
        n, cpu_hi, cpu_lo, rss, rd_hi, rd_lo, wr_hi, wr_lo = figures.get(
            (attempt.task_id, attempt.try_id), (0, None, None, None, None, None, None, None)
        )
        if per_try_figures or not n:
            cpu, read, write = cpu_hi, rd_hi, wr_hi
        elif n >= 2:  # Parsl: only differences between a try's samples are the try's own
            cpu = cpu_hi - cpu_lo
            read, write = (rd_hi or 0) - (rd_lo or 0), (wr_hi or 0) - (wr_lo or 0)
        else:
            cpu = read = write = None
        measured.append(
            _Measured(
                attempt.app,
                attempt.hostname,
                attempt.run_s,
                attempt.failed,
                cpu,
                rss,
                read,
                write,
                requests.get(attempt.task_id),
            )
        )
    return measured, stride


def _p(values: list[float], q: float) -> float | None:
    return quantile(sorted(values), q) if values else None


@dataclass
class Efficiency:
    apps: list[AppEfficiency]
    advice: list[Advice]  # run-wide advice first, then each app's (also in AppEfficiency)


def app_efficiency(
    ctx: RunContext,
    groups: list[FailureGroup] | None = None,
    worker_wait_share: float | None = None,
) -> Efficiency:
    """Per app figures and advice. `groups`: the run's failure groups (memory and walltime
    failures are evidence); `worker_wait_share`: the share of the critical path spent waiting
    for a worker (evidence that more workers would shorten the run)."""
    if not (ctx.has("try") and ctx.has("task")):
        return Efficiency([], [])
    measured, stride = _measured(ctx)
    shapes = worker_shapes(ctx)
    by_app: dict[str, list[_Measured]] = defaultdict(list)
    for m in measured:
        by_app[m.app].append(m)
    lifetime = (
        block_lifetime_s(ctx)
        if any(g.cause == WALLTIME and g.exception_type != "AppTimeout" for g in groups or [])
        else None
    )
    apps = [
        _one_app(app, by_app[app], shapes, 1.0 / stride, groups or [], lifetime)
        for app in sorted(by_app)
    ]
    run_advice = _workers_advice(measured, shapes, apps, worker_wait_share)
    advice = ([run_advice] if run_advice is not None else []) + [
        a for app in apps for a in app.advice
    ]
    return Efficiency(apps, advice)


def _one_app(
    app: str,
    tries: list[_Measured],
    shapes: dict[str, WorkerShape],
    fraction: float,
    groups: list[FailureGroup],
    lifetime: float | None = None,
) -> AppEfficiency:
    ok = [m for m in tries if not m.failed]
    run_times = [m.run_s for m in ok]
    with_cpu = [m for m in tries if m.cpu_s is not None and m.run_s > 0]
    cpu_s = sum(m.cpu_s or 0.0 for m in with_cpu)
    busy_s = sum(m.run_s for m in with_cpu)
    capacity_s = sum(m.run_s * shapes[m.host].cores for m in with_cpu if m.host in shapes)
    cores_known = [shapes[m.host].cores for m in tries if m.host in shapes]
    memories = [shapes[m.host].memory for m in tries if m.host in shapes]
    peaks = [m.rss for m in tries if m.rss is not None]
    reads = [m.read for m in tries if m.read is not None]
    writes = [m.write for m in tries if m.write is not None]
    io_tries = [m for m in tries if m.read is not None and m.write is not None and m.run_s > 0]
    io_time = sum(m.run_s for m in io_tries)
    p99_peak = _p(peaks, 0.99)
    p99_run = _p(run_times, 0.99)
    result = AppEfficiency(
        app=app,
        tries=len(tries),
        failed_tries=len(tries) - len(ok),
        run_s_median=_p(run_times, 0.5),
        run_s_p99=p99_run,
        cpu_s_mean=cpu_s / len(with_cpu) if with_cpu else None,
        cpu_efficiency=cpu_s / capacity_s if capacity_s > 0 else None,
        cores_used=cpu_s / busy_s if busy_s > 0 else None,
        cores_per_worker=min(cores_known) if cores_known else None,
        peak_rss_median=_p(peaks, 0.5),
        peak_rss_p99=p99_peak,
        peak_rss_max=max(peaks) if peaks else None,
        memory_per_worker=min(memories) if memories else None,
        read_bytes_median=_p(reads, 0.5),
        write_bytes_median=_p(writes, 0.5),
        io_bytes_per_s=(
            sum(m.read + m.write for m in io_tries) / io_time  # type: ignore[operator]
            if io_time > 0
            else None
        ),
        suggested_memory_bytes=p99_peak * (1 + MEMORY_MARGIN) if p99_peak else None,
        suggested_walltime_s=p99_run * (1 + WALLTIME_MARGIN) if p99_run else None,
        sample_fraction=fraction,
        request=request_use([(m.request, m) for m in tries]),
    )
    result.advice = _app_advice(result, groups, lifetime)
    if result.request is not None:
        timed_out = any(app in g.apps and g.count and g.cause == WALLTIME for g in groups)
        result.advice += request_advice(app, result.request, timed_out)
    return result


def _app_advice(
    app: AppEfficiency, groups: list[FailureGroup], block_lifetime_s: float | None = None
) -> list[Advice]:
    advice = []
    mine = [g for g in groups if app.app in g.apps and g.count]
    enough = app.tries >= MIN_TRIES_FOR_ADVICE
    if (
        enough
        and app.cores_used is not None
        and app.cores_per_worker
        and app.cores_used > OVERUSED_CPU * app.cores_per_worker
    ):
        wanted = math.ceil(app.cores_used)
        advice.append(
            Advice(
                app.app,
                "cores_per_worker",
                f"{app.cores_per_worker:g}",
                f"{wanted}",
                f"its tries kept {app.cores_used:.1f} cores busy on average with "
                f"{app.cores_per_worker:g} per worker: they compete for cores",
            )
        )
    memory_failures = sum(g.count for g in mine if g.cause == MEMORY)
    if (
        app.suggested_memory_bytes
        and app.memory_per_worker
        and (memory_failures or (enough and app.suggested_memory_bytes > app.memory_per_worker))
    ):
        evidence = (
            f"p99 peak memory {gib(app.peak_rss_p99)} + {MEMORY_MARGIN:.0%} against "
            f"{gib(app.memory_per_worker)} per worker"
        )
        if memory_failures:
            evidence += f"; {memory_failures} tries died of memory"
        advice.append(
            Advice(
                app.app,
                "mem_per_worker",
                gib(app.memory_per_worker),
                gib(app.suggested_memory_bytes),
                evidence,
            )
        )
    timeouts = [g for g in mine if g.cause == WALLTIME]
    app_timeouts = [g for g in timeouts if g.exception_type != "WorkerLost"]
    if app_timeouts:
        current = _walltime_in(app_timeouts)
        tries = sum(g.count for g in app_timeouts)
        if app.suggested_walltime_s and (current is None or app.suggested_walltime_s > current):
            suggested = f"{app.suggested_walltime_s:.1f} s"
            evidence = (
                f"{tries} tries ran out of it; the p99 of its {app.tries - app.failed_tries}"
                f" successful tries is {app.run_s_p99:.1f} s, + {WALLTIME_MARGIN:.0%}"
            )
        else:
            suggested = "longer, then measure"
            evidence = (
                f"{tries} tries ran out of it and none succeeded, so no successful try "
                "says how long it needs"
            )
        advice.append(
            Advice(app.app, "walltime", f"{current:g} s" if current else None, suggested, evidence)
        )
    lost_to_blocks = sum(g.count for g in timeouts if g.exception_type != "AppTimeout")
    if lost_to_blocks and app.tries:
        estimated_tries = app.tries / app.sample_fraction if app.sample_fraction else app.tries
        share = lost_to_blocks / (estimated_tries + lost_to_blocks)
        evidence = f"{share:.0%} of its tries outlived their block"
        if block_lifetime_s and app.run_s_p99:
            # Long enough for one more try of the app's p99 (plus margin) after the point
            # where the blocks were ended.
            wanted = block_lifetime_s + app.run_s_p99 * (1 + WALLTIME_MARGIN)
            advice.append(
                Advice(
                    app.app,
                    "walltime (of the blocks)",
                    _clock(block_lifetime_s),
                    _clock(wanted),
                    evidence + f" (blocks lasted about "
                    f"{_clock(block_lifetime_s)}; the app's p99 try is "
                    f"{app.run_s_p99:.0f} s)",
                )
            )
        else:
            advice.append(Advice(app.app, "walltime (of the blocks)", None, "longer", evidence))
    return advice


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def block_lifetime_s(ctx: RunContext) -> float | None:
    """The median time blocks ran, first RUNNING row to their first terminal row: what a
    block's walltime allowed (for blocks that ended while the run went on)."""
    if not ctx.has("block"):
        return None
    lifetimes = []
    for running, ended in ctx.conn.execute(
        "SELECT MIN(CASE WHEN status = 'RUNNING' THEN timestamp END), "
        "MIN(CASE WHEN status IN ('COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'MISSING', "
        "'SCALED_IN') THEN timestamp END) FROM block WHERE run_id = ? "
        "GROUP BY executor_label, block_id",
        (ctx.run_id,),
    ):
        start, end = parse_timestamp(running), parse_timestamp(ended)
        if start is not None and end is not None and end > start:
            lifetimes.append((end - start).total_seconds())
    return quantile(sorted(lifetimes), 0.5)


def _walltime_in(groups: list[FailureGroup]) -> float | None:
    for group in groups:
        if group.example is not None:
            found = _WALLTIME_OF.search(group.example.message or "")
            if found:
                return float(found.group(1))
    return None


def _workers_advice(
    measured: list[_Measured],
    shapes: dict[str, WorkerShape],
    apps: list[AppEfficiency],
    worker_wait_share: float | None,
) -> Advice | None:
    with_cpu = [m for m in measured if m.cpu_s is not None and m.host in shapes and m.run_s > 0]
    if len(with_cpu) < MIN_TRIES_FOR_ADVICE or not shapes or worker_wait_share is None:
        return None
    capacity = sum(m.run_s * shapes[m.host].cores for m in with_cpu)
    busy = sum(m.cpu_s or 0.0 for m in with_cpu) / capacity if capacity else 1.0
    if busy >= UNDERUSED_CPU or worker_wait_share < 0.1:
        return None
    workers = max(s.workers for s in shapes.values())
    wanted = min(
        2 * workers, max(workers + 1, math.floor(workers * UNDERUSED_CPU / max(busy, 1e-3)))
    )
    peaks = [a.peak_rss_p99 for a in apps if a.peak_rss_p99]
    host_memory = min(s.host_memory for s in shapes.values())
    if peaks and host_memory:
        wanted = min(wanted, math.floor(MEMORY_HEADROOM * host_memory / max(peaks)))
    if wanted <= workers:
        return None
    return Advice(
        None,
        "max_workers_per_node",
        str(workers),
        str(wanted),
        f"workers were {busy:.0%} CPU-busy while the critical path spent "
        f"{worker_wait_share:.0%} of the run waiting for a worker; {wanted} workers' "
        "p99 memory still fits the node",
    )
