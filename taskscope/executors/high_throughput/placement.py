"""Where each worker runs: its CPU cores (``cpu_affinity``) and accelerator.

The rules are Parsl's (``process_worker_pool.py``), computed in the workflow process so a bad
``cpu_affinity`` is a clear ``ValueError`` at ``start()`` rather than workers that die: the
cores available to the pool are split between its ``pool_size`` workers.

- ``"none"``: no pinning.
- ``"block"``: adjacent cores, worker 0 the lowest (0-1 to worker 0, 2-3 to worker 1).
- ``"block-reverse"``: adjacent cores, worker 0 the highest.
- ``"alternating"``: round robin (0,2 to worker 0, 1,3 to worker 1).
- ``"list:0,1:2-3"``: one ``:``-separated entry per worker, each a list of cores and ranges.
"""

from __future__ import annotations

import os

AFFINITY_NAMES = ("none", "block", "block-reverse", "alternating")


def available_cores() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def check_affinity(cpu_affinity: object) -> None:
    """Raise ``ValueError`` unless ``cpu_affinity`` is one of the forms above."""
    if not isinstance(cpu_affinity, str) or not (
        cpu_affinity in AFFINITY_NAMES or cpu_affinity.startswith("list:")
    ):
        raise ValueError(
            f"HighThroughputExecutor(cpu_affinity=...) must be one of {', '.join(AFFINITY_NAMES)} "
            f"or 'list:<cores of worker 0>:<cores of worker 1>...', got {cpu_affinity!r}"
        )
    if cpu_affinity.startswith("list:"):
        for entry in cpu_affinity.split(":")[1:]:
            _parse_core_list(cpu_affinity, entry)


def _parse_core_list(spec: str, entry: str) -> list[int]:
    cores: list[int] = []
    for part in entry.split(","):
        bounds = part.split("-")
        try:
            if len(bounds) == 1:
                cores.append(int(bounds[0]))
            elif len(bounds) == 2:
                cores.extend(range(int(bounds[0]), int(bounds[1]) + 1))
            else:
                raise ValueError(part)
        except ValueError:
            raise ValueError(
                f"HighThroughputExecutor(cpu_affinity={spec!r}): {part!r} is not a core "
                "number or a range like 2-3"
            ) from None
    return cores


def cores_for_worker(
    cpu_affinity: str, rank: int, pool_size: int, cores: list[int] | None = None
) -> list[int] | None:
    """The cores worker ``rank`` of a pool of ``pool_size`` is pinned to (None: no pinning)."""
    check_affinity(cpu_affinity)
    if cpu_affinity == "none":
        return None
    if cpu_affinity.startswith("list:"):
        entries = cpu_affinity.split(":")[1:]
        if len(entries) != pool_size:
            raise ValueError(
                f"HighThroughputExecutor(cpu_affinity={cpu_affinity!r}) lists "
                f"{len(entries)} workers' cores; the pool has {pool_size} workers"
            )
        return _parse_core_list(cpu_affinity, entries[rank])
    cores = available_cores() if cores is None else cores
    per_worker = len(cores) // pool_size
    if per_worker < 1:
        raise ValueError(
            f"HighThroughputExecutor(cpu_affinity={cpu_affinity!r}) needs at least one core "
            f"per worker: {pool_size} workers, {len(cores)} cores"
        )
    if cpu_affinity == "block":
        return cores[per_worker * rank : per_worker * (rank + 1)]
    if cpu_affinity == "block-reverse":
        reverse = pool_size - rank - 1
        return cores[per_worker * reverse : per_worker * (reverse + 1)]
    return cores[rank::pool_size]  # alternating


def placement_env(cores: list[int] | None, accelerator: str | None) -> dict[str, str]:
    """Environment a worker gets for its cores and accelerator (Parsl's variables)."""
    env: dict[str, str] = {}
    if cores is not None:
        proc_list = ",".join(map(str, cores))
        env["TASKSCOPE_WORKER_CORES"] = proc_list  # the worker pins itself to these
        env["OMP_NUM_THREADS"] = str(len(cores))
        env["GOMP_CPU_AFFINITY"] = proc_list
        env["KMP_AFFINITY"] = f"explicit,proclist=[{proc_list}]"
    if accelerator is not None:
        env["CUDA_VISIBLE_DEVICES"] = accelerator
        env["ROCR_VISIBLE_DEVICES"] = accelerator
        env["ZE_AFFINITY_MASK"] = accelerator
        env["ZE_ENABLE_PCI_ID_DEVICE_ORDER"] = "1"
    return env


def accelerator_names(available_accelerators: object) -> list[str]:
    """Parsl's forms: a count (names "0", "1", ...) or a sequence of names."""
    if isinstance(available_accelerators, bool):
        raise TypeError(
            "HighThroughputExecutor(available_accelerators=...) must be an int or names"
        )
    if isinstance(available_accelerators, int):
        if available_accelerators < 0:
            raise ValueError("HighThroughputExecutor(available_accelerators=...) must be >= 0")
        return [str(i) for i in range(available_accelerators)]
    if isinstance(available_accelerators, str):
        return [available_accelerators]
    try:
        return [str(a) for a in available_accelerators]  # type: ignore[attr-defined]
    except TypeError:
        raise TypeError(
            "HighThroughputExecutor(available_accelerators=...) must be an int or a list of "
            f"names, got {type(available_accelerators).__name__}"
        ) from None
