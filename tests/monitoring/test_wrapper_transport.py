"""What a monitored task costs on the executor's pipe: the hub target travels once per worker."""

from __future__ import annotations

import pickle

from taskscope.executors.high_throughput.serialize import FunctionRegistry, load_call, pack_call
from taskscope.monitoring.wrapper import HubTarget, MonitoredCall


def double(x):
    return 2 * x


def _target() -> HubTarget:
    return HubTarget(
        run_id="5f0c9a8e-0000-4000-8000-000000000001",
        address="127.0.0.1",
        port=55055,
        token="0123456789abcdef",
        hub_pid=-1,
        resource_monitoring_enabled=False,
        resource_monitoring_interval=1.0,
    )


def test_a_monitored_call_carries_keys_not_the_hub_target():
    registry = FunctionRegistry()
    target = _target()
    first, keys_first = pack_call(MonitoredCall(double, target, 1, 0), (21,), {}, registry)
    second, keys_second = pack_call(MonitoredCall(double, target, 2, 0), (21,), {}, registry)
    # The run id, address and token are in the blobs sent once per worker, not in each call.
    for payload in (first, second):
        assert target.run_id.encode() not in payload
        assert target.token.encode() not in payload
        assert len(payload) < 64
    assert set(keys_first) == set(keys_second)
    # A worker that received the blobs once rebuilds both calls.
    functions = {key: pickle.loads(registry.blob(key)) for key in keys_first}
    func, args, kwargs = load_call(second, functions)
    assert isinstance(func, MonitoredCall)
    assert (func.task_id, func.try_id, func.target.port, func.target.run_id) == (
        2,
        0,
        55055,
        target.run_id,
    )
    assert func.func(*args, **kwargs) == 42


def test_a_monitored_call_still_pickles_on_its_own():
    # Executors other than HTEX (a process pool, Dask) pickle the wrapper with plain pickle.
    call = pickle.loads(pickle.dumps(MonitoredCall(double, _target(), 7, 1)))
    assert (call.task_id, call.try_id, call.target.address) == (7, 1, "127.0.0.1")
    assert call.func(4) == 8
