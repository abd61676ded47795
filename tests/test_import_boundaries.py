"""The layer table's import rules, checked on what Python really loads.

The read side (dashboard, store, the CLI's read commands) must run on a machine with only a
database: it loads no capture-side module, no dataflow kernel, no executor and no ZeroMQ. The
writer child process loads the store and the writer side of monitoring, not the workflow engine.
Each check runs in a fresh interpreter, because this test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Never loaded by the read side. ``taskscope.monitoring.query`` is the one re-export users may
# import by its Parsl name; it is not on the read side's own path.
CAPTURE_AND_KERNEL = (
    "taskscope.monitoring",
    "taskscope.dataflow",
    "taskscope.executors",
    "taskscope.app",
    "taskscope.cluster",
    "taskscope.config",
    "taskscope.providers",
    "zmq",
    "dask",
    "distributed",
)
# The writer child needs ZeroMQ and the writer side of monitoring, nothing of the kernel.
KERNEL_ONLY = (
    "taskscope.dataflow",
    "taskscope.executors",
    "taskscope.app",
    "taskscope.cluster",
    "taskscope.config",
    "taskscope.monitoring.monitoring",
    "taskscope.monitoring.wrapper",
    "taskscope.monitoring.sampler",
    "taskscope.monitoring.sender",
    "dask",
    "cloudpickle",
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _modules_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[-1])


def _offenders(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)]


@pytest.mark.parametrize(
    "code",
    [
        "import taskscope.visualize.app",
        "import taskscope.visualize.cli",
        "import taskscope.cli",
        "import taskscope.store.query, taskscope.store.readonly, taskscope.store.graph_query",
    ],
)
def test_read_side_loads_no_capture_kernel_or_zmq(code: str) -> None:
    modules = _modules_after(code)
    assert "taskscope.store" in modules  # the check is not vacuous
    assert _offenders(modules, CAPTURE_AND_KERNEL) == []


def test_dashboard_app_builds_without_the_capture_side(tmp_path: Path) -> None:
    # Building the app (templates, routes) must not pull anything in lazily either.
    fixture = ROOT / "tests" / "fixtures" / "parsl-sample-small.db"
    modules = _modules_after(
        f"from taskscope.visualize.app import create_app\ncreate_app({str(fixture)!r})"
    )
    assert _offenders(modules, CAPTURE_AND_KERNEL) == []


def test_package_root_keeps_parsl_names_lazily() -> None:
    modules = _modules_after("import taskscope")
    assert _offenders(modules, CAPTURE_AND_KERNEL) == []
    check = (
        "import taskscope\n"
        "from taskscope import *\n"
        "names = [python_app, bash_app, join_app, Config, File, States, DataFlowKernel,\n"
        "         load, dfk, clear, wait_for_current_tasks, set_stream_logger, AUTO_LOGNAME]\n"
        "from taskscope.dataflow.dflow import DataFlowKernelLoader\n"
        "assert taskscope.load == DataFlowKernelLoader.load\n"
        "assert taskscope.dataflow.dflow.DataFlowKernel is DataFlowKernel\n"
        "try:\n"
        "    taskscope.no_such_name\n"
        "except AttributeError as e:\n"
        "    print('AttributeError', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", check],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "AttributeError module 'taskscope' has no attribute 'no_such_name'" in out.stdout


def test_writer_child_starts_without_the_kernel(tmp_path: Path, monkeypatch) -> None:
    """The real writer child of a real MonitoringHub: a ``sitecustomize`` on its PYTHONPATH
    writes the modules it loaded when it exits."""
    from taskscope.monitoring import MonitoringHub

    hook = tmp_path / "hook"
    hook.mkdir()
    dump = tmp_path / "modules.json"
    (hook / "sitecustomize.py").write_text(
        "import atexit, json, os, sys\n"
        "path = os.environ.get('TASKSCOPE_TEST_MODULES_DUMP')\n"
        "if path:\n"
        "    atexit.register(lambda: open(path, 'w').write(json.dumps(sorted(sys.modules))))\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(hook)]))
    monkeypatch.setenv("TASKSCOPE_TEST_MODULES_DUMP", str(dump))
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{tmp_path / 'monitoring.db'}")
    hub.start("boundary-test", str(tmp_path))
    hub.close()
    modules = json.loads(dump.read_text())
    assert "taskscope.store.writer" in modules and "zmq" in modules  # it is the writer
    assert _offenders(modules, KERNEL_ONLY) == []
