"""What each app asked for against what its tries used, and advice to ask for what they use.

A task's request is its ``parsl_resource_specification`` and the ``walltime=`` of a python or
bash app, stored by taskscope's writer in ``taskscope_task_request`` (Parsl's databases have
no such table: their apps are compared with what each worker had, in `efficiency`, only).
Parsl's keys are read: ``cores``, ``memory`` (MB, taken as 2**20 bytes), ``disk`` (MB: shown,
not compared, as nothing measures a task's disk footprint) and ``running_time_min``.

An app's tasks may ask for different amounts: the app is compared at its most common request,
over the measured tries of the tasks that made it; tries of its other tasks are counted in
`other_request_tries` and left out.

Advice suggests what the tries used plus a margin, and is given only when that at least halves
the request (a smaller saving is within what another input could need), or when the tries
used more than they asked for (an executor that enforces requests would kill or slow them).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from taskscope.store.analysis.advice import (
    MEMORY_MARGIN,
    MIN_TRIES_FOR_ADVICE,
    OVERUSED_CPU,
    WALLTIME_MARGIN,
    Advice,
)
from taskscope.store.analysis.context import RunContext, chunks
from taskscope.store.analysis.stats import quantile

REQUEST_TABLE = "taskscope_task_request"
MB = 2**20
LOWER_WHEN = 0.5  # advise a smaller request only when the suggestion is at most half of it
MEMORY_STEP_MB = 256  # memory suggestions are rounded up to a multiple of this
MIN_RATIO_RUN_S = 0.05  # a try's cores used (CPU s ÷ run s) is noise below this run time
SPEC = "parsl_resource_specification"
RESOURCE_KEYS = ("cores", "memory", "disk", "running_time_min")  # Parsl's, in its spec

# A task's request as stored: (the spec's JSON text, walltime in seconds).
RequestKey = tuple[str | None, float | None]


class UsedTry(Protocol):
    """What one measured try used (efficiency's measured tries have these)."""

    @property
    def run_s(self) -> float: ...
    @property
    def failed(self) -> bool: ...
    @property
    def cpu_s(self) -> float | None: ...
    @property
    def rss(self) -> float | None: ...


def read_requests(ctx: RunContext, task_ids: Iterable[int]) -> dict[int, RequestKey]:
    """The request of each of `task_ids` that made one (by index seeks)."""
    if not ctx.has(REQUEST_TABLE):
        return {}
    conn = ctx.conn
    if (
        conn.execute(
            f"SELECT 1 FROM {REQUEST_TABLE} WHERE run_id = ? LIMIT 1", (ctx.run_id,)
        ).fetchone()
        is None
    ):
        return {}
    found: dict[int, RequestKey] = {}
    for chunk in chunks(sorted(set(task_ids))):
        marks = ",".join("?" * len(chunk))
        for task_id, spec, walltime in conn.execute(
            f"SELECT task_id, resource_specification, walltime FROM {REQUEST_TABLE} "
            f"WHERE run_id = ? AND task_id IN ({marks})",
            (ctx.run_id, *chunk),
        ):
            found[task_id] = (spec, walltime)
    return found


@dataclass
class RequestUse:
    """One app's most common request, and what the tries of the tasks that made it used."""

    requested: dict[str, Any]  # as the tasks asked: the spec's keys, and walltime (s)
    tries: int  # measured tries of tasks that made this request
    other_request_tries: int  # measured tries of the app's tasks that asked for another
    cores: float | None
    cores_used: float | None  # CPU s ÷ run s over the tries: cores kept busy on average
    cores_used_p99: float | None  # p99 of each try's CPU s ÷ run s (tries of 0.05 s or more)
    cpu_efficiency: float | None  # CPU s ÷ (run s x requested cores)
    memory_bytes: float | None  # requested memory
    peak_rss_p99: float | None
    memory_used: float | None  # p99 peak ÷ requested memory
    time_s: float | None  # the tighter of walltime and running_time_min
    time_key: str | None  # which of them: "walltime" or "running_time_min"
    successful_tries: int
    run_s_p99: float | None  # of the successful tries
    time_used: float | None  # p99 run time ÷ requested time


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value > 0 else None
    if isinstance(value, str):
        try:
            return _number(float(value))
        except ValueError:
            return None
    return None


def _requested(key: RequestKey) -> dict[str, Any]:
    """The resource keys of a stored request (others, such as HTEX's ``priority``, say
    nothing about resources and would split an app's tasks into many requests)."""
    spec_text, walltime = key
    try:
        spec = json.loads(spec_text) if spec_text else {}
    except ValueError:
        spec = {}
    requested = {k: spec[k] for k in RESOURCE_KEYS if k in spec} if isinstance(spec, dict) else {}
    if walltime is not None:
        requested["walltime"] = walltime
    return requested


def _p99(values: list[float]) -> float | None:
    return quantile(sorted(values), 0.99) if values else None


def request_use(
    tries: Sequence[tuple[RequestKey | None, UsedTry]],
) -> RequestUse | None:
    """The app's most common request against its tries (`tries`: each measured try of the
    app with its task's request, None for a task that asked for nothing)."""
    texts: dict[RequestKey, str | None] = {}  # each distinct stored request, parsed once
    asked: list[tuple[str | None, UsedTry]] = []  # each try's request as text, None: nothing
    for stored, attempt in tries:
        if stored is not None and stored not in texts:
            wanted = _requested(stored)
            texts[stored] = json.dumps(wanted, sort_keys=True) if wanted else None
        asked.append((texts[stored] if stored is not None else None, attempt))
    counts = Counter(text for text, _ in asked if text is not None)
    if not counts:
        return None
    # The most common request; equal counts go to the smaller text (the same on every read).
    key = min(counts, key=lambda k: (-counts[k], k))
    mine = [t for k, t in asked if k == key]
    requested = json.loads(key)
    cores = _number(requested.get("cores"))
    memory_mb = _number(requested.get("memory"))
    times = {
        name: seconds
        for name, seconds in (
            ("walltime", _number(requested.get("walltime"))),
            ("running_time_min", _scaled(_number(requested.get("running_time_min")), 60)),
        )
        if seconds is not None
    }
    time_key = min(times, key=lambda name: times[name]) if times else None
    time_s = times[time_key] if time_key else None

    with_cpu = [t for t in mine if t.cpu_s is not None and t.run_s > 0]
    cpu_s = sum(t.cpu_s or 0.0 for t in with_cpu)
    busy_s = sum(t.run_s for t in with_cpu)
    ratios = [(t.cpu_s or 0.0) / t.run_s for t in with_cpu if t.run_s >= MIN_RATIO_RUN_S]
    peak_p99 = _p99([t.rss for t in mine if t.rss is not None])
    run_times = [t.run_s for t in mine if not t.failed]
    run_p99 = _p99(run_times)
    memory = memory_mb * MB if memory_mb else None
    return RequestUse(
        requested=requested,
        tries=len(mine),
        other_request_tries=sum(1 for k, _ in asked if k is not None and k != key),
        cores=cores,
        cores_used=cpu_s / busy_s if busy_s > 0 else None,
        cores_used_p99=_p99(ratios),
        cpu_efficiency=cpu_s / (busy_s * cores) if busy_s > 0 and cores else None,
        memory_bytes=memory,
        peak_rss_p99=peak_p99,
        memory_used=peak_p99 / memory if peak_p99 is not None and memory else None,
        time_s=time_s,
        time_key=time_key,
        successful_tries=len(run_times),
        run_s_p99=run_p99,
        time_used=run_p99 / time_s if run_p99 is not None and time_s else None,
    )


def _scaled(value: float | None, factor: float) -> float | None:
    return value * factor if value is not None else None


def request_advice(app: str, use: RequestUse, timed_out: bool) -> list[Advice]:
    """Advice on an app's request (`timed_out`: some of its tries ran out of time, which the
    walltime advice of `efficiency` already covers, so no time advice here)."""
    if use.tries < MIN_TRIES_FOR_ADVICE:
        return []
    advice = []
    cores_advice = _cores_advice(app, use)
    if cores_advice is not None:
        advice.append(cores_advice)
    memory_advice = _memory_advice(app, use)
    if memory_advice is not None:
        advice.append(memory_advice)
    if not timed_out and use.successful_tries >= MIN_TRIES_FOR_ADVICE:
        time_advice = _time_advice(app, use)
        if time_advice is not None:
            advice.append(time_advice)
    return advice


def _cores_advice(app: str, use: RequestUse) -> Advice | None:
    cores, used, p99 = use.cores, use.cores_used, use.cores_used_p99
    if cores is None or used is None or p99 is None:
        return None
    wanted = max(1, math.ceil(p99), math.ceil(used))
    evidence = (
        f"requests {cores:g} cores, uses {used:.1f} on average "
        f"(p99 {p99:.1f} cores) over {use.tries} tries"
    )
    if wanted <= LOWER_WHEN * cores:
        return Advice(app, f"{SPEC}['cores']", f"{cores:g}", str(wanted), evidence)
    if used > OVERUSED_CPU * cores:
        return Advice(
            app, f"{SPEC}['cores']", f"{cores:g}", str(wanted), evidence + ": more than it asks for"
        )
    return None


def _memory_advice(app: str, use: RequestUse) -> Advice | None:
    memory, peak = use.memory_bytes, use.peak_rss_p99
    if memory is None or peak is None:
        return None
    wanted_mb = MEMORY_STEP_MB * max(1, math.ceil(peak * (1 + MEMORY_MARGIN) / MB / MEMORY_STEP_MB))
    evidence = f"requested {memory / MB:g} MB, p99 peak {peak / MB:.0f} MB over {use.tries} tries"
    if peak > memory:
        evidence += f": more than it asks for; {wanted_mb} MB is that + {MEMORY_MARGIN:.0%}"
    elif wanted_mb <= LOWER_WHEN * memory / MB:
        evidence += f": {wanted_mb} MB leaves a {MEMORY_MARGIN:.0%} margin"
    else:
        return None
    return Advice(app, f"{SPEC}['memory']", f"{memory / MB:g} MB", f"{wanted_mb} MB", evidence)


def _time_advice(app: str, use: RequestUse) -> Advice | None:
    limit, p99, key = use.time_s, use.run_s_p99, use.time_key
    if limit is None or p99 is None or key is None:
        return None
    wanted_s = p99 * (1 + WALLTIME_MARGIN)
    if key == "walltime":
        setting, unit, scale = "walltime", "s", 1.0
    else:
        setting, unit, scale = f"{SPEC}['running_time_min']", "min", 60.0
    wanted = max(1, math.ceil(wanted_s / scale))
    evidence = (
        f"requests {limit / scale:g} {unit}, the p99 of its {use.successful_tries} successful "
        f"tries is {p99:.1f} s"
    )
    if p99 > limit:
        evidence += f": longer than it asks for; {wanted} {unit} is that + {WALLTIME_MARGIN:.0%}"
    elif wanted * scale <= LOWER_WHEN * limit:
        evidence += f": {wanted} {unit} leaves a {WALLTIME_MARGIN:.0%} margin"
    else:
        return None
    return Advice(app, setting, f"{limit / scale:g} {unit}", f"{wanted} {unit}", evidence)
