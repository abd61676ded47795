"""The run's secret reaches the writer and the workers without being shown to others: never
on a command line, in an environment, or in a file of the run, the database or its folder."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psutil
import pytest

import taskscope
from taskscope import python_app
from taskscope.config import Config
from taskscope.executors import HighThroughputExecutor
from taskscope.monitoring import MonitoringHub

pytestmark = pytest.mark.attack


@python_app
def slow_square(x: int) -> int:
    time.sleep(0.3)
    return x * x


def visible_places(secret: str) -> list[str]:
    """Where another process could read the secret: command lines and environments of this
    process tree (environments only to the same user, but they leak into core dumps, logs,
    `ps e`)."""
    found = []
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            if any(secret in part for part in proc.cmdline()):
                found.append(f"command line of {proc.pid}")
            if any(secret in value for value in proc.environ().values()):
                found.append(f"environment of {proc.pid}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def files_holding(folder: Path, secret: str) -> list[Path]:
    needles = (secret.encode(), bytes.fromhex(secret))
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


def test_the_secret_is_on_no_command_line_environment_or_file(tmp_path: Path):
    db = tmp_path / "db" / "monitoring.db"
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=0.1)
    config = Config(
        executors=[HighThroughputExecutor(label="htex", max_workers_per_node=2)],
        monitoring=hub,
        run_dir=str(tmp_path / "runinfo"),
    )
    with taskscope.load(config):
        futures = [slow_square(i) for i in range(6)]
        secret = hub._target.secret
        assert len(secret) == 64
        time.sleep(0.5)  # the workers are running tasks, and hold the secret
        assert visible_places(secret) == []
        assert [f.result() for f in futures] == [i * i for i in range(6)]
    # The workers' reports were accepted (they sealed them with the secret) ...
    conn = sqlite3.connect(db)
    try:
        assert conn.execute(
            "SELECT count(*) FROM try WHERE task_try_time_running IS NOT NULL"
        ).fetchone() == (6,)
        assert conn.execute("SELECT messages_dropped FROM taskscope_run").fetchone() == (0,)
    finally:
        conn.close()
    # ... and nothing on disk holds it.
    assert files_holding(tmp_path, secret) == []


def test_each_run_has_its_own_secret(tmp_path: Path):
    secrets = []
    for index in range(2):
        hub = MonitoringHub(logging_endpoint=f"sqlite:///{tmp_path}/monitoring.db")
        config = Config(
            executors=[HighThroughputExecutor(label="htex", max_workers_per_node=1)],
            monitoring=hub,
            run_dir=str(tmp_path / f"runinfo{index}"),
        )
        with taskscope.load(config):
            assert slow_square(3).result() == 9
            secrets.append(hub._target.secret)
    assert secrets[0] != secrets[1]


def test_the_hub_target_never_shows_its_secret():
    from taskscope.monitoring.auth import new_secret
    from taskscope.monitoring.wrapper import HubTarget, MonitoredCall

    secret = new_secret()
    target = HubTarget("run", "127.0.0.1", 5, "tok", -1, False, 1.0, secret)
    shown = [
        repr(target),
        str(target),
        repr(MonitoredCall(print, target, 1, 0)),
        repr(list(target.__rich_repr__())),
    ]
    assert not any(secret in text for text in shown), shown
    assert "run" in repr(target)
