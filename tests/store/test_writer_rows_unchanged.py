"""Every row the writer writes, pinned: a realistic message stream, shuffled, duplicated and cut
at random, must leave exactly the tables that the writer wrote before its hot path was made
cheaper (the writer of commit 7faf6e5).

The expected figures are each table's row count and a hash of its rows (sorted, as Python
values: text, integers and the exact floats); they were taken by running this test's stream
through that writer. A change that alters a single value of a single row fails here, and the
failure names the tables that differ. A change that means to alter rows (a new column, a new
rule) must say so and take new figures with ``TASKSCOPE_PRINT_ROW_HASHES=1``.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3

from taskscope.store.database import open_for_writing
from taskscope.store.messages import (
    BlockInfo,
    Message,
    NodeInfo,
    ResourceSample,
    TaskInfo,
    TaskStatus,
    TryFailure,
    TryInfo,
    TryRun,
    WorkflowEnd,
    WorkflowStart,
    decode_batch,
    encode_batch,
)
from taskscope.store.writer import DatabaseWriter

T0 = 1_700_000_057.123_456_7  # a few seconds before a minute boundary
RUNS = ("5e3c1d2a-0000-4000-8000-00000000000a", "5e3c1d2a-0000-4000-8000-00000000000b")

# Each table: (rows, the first 20 hex digits of the sha256 of its sorted rows' reprs), as the
# writer of 7faf6e5 wrote them.
EXPECTED: dict[str, tuple[int, str]] = {
    "block": (6, "8bb7ef4399f0abb10f49"),
    "node": (4, "5bc2877064bec84495de"),
    "resource": (449, "419c83c40f197e9837a8"),
    "status": (1903, "f8d68a363fd93a6e38d3"),
    "task": (310, "a15bf4d5987837e435cb"),
    "taskscope_app_edge": (32, "036b8eb61578311a42d7"),
    "taskscope_app_run_total": (7, "1db50ef7103995376abd"),
    "taskscope_app_total": (69, "0684d1cbf73de9425098"),
    "taskscope_dependent": (388, "a33f0fa84e77a8c82eea"),
    "taskscope_occupancy": (493, "e7991f69136b70166f60"),
    "taskscope_occupancy_minute": (85, "7d49177ae1dd73eb1541"),
    "taskscope_occupancy_10min": (61, "bc5c025993f099785e7d"),  # the writer of 0dd5f40
    "taskscope_place_tries": (13, "d0742ab10d1165ab35f8"),  # analysis totals: new tables,
    "taskscope_run_key": (2, "00cccc707f47ac1b9795"),  # kept by triggers (analysis_rollup.py)
    "taskscope_task_depends": (212, "f105cefa512165171fc4"),
    "taskscope_try_time": (383, "e0f4260802c97aa3b0b3"),
    "taskscope_run": (2, "3b2891e8e42e53f58b84"),
    "taskscope_run_extra": (2, "53384a8d5bcfd7de9de8"),
    "taskscope_state_flow": (1274, "cc981858bbf34541b72c"),
    "taskscope_state_flow_minute": (103, "63d49f51b0164e0a0238"),
    "taskscope_task_request": (106, "f97e35471603481459a0"),
    # With each task's duration since this branch; its other columns are pinned below.
    "taskscope_task_state": (310, "1a16d646d3f043fa4532"),
    "taskscope_try_failure": (143, "e2274f5ef1c4c88a39ca"),
    "taskscope_try_run": (383, "32cee57eeb91dd4ced16"),
    "try": (383, "8ce633cbef8f04364f06"),
    "workflow": (2, "0ef885e78731a34b541c"),
}


def _start(run_id: str, t: float) -> WorkflowStart:
    return WorkflowStart(
        run_id, "wf", "1", t, "host", "user", "/run", "3.12.0", "0.1.0", ["htex"], 4242, 2.0,
        launch_dir="/launch",
    )  # fmt: skip


def _sample(run_id: str, task_id: int, try_id: int, t: float, rng: random.Random) -> ResourceSample:
    return ResourceSample(
        run_id, task_id, try_id, t, 1.0, 1000 + task_id, rng.random(), rng.randint(0, 3),
        rng.random(), rng.random() / 10, 1e8 + rng.random(), 3e7, 0.0, rng.random() * 100,
        "running", str(try_id), 1.0, 2.0,
    )  # fmt: skip


def _task(rng: random.Random, run_id: str, i: int, t: float) -> list[tuple[float, Message]]:
    """One task's messages, each with the time it reaches the writer (kernel and worker
    messages travel apart, so they overtake each other)."""
    out: list[tuple[float, Message]] = []
    kernel_delay = rng.choice([0.01, 0.02, 0.05, 1.5])  # now and then the kernel lags
    worker_delay = rng.choice([0.01, 0.03, 0.2])

    def kernel(at: float, m: Message) -> None:
        out.append((at + kernel_delay, m))

    def worker(at: float, m: Message) -> None:
        out.append((at + worker_delay, m))

    kind = rng.choices(
        ["plain", "retried", "failed", "join", "memo", "dep_fail"], [8, 3, 1, 1, 1, 1]
    )[0]
    app = {"join": "gather", "memo": "f"}.get(kind, rng.choice(["f", "g", "h"]))
    depends = sorted(rng.sample(range(i), k=min(i, rng.randint(0, 2))))
    request = '{"cores": 1}' if rng.random() < 0.3 else None
    kernel(t, TaskInfo(
        run_id, i, app, kind == "memo", "htex", t, depends, hashsum=f"h{i}",
        state="pending", timestamp=t, resource_specification=request,
        walltime=30.0 if request else None,
    ))  # fmt: skip
    if kind in ("memo", "dep_fail"):
        end = t + rng.random() / 100
        kernel(end, TaskInfo(
            run_id, i, app, kind == "memo", "htex", t, depends, time_returned=end,
            state=f"{kind}_done" if kind == "memo" else "dep_fail", timestamp=end,
        ))  # fmt: skip
        return out
    tries = {"retried": 2, "failed": 3}.get(kind, 1)
    clock = first_launch = t
    for k in range(tries):
        launched = clock + rng.random() / 50
        if k == 0:
            first_launch = launched
        elif rng.random() < 0.5:  # a retry stamped in the same microsecond as try 0
            launched = first_launch + 1e-8
        if kind == "join":
            joins = ",".join(str(d) for d in sorted(rng.sample(range(max(i, 1)), k=min(i, 3))))
            kernel(launched, TryInfo(
                run_id, i, k, executor="_taskscope_internal", time_launched=launched,
                state="launched", timestamp=launched,
            ))  # fmt: skip
            kernel(launched + 0.001, TryInfo(
                run_id, i, k, joins=joins or None, state="joining", timestamp=launched + 0.001
            ))  # fmt: skip
        else:
            kernel(launched, TryInfo(
                run_id, i, k, executor="htex", block_id="0", time_launched=launched,
                state="launched", timestamp=launched,
            ))  # fmt: skip
        running = launched + rng.random() / 100
        length = rng.choice([1e-4, rng.random() / 10, rng.random() * 3])  # a few cross seconds
        ended = running + length
        host, worker_id = f"node{i % 3}", rng.choice([None, f"node{i % 3}:{100 + k}"])
        sample = _sample(run_id, i, k, ended, rng)
        if rng.random() < 0.3:  # a long try: its start is sent alone first, then again
            worker(running, TryRun(run_id, i, k, host, "0", running, worker=worker_id))
        worker(ended, TryRun(run_id, i, k, host, "0", running, ended, sample, worker_id))
        if rng.random() < 0.2:  # a periodic sample, sent on its own
            worker(running + length / 2, _sample(run_id, i, k, running + length / 2, rng))
        if rng.random() < 0.15:  # the fine-grained form of the same states
            worker(ended, TaskStatus(run_id, i, k, "running", running))
            worker(ended, TaskStatus(run_id, i, k, "running_ended", ended))
        returned = ended + rng.random() / 100
        last = k == tries - 1
        if kind == "failed" or not last:
            state = "failed" if last else "fail_retryable"
            kernel(returned, TryFailure(run_id, i, k, "ValueError", f"bad {i}", "tb", None))
            kernel(returned, TryInfo(
                run_id, i, k, time_returned=returned, fail_history="ValueError",
                state=state, timestamp=returned,
            ))  # fmt: skip
        else:
            kernel(returned, TryInfo(
                run_id, i, k, time_returned=returned, state="exec_done", timestamp=returned
            ))  # fmt: skip
        clock = returned
    kernel(clock + 1e-5, TaskInfo(
        run_id, i, app, False, "htex", t, depends, time_returned=clock, fail_count=tries - 1,
        fail_cost=float(tries - 1),
    ))  # fmt: skip
    return out


def _stream(seed: int = 10) -> list[Message]:
    rng = random.Random(seed)
    timed: list[tuple[float, Message]] = []
    for r, run_id in enumerate(RUNS):
        start = T0 + 200 * r
        timed.append((start - 1, _start(run_id, start)))
        timed.append(
            (start, NodeInfo(run_id, "node0", "u0", "0", 2, 8_000_000, True, 2, "3.12", start))
        )
        for status in ("pending", "running"):  # two changes seen in one poll: one microsecond
            timed.append((start, BlockInfo(run_id, "htex", "0", status, start + 0.5, "job0")))
        t = start + 0.1
        for i in range(250 if r == 0 else 60):
            timed.extend(_task(rng, run_id, i, t))
            t += rng.random() * 0.6
        timed.append((t + 5, BlockInfo(run_id, "htex", "0", "completed", t + 4)))
        timed.append(
            (t + 5, NodeInfo(run_id, "node0", "u0", "0", 2, 8_000_000, False, 2, "3.12", t + 4))
        )
        timed.append((t + 6, WorkflowEnd(run_id, t + 6, "completed", 200, 20)))
    # One task's first row reaches the writer long after its worker's report: the report
    # waits, then is counted with its app unknown.
    late = next(n for n, (_, m) in enumerate(timed) if isinstance(m, TaskInfo) and m.task_id == 7)
    timed[late] = (timed[-1][0] + 1, timed[late][1])
    timed.sort(key=lambda item: item[0])
    messages = [m for _, m in timed]
    # Replays: a few messages arrive a second time, some at once and some much later.
    for _ in range(len(messages) // 20):
        n = rng.randrange(len(messages))
        messages.insert(min(len(messages), n + rng.choice([1, 5, 400])), messages[n])
    return messages


def _write(path, messages: list[Message], seed: int = 11) -> None:
    """Write in batches of random size, commits at random, one writer restart half-way
    (the second writer takes over runs it has not seen, as after a crash)."""
    rng = random.Random(seed)
    writer = DatabaseWriter(open_for_writing(path))
    at, restarted = 0, False
    while at < len(messages):
        size = rng.choice([1, 3, 10, 40, 120])
        writer.write(decode_batch(encode_batch(messages[at : at + size])))
        at += size
        if rng.random() < 0.3:
            writer.heartbeat(RUNS[0], T0 + at / 10)
            writer.commit()
        if not restarted and at > len(messages) // 2:
            writer.note_dropped(RUNS[1], 2)
            writer.close(analyze=False)
            writer, restarted = DatabaseWriter(open_for_writing(path)), True
    writer.close(analyze=False)


def _figure(conn: sqlite3.Connection, sql: str) -> tuple[int, str]:
    rows = sorted(repr(row) for row in conn.execute(sql))
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()[:20]


def _table_figures(path) -> dict[str, tuple[int, str]]:
    conn = sqlite3.connect(path)
    tables = [
        name
        for (name,) in conn.execute(
            # taskscope_schema is the file's (it holds when the file was made), not the writer's.
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'taskscope_schema' ORDER BY name"
        )
    ]
    figures = {table: _figure(conn, f'SELECT * FROM "{table}"') for table in tables}
    conn.close()
    return figures


def test_the_stream_reaches_every_table_the_writer_keeps(tmp_path):
    path = tmp_path / "m.db"
    _write(path, _stream())
    empty = {table for table, (n, _) in _table_figures(path).items() if n == 0}
    assert empty == set(), "the stream should exercise every table"


def test_every_row_is_what_the_writer_wrote_before(tmp_path):
    path = tmp_path / "m.db"
    _write(path, _stream())
    figures = _table_figures(path)
    if os.environ.get("TASKSCOPE_PRINT_ROW_HASHES"):
        for table, figure in figures.items():
            print(f'    "{table}": {figure!r},'.replace("'", '"'))
    differ = sorted(
        t for t in figures.keys() | EXPECTED.keys() if figures.get(t) != EXPECTED.get(t)
    )
    assert differ == [], {t: (EXPECTED.get(t), figures.get(t)) for t in differ}


def test_task_states_are_as_before_with_the_duration_of_each_ended_task(tmp_path):
    """The duration column added to taskscope_task_state changed its hash: every other column
    is still what the writer of 7faf6e5 wrote, and the duration of every task that returned
    (and of no other) is its task row's invoked -> returned, as readers compute it."""
    path = tmp_path / "m.db"
    _write(path, _stream())
    conn = sqlite3.connect(path)
    try:
        assert _figure(
            conn, "SELECT run_id, task_id, try_id, state, timestamp FROM taskscope_task_state"
        ) == (310, "e60def0d4fc54d66731b")
        pairs = conn.execute(
            "SELECT z.duration, (julianday(t.task_time_returned) - "
            "julianday(t.task_time_invoked)) * 86400.0 FROM taskscope_task_state z "
            "JOIN task t ON t.task_id = z.task_id AND t.run_id = z.run_id"
        ).fetchall()
    finally:
        conn.close()
    assert len(pairs) == 310
    assert all(stored == computed for stored, computed in pairs)
    assert sum(stored is not None for stored, _ in pairs) > 100
