"""A workflow on a real Slurm cluster, through the Parsl-style SlurmProvider.

Needs a reachable slurmctld with a partition named "debug" whose node is this machine (as
`.ci/slurm/setup.sh` starts); skipped with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("dask_jobqueue", reason="needs the dask extra: pip install taskscope[dask]")

import taskscope
from taskscope import python_app
from taskscope.cluster import SlurmProvider
from taskscope.config import Config
from taskscope.executors.dask import DaskExecutor
from taskscope.monitoring import MonitoringHub


def _controller() -> tuple[str, int] | None:
    """slurmctld's address and port from slurm.conf (SlurmctldHost=name(addr), SlurmctldPort)."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf"))
    if not conf.exists():
        return None
    host, port = None, 6817
    for line in conf.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("SlurmctldHost", "ControlMachine") and host is None:
            name, _, addr = value.strip().partition("(")
            host = addr.rstrip(")") or name
        elif key.strip() == "SlurmctldPort":
            port = int(value.strip().split("-")[0])
    return (host, port) if host else None


def _slurm_problem() -> str | None:
    if shutil.which("sbatch") is None:
        return "Slurm is not installed (run .ci/slurm/setup.sh as root)"
    controller = _controller()
    if controller is None:
        return "Slurm is not configured (no slurm.conf); run .ci/slurm/setup.sh"
    try:
        socket.create_connection(controller, timeout=2).close()
    except OSError as e:
        return f"no slurmctld at {controller[0]}:{controller[1]} ({e}); run .ci/slurm/setup.sh"
    try:
        # sinfo fails fast when no slurmctld answers (scontrol ping retries for ~20 s).
        info = subprocess.run(
            ["sinfo", "-h", "-p", "debug", "-o", "%T"],
            check=False,
            capture_output=True,
            text=True,
            timeout=15,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no slurmctld answers ({e}); run .ci/slurm/setup.sh"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["?"])[-1]
        return f"no slurmctld reachable ({last}); run .ci/slurm/setup.sh"
    if not any(s in info.stdout for s in ("idle", "mixed", "allocated")):
        return f"partition 'debug' has no usable node ({info.stdout.strip() or 'none'})"
    return None


_PROBLEM = _slurm_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=str(_PROBLEM))


@python_app
def where(seconds: float):
    time.sleep(seconds)
    return socket.gethostname(), os.environ.get("SLURM_JOB_ID")


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# 3600 s: the watcher's thread never polls after its first look, when the job had no worker
# yet; the RUNNING row must then come from the last poll at cleanup, before the job is
# cancelled (it was once taken after, when the worker was already leaving).
@pytest.mark.parametrize("watch_interval", [1.0, 3600.0])
def test_workflow_runs_in_a_slurm_job_and_monitoring_names_it(tmp_path, watch_interval):
    provider = SlurmProvider(
        partition="debug",
        cores_per_node=2,
        init_blocks=1,
        max_blocks=1,
        walltime="00:05:00",
        exclusive=False,
        # The workers import this test module, as a user's worker_init sets up their code.
        worker_init=f"export PYTHONPATH={Path(__file__).parent}:$PYTHONPATH",
        log_directory=str(tmp_path / "slurm-logs"),
    )
    # What a Parsl user writes, with HighThroughputExecutor(...) in place of for_htex(...)
    # once the core routes batch providers here.
    executor = DaskExecutor.for_htex(label="slurm_htex", provider=provider, max_workers_per_node=2)
    executor.watch_interval = watch_interval
    db = tmp_path / "monitoring.db"
    config = Config(
        executors=[executor],
        monitoring=MonitoringHub(
            logging_endpoint=f"sqlite:///{db}", resource_monitoring_interval=1
        ),
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )
    with taskscope.load(config):
        results = [f.result(timeout=120) for f in [where(0.2) for _ in range(6)]]
    taskscope.clear()

    job_ids = {job for _, job in results}
    assert len(job_ids) == 1 and None not in job_ids  # every task ran inside the one batch job
    (job_id,) = job_ids
    assert {host for host, _ in results} == {socket.gethostname()}

    tries = rows(db, "SELECT hostname, block_id FROM try")
    assert len(tries) == 6
    assert set(tries) == {(socket.gethostname(), "slurm_htex-0")}
    blocks = rows(db, "SELECT block_id, job_id, status FROM block ORDER BY timestamp")
    assert [b[2] for b in blocks] == ["PENDING", "RUNNING", "SCALED_IN"]
    assert {(b[0], b[1]) for b in blocks} == {("slurm_htex-0", job_id)}
    nodes = rows(db, "SELECT block_id, active, worker_count FROM node")
    # Two worker processes in the job: each joined and left.
    assert sorted(nodes) == [("slurm_htex-0", 0, 1)] * 2 + [("slurm_htex-0", 1, 1)] * 2
    # The job was cancelled at cleanup: Slurm no longer runs it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        queue = subprocess.run(
            ["squeue", "-h", "-j", job_id], check=False, capture_output=True, text=True
        )
        if job_id not in queue.stdout:
            break
        time.sleep(0.5)
    assert job_id not in queue.stdout
