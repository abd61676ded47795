"""The DFK side of the monitoring contract, checked with a hub that records what it gets."""

from __future__ import annotations

import os
import threading

import pytest

import taskscope
from taskscope import join_app, python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor
from taskscope.monitoring import messages as m

# Calls of wrapped functions in this process (thread executor); worker processes have their own.
WRAPPED_CALLS: list[tuple[int, int]] = []


class Wrapped:
    """Stands in for the monitoring wrapper: picklable, records that the try ran through it."""

    def __init__(self, func, task_id, try_id):
        self.func, self.task_id, self.try_id = func, task_id, try_id

    def __call__(self, *args, **kwargs):
        WRAPPED_CALLS.append((self.task_id, self.try_id))
        return self.func(*args, **kwargs)


class RecordingHub:
    workflow_name = "contract-test"
    workflow_version = None

    def __init__(self):
        self.messages: list = []
        self.lock = threading.Lock()
        self.started = None
        self.closed = 0

    def start(self, run_id, run_dir):
        self.started = (run_id, run_dir)

    def send(self, message):
        with self.lock:
            self.messages.append(message)

    def wrap(self, func, *, run_id, task_id, try_id, executor_label):
        assert run_id == self.started[0]
        return Wrapped(func, task_id, try_id)

    def close(self):
        self.closed += 1

    def of(self, kind, task_id=None):
        return [
            x
            for x in self.messages
            if isinstance(x, kind) and (task_id is None or x.task_id == task_id)
        ]

    def states(self, task_id):
        # A transition travels alone (TaskStatus) or with the row it came with (TaskInfo,
        # TryInfo: see taskscope.store.messages).
        kinds = (m.TaskStatus, m.TaskInfo, m.TryInfo)
        return [(x.state, x.try_id) for x in self.of(kinds, task_id) if x.state is not None]


@python_app
def inc(x):
    return x + 1


@python_app
def flaky(counter_dir):
    import os
    import uuid

    tries = len(os.listdir(counter_dir))
    open(os.path.join(counter_dir, uuid.uuid4().hex), "w").close()
    if tries == 0:
        raise KeyError("first try fails")
    return tries


@python_app
def boom():
    raise ValueError("boom")


@join_app
def joined(x):
    return inc(x)


def run_monitored(tmp_path, executor, body, retries=1):
    hub = RecordingHub()
    config = Config(
        executors=[executor], monitoring=hub, retries=retries, run_dir=str(tmp_path / "runinfo")
    )
    with taskscope.load(config) as dfk:
        body()
    return hub, dfk


@pytest.mark.parametrize(
    "make_executor",
    [
        lambda: ThreadPoolExecutor(label="threads"),
        lambda: HighThroughputExecutor(label="htex", max_workers_per_node=1),
    ],
    ids=["threads", "htex"],
)
def test_message_sequence_per_task(tmp_path, make_executor):
    calls = tmp_path / "calls"
    calls.mkdir()
    futures = {}
    memo = python_app(cache=True)(inc.func)

    def body():
        futures["retried"] = flaky(str(calls))
        futures["failed"] = boom()
        futures["dep_fail"] = inc(futures["failed"])
        futures["memo_first"] = memo(1)
        futures["memo_first"].result()
        futures["memo_hit"] = memo(1)
        futures["joined"] = joined(5)
        taskscope.wait_for_current_tasks()

    WRAPPED_CALLS.clear()
    hub, dfk = run_monitored(tmp_path, make_executor(), body)
    tid = {name: f.tid for name, f in futures.items()}

    assert hub.started == (dfk.run_id, str(tmp_path / "runinfo"))
    assert isinstance(hub.messages[0], m.WorkflowStart)
    assert hub.messages[0].workflow_name == "contract-test"
    assert hub.messages[0].run_id == dfk.run_id and hub.messages[0].executors
    assert isinstance(hub.messages[-1], m.WorkflowEnd)
    assert hub.messages[-1].status == "failed"
    assert hub.closed == 1

    assert hub.states(tid["retried"]) == [
        ("pending", 0),
        ("launched", 0),
        ("fail_retryable", 0),
        ("launched", 1),
        ("exec_done", 1),
    ]
    failure = hub.of(m.TryFailure, tid["retried"])
    assert [(f.try_id, f.exception_type) for f in failure] == [(0, "KeyError")]
    assert "first try fails" in failure[0].traceback
    tries = hub.of(m.TryInfo, tid["retried"])
    assert [(t.try_id, t.executor is not None, t.time_returned is not None) for t in tries] == [
        (0, True, False),
        (0, False, True),
        (1, True, False),
        (1, False, True),
    ]
    infos = hub.of(m.TaskInfo, tid["retried"])
    assert len(infos) == 2 and infos[0].time_returned is None
    assert infos[1].fail_count == 1 and infos[1].time_returned is not None

    assert hub.states(tid["failed"]) == [
        ("pending", 0),
        ("launched", 0),
        ("fail_retryable", 0),
        ("launched", 1),
        ("failed", 1),
    ]
    assert hub.states(tid["dep_fail"]) == [("pending", 0), ("dep_fail", 0)]
    assert hub.of(m.TaskInfo, tid["dep_fail"])[0].depends == [tid["failed"]]
    assert hub.states(tid["memo_hit"]) == [("pending", 0), ("memo_done", 0)]
    assert hub.of(m.TaskInfo, tid["memo_hit"])[-1].hashsum
    assert hub.states(tid["joined"]) == [
        ("pending", 0),
        ("launched", 0),
        ("joining", 0),
        ("exec_done", 0),
    ]
    # Join apps run in the workflow's process, so their wrapper call is always seen here.
    assert (tid["joined"], 0) in WRAPPED_CALLS
    if isinstance(dfk.executors.get("threads"), ThreadPoolExecutor):
        assert (tid["retried"], 0) in WRAPPED_CALLS and (tid["retried"], 1) in WRAPPED_CALLS


def test_run_status_completed_and_aborted(tmp_path):
    hub, _ = run_monitored(tmp_path, ThreadPoolExecutor(), lambda: inc(1).result())
    assert hub.messages[-1].status == "completed"
    assert hub.messages[-1].tasks_completed_count == 1

    def interrupted():
        inc(1).result()
        raise KeyboardInterrupt

    hub = RecordingHub()
    with (
        pytest.raises(KeyboardInterrupt),
        taskscope.load(Config(monitoring=hub, run_dir=str(tmp_path / "r2"))),
    ):
        interrupted()
    assert hub.messages[-1].status == "aborted" and hub.closed == 1


def test_htex_sends_block_and_node_messages(tmp_path):
    hub, _ = run_monitored(
        tmp_path, HighThroughputExecutor(label="htex", max_workers=2), lambda: inc(1).result()
    )
    blocks = hub.of(m.BlockInfo)
    assert [b.status for b in blocks] == ["PENDING", "RUNNING", "SCALED_IN"]
    nodes = hub.of(m.NodeInfo)
    assert [(n.active, n.worker_count) for n in nodes] == [(True, 2), (False, 2)]
    assert nodes[0].hostname and nodes[0].block_id == blocks[0].block_id


def test_default_workflow_name_is_the_script_name(tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", [os.path.join("somewhere", "my_flow.py")])
    hub = RecordingHub()
    hub.workflow_name = None
    with taskscope.load(Config(monitoring=hub, run_dir=str(tmp_path))):
        pass
    assert hub.messages[0].workflow_name == "my_flow.py"
