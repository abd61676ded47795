"""The memoizer plugin API: Config(memoizer=), BasicMemoizer, id_for_memo."""

from __future__ import annotations

import uuid

import pytest

from taskscope import python_app
from taskscope.dataflow.memoization import BasicMemoizer, id_for_memo
from taskscope.dataflow.states import States
from taskscope.errors import ConfigurationError


@python_app(cache=True)
def fresh_id(x):
    return str(uuid.uuid4())


@python_app(cache=True)
def raises(x):
    raise RuntimeError(f"failure {x}")


@python_app(cache=True)
def echo(x, inputs=()):
    return x


class Opaque:
    """A type with no id_for_memo implementation."""


class Keyed:
    def __init__(self, key: str, noise: int) -> None:
        self.key, self.noise = key, noise


@id_for_memo.register(Keyed)
def _keyed_id(obj: Keyed, output_ref: bool = False) -> bytes:
    return obj.key.encode()  # noise does not matter for memoization


class NotSeven(BasicMemoizer):
    """A plugin that never reuses calls whose first argument is 7."""

    def check_memo(self, task):
        if task["args"][0] == 7:
            return None
        return super().check_memo(task)


def test_equal_calls_reuse_the_first_result(load_config):
    dfk = load_config(memoizer=BasicMemoizer())
    first = fresh_id(1).result()
    again = fresh_id(1)
    assert again.result() == first
    assert again.task_record.status is States.memo_done and again.task_record.from_memo
    assert fresh_id(2).result() != first
    assert dfk.task_state_counts[States.memo_done] == 1


def test_a_plugin_decides_what_is_reused(load_config):
    load_config(memoizer=NotSeven())
    assert fresh_id(0).result() == fresh_id(0).result()
    assert fresh_id(7).result() != fresh_id(7).result()


def test_exceptions_are_memoized_too(load_config):
    load_config()
    first = raises(1)
    first.exception()
    again = raises(1)
    assert again.exception() is first.exception()
    assert again.task_record.from_memo and again.task_record.status is States.failed


def test_memoize_false_turns_reuse_off(load_config):
    load_config(memoizer=BasicMemoizer(memoize=False))
    assert fresh_id(1).result() != fresh_id(1).result()


def test_an_argument_without_id_for_memo_fails_the_call(load_config):
    load_config()
    exc = echo(Opaque()).exception(timeout=30)
    assert isinstance(exc, ValueError) and "Opaque" in str(exc)
    dep = echo(1)
    exc = echo(Opaque(), inputs=[dep]).exception(timeout=30)
    assert isinstance(exc, ValueError)


def test_a_registered_id_for_memo_decides_sameness(load_config):
    load_config()
    first = echo(Keyed("k", 1))
    first.result()
    again = echo(Keyed("k", 2))
    assert again.result().noise == 1  # the first call's result: same key, so reused
    assert echo(Keyed("other", 1)).result().key == "other"


def test_id_for_memo_tells_dict_order_apart_from_content():
    assert id_for_memo({"a": 1, "b": 2}) == id_for_memo({"b": 2, "a": 1})
    assert id_for_memo([1, 2]) != id_for_memo((1, 2))
    assert id_for_memo(1) != id_for_memo(1.0) != id_for_memo(True)
    with pytest.raises(ValueError, match="unknown type"):
        id_for_memo(Opaque())


@pytest.mark.parametrize(
    ("options", "word"),
    [
        ({"checkpoint_mode": "sometimes"}, "checkpoint_mode must be one of"),
        ({"checkpoint_mode": "periodic"}, "Checkpoint period must be specified"),
        ({"checkpoint_mode": "periodic", "checkpoint_period": "soon"}, "HH:MM:SS"),
    ],
)
def test_bad_checkpoint_options_are_refused_with_a_reason(options, word):
    with pytest.raises(ConfigurationError, match=word):
        BasicMemoizer(**options)


def _load_again(tmp_path, memoizer):
    import taskscope
    from taskscope.config import Config
    from taskscope.executors import ThreadPoolExecutor

    return taskscope.load(
        Config(executors=[ThreadPoolExecutor()], run_dir=str(tmp_path / "runs"), memoizer=memoizer)
    )


def test_a_task_exit_checkpoint_carries_results_to_a_later_run(tmp_path):
    import os

    from taskscope.utils import get_all_checkpoints, get_last_checkpoint

    with _load_again(tmp_path, BasicMemoizer(checkpoint_mode="task_exit")) as dfk:
        first = fresh_id(1).result()
        failed = raises(1).exception()
        checkpoint = os.path.join(dfk.run_dir, "checkpoint")
        # task_exit: written as the task ends, before cleanup
        assert os.path.getsize(os.path.join(checkpoint, "tasks.pkl")) > 0
    with _load_again(tmp_path, BasicMemoizer(checkpoint_files=[checkpoint])):
        again = fresh_id(1)
        assert again.result() == first and again.task_record.status is States.memo_done
        # failures are not checkpointed: it runs again and fails afresh
        assert raises(1).exception() is not failed
    assert get_all_checkpoints(str(tmp_path / "runs")) == [os.path.abspath(checkpoint)]
    assert get_last_checkpoint(str(tmp_path / "runs")) == [os.path.abspath(checkpoint)]
    # a mode without checkpoint_files loads every earlier run's checkpoint
    with _load_again(tmp_path, BasicMemoizer(checkpoint_mode="dfk_exit")):
        assert fresh_id(1).result() == first


def test_manual_and_dfk_exit_checkpoints_are_written_when_asked(tmp_path):
    import os

    memoizer = BasicMemoizer(checkpoint_mode="manual")
    with _load_again(tmp_path, memoizer) as dfk:
        fresh_id(5).result()
        path = os.path.join(dfk.run_dir, "checkpoint", "tasks.pkl")
        assert not os.path.exists(path)
        memoizer.checkpoint()
        assert os.path.exists(path)
    with _load_again(tmp_path, BasicMemoizer(checkpoint_mode="dfk_exit")) as dfk:
        fresh_id(6).result()
        path = os.path.join(dfk.run_dir, "checkpoint", "tasks.pkl")
        assert not os.path.exists(path)
    assert os.path.exists(path)  # written at cleanup


def test_periodic_checkpoints_are_written_while_the_run_goes_on(tmp_path):
    import os
    import time

    with _load_again(
        tmp_path, BasicMemoizer(checkpoint_mode="periodic", checkpoint_period="00:00:01")
    ) as dfk:
        fresh_id(9).result()
        path = os.path.join(dfk.run_dir, "checkpoint", "tasks.pkl")
        deadline = time.time() + 30
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.1)
        assert os.path.exists(path)


def test_a_missing_checkpoint_is_bad_checkpoint(tmp_path):
    from taskscope.dataflow.errors import BadCheckpoint

    with pytest.raises(BadCheckpoint, match="not found"):
        _load_again(tmp_path, BasicMemoizer(checkpoint_files=[str(tmp_path / "nowhere")]))


def test_config_checkpoint_options_build_a_basic_memoizer():
    from taskscope.config import Config

    config = Config(checkpoint_mode="task_exit")
    assert isinstance(config.memoizer, BasicMemoizer)
    assert config.memoizer.checkpoint_mode == "task_exit"
    with pytest.raises(ConfigurationError, match="not to Config as well"):
        Config(checkpoint_mode="task_exit", memoizer=BasicMemoizer())


def test_config_memoizer_must_be_a_memoizer():
    from taskscope.config import Config

    with pytest.raises(TypeError, match="Memoizer"):
        Config(memoizer=object())
