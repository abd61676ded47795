"""The public API: loading, decorators, labels, Config validation, imports Parsl users write."""

from __future__ import annotations

import pytest

import taskscope
from taskscope import File, bash_app, join_app, python_app
from taskscope.config import Config
from taskscope.errors import ConfigurationError, ExecutorLabelError, NoDataFlowKernelError
from taskscope.executors import HighThroughputExecutor, ThreadPoolExecutor


@python_app
def double(x):
    return 2 * x


def test_calling_an_app_before_load_says_to_load_a_config():
    taskscope.clear()
    with pytest.raises(NoDataFlowKernelError, match=r"^Must first load config$"):
        double(1)
    with pytest.raises(NoDataFlowKernelError):
        taskscope.dfk()


def test_parsl_style_imports_work():
    from taskscope.addresses import address_by_hostname, address_by_route
    from taskscope.app.app import bash_app as b
    from taskscope.app.app import join_app as j
    from taskscope.app.app import python_app as p
    from taskscope.data_provider.files import File as F
    from taskscope.launchers import SingleNodeLauncher
    from taskscope.providers import LocalProvider

    assert (p, b, j, F) == (python_app, bash_app, join_app, File)
    assert isinstance(address_by_hostname(), str) and address_by_hostname()
    assert address_by_route().count(".") == 3
    HighThroughputExecutor(
        address=address_by_hostname(),
        provider=LocalProvider(init_blocks=1, max_blocks=1, launcher=SingleNodeLauncher()),
    )


def test_load_is_a_context_manager_and_cleanup_unloads(tmp_path):
    with taskscope.load(Config(executors=[ThreadPoolExecutor()], run_dir=str(tmp_path))) as dfk:
        assert taskscope.dfk() is dfk
        assert double(21).result() == 42
    with pytest.raises(NoDataFlowKernelError):
        taskscope.dfk()
    # A fresh load works after the previous run ended.
    with taskscope.load(Config(executors=[ThreadPoolExecutor()], run_dir=str(tmp_path))):
        assert double(1).result() == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000", "001"]


def test_loading_twice_is_refused(tmp_path):
    with (
        taskscope.load(Config(run_dir=str(tmp_path))),
        pytest.raises(ConfigurationError, match="already loaded"),
    ):
        taskscope.load(Config(run_dir=str(tmp_path)))


def test_unknown_executor_label_lists_the_known_ones(tmp_path):
    @python_app(executors=["gpu"])
    def on_gpu():
        return 1

    config = Config(
        executors=[ThreadPoolExecutor(label="cpu"), ThreadPoolExecutor(label="io")],
        run_dir=str(tmp_path),
    )
    with taskscope.load(config):
        with pytest.raises(ExecutorLabelError, match=r"'gpu'.*'cpu', 'io'"):
            on_gpu()
        # With a config loaded, the typo is caught at decoration time already.
        with pytest.raises(ExecutorLabelError, match="'cpu', 'io'"):
            python_app(executors=["cpuu"])(lambda: 1)


def test_apps_are_routed_by_label(tmp_path):
    import threading

    @python_app(executors=["io"])
    def thread_name():
        return threading.current_thread().name

    config = Config(
        executors=[
            ThreadPoolExecutor(label="cpu"),
            ThreadPoolExecutor(label="io", thread_name_prefix="io-pool"),
        ],
        run_dir=str(tmp_path),
    )
    with taskscope.load(config):
        fut = thread_name()
        assert fut.result().startswith("io-pool")
        assert fut.task_record.executor == "io"


@pytest.mark.parametrize(
    "kwargs, error, word",
    [
        ({"executors": ThreadPoolExecutor()}, TypeError, "executors"),
        ({"executors": []}, ValueError, "executors"),
        ({"executors": ["threads"]}, TypeError, "executors"),
        ({"executors": [ThreadPoolExecutor(), ThreadPoolExecutor()]}, ValueError, "twice"),
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": "2"}, TypeError, "retries"),
        ({"app_cache": "yes"}, TypeError, "app_cache"),
        ({"run_dir": ""}, TypeError, "run_dir"),
        ({"strategy": "fastest"}, ValueError, "strategy"),
        ({"monitoring": object()}, TypeError, "monitoring"),
        ({"checkpoint_mode": "sometimes"}, ConfigurationError, "checkpoint_mode"),
    ],
)
def test_config_rejects_bad_arguments_naming_them(kwargs, error, word):
    with pytest.raises(error, match=word):
        Config(**kwargs)


@pytest.mark.parametrize(
    "make, word",
    [
        (lambda: ThreadPoolExecutor(max_threads=0), "max_threads"),
        (lambda: ThreadPoolExecutor(label=""), "label"),
        (lambda: HighThroughputExecutor(cores_per_worker=0), "cores_per_worker"),
        (lambda: HighThroughputExecutor(max_workers_per_node=0), "max_workers_per_node"),
        (lambda: HighThroughputExecutor(max_workers=2, max_workers_per_node=3), "max_workers"),
        (lambda: HighThroughputExecutor(provider="local"), "provider"),
    ],
)
def test_executors_reject_bad_arguments_naming_them(make, word):
    with pytest.raises((TypeError, ValueError), match=word):
        make()


def test_htex_worker_count_follows_parsl_arguments():
    from taskscope.providers import LocalProvider

    assert HighThroughputExecutor(max_workers=2).worker_count == 2
    assert (
        HighThroughputExecutor(
            max_workers_per_node=1, provider=LocalProvider(init_blocks=2, max_blocks=3)
        ).worker_count
        == 2
    )
    with pytest.raises(ValueError, match="min_blocks"):
        LocalProvider(min_blocks=3, max_blocks=1)


def test_decorators_validate_their_arguments():
    with pytest.raises(TypeError, match="executors"):
        python_app(executors=3)(lambda: 1)
    with pytest.raises(TypeError, match="cache"):
        python_app(cache="yes")(lambda: 1)


def test_file_gives_a_local_path():
    f = File("file:///tmp/data/x.txt")
    assert (f.scheme, f.filepath, f.filename, str(f)) == (
        "file",
        "/tmp/data/x.txt",
        "x.txt",
        "/tmp/data/x.txt",
    )
    g = File("relative/y.csv")
    assert g.filepath == "relative/y.csv" and g.scheme == "file"
    with pytest.raises(ValueError, match="https"):
        _ = File("https://example.org/z").filepath
    with pytest.raises(TypeError):
        File(3)
