"""How a worker process is started: Parsl's ``launch_cmd``, and checks of Parsl-only settings.

In Parsl, ``launch_cmd`` is the command line that starts ``process_worker_pool.py`` (with
``{placeholders}`` filled from the executor's settings). Here the word
``process_worker_pool.py`` in it stands for taskscope's worker, so a wrapper around it
(``singularity exec image.sif process_worker_pool.py {debug} ...``) runs the worker inside
the wrapper; the pool's own options are ignored by the worker. A command that does not name
``process_worker_pool.py`` runs as written and must start a worker itself; if it exits
without one (a missing executable, a typo) the workers "fail to start" and, after
``STARTUP_FAILURE_LIMIT`` tries, the executor goes into its bad state.
"""

from __future__ import annotations

import ipaddress
import shlex
from typing import Any

POOL_COMMAND = "process_worker_pool.py"

# Parsl's default, kept so code that reads or edits ``executor.launch_cmd`` sees Parsl's text.
DEFAULT_LAUNCH_CMD = (
    "process_worker_pool.py {debug} {max_workers_per_node} "
    "-a {addresses} "
    "-p {prefetch_capacity} "
    "-c {cores_per_worker} "
    "-m {mem_per_worker} "
    "--poll {poll_period} "
    "--port={worker_port} "
    "--cert_dir {cert_dir} "
    "--logdir={logdir} "
    "--logconf={logconf} "
    "--block_id={{block_id}} "
    "--hb_period={heartbeat_period} "
    "{address_probe_timeout_string} "
    "--hb_threshold={heartbeat_threshold} "
    "--drain_period={drain_period} "
    "--cpu-affinity {cpu_affinity} "
    "{enable_mpi_mode} "
    "--mpi-launcher={mpi_launcher} "
    "--available-accelerators {accelerators}"
)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def shell_command(
    launch_cmd: str, worker_argv: list[str], values: dict[str, Any], block_id: str
) -> str:
    """The shell command for one worker: ``launch_cmd`` with its placeholders filled (Parsl
    formats twice: once with the settings, where ``{{block_id}}`` becomes ``{block_id}``,
    then per block) and ``process_worker_pool.py`` replaced by the worker's command."""
    try:
        text = launch_cmd.format_map(_Blank({k: "" if v is None else v for k, v in values.items()}))
    except (ValueError, IndexError) as e:
        raise ValueError(
            f"HighThroughputExecutor(launch_cmd={launch_cmd!r}) is not a valid format string: {e}"
        ) from None
    text = text.replace("{block_id}", block_id)
    worker = shlex.join(worker_argv)
    if text.lstrip().startswith(POOL_COMMAND):
        # exec: the worker replaces the shell, so its pid is the one the executor started.
        return "exec " + text.replace(POOL_COMMAND, worker)
    return text.replace(POOL_COMMAND, worker)


def is_default(launch_cmd: str) -> bool:
    return launch_cmd == DEFAULT_LAUNCH_CMD


def check_loopback_address(address: object) -> None:
    """Parsl's executor-to-interchange address: an IPv4 or IPv6 address. Nothing listens on
    it here (there is no interchange), but a bad value is still an error."""
    if not isinstance(address, str):
        raise TypeError(
            "HighThroughputExecutor(loopback_address=...) must be a str, "
            f"got {type(address).__name__}"
        )
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            "HighThroughputExecutor(loopback_address=...) must be an IPv4 or IPv6 address "
            f"such as 127.0.0.1 or ::1, got {address!r}"
        ) from None


def check_drain_period(drain_period: object) -> None:
    if drain_period is None:
        return
    if (
        isinstance(drain_period, bool)
        or not isinstance(drain_period, (int, float))
        or drain_period <= 0
    ):
        raise ValueError(
            "HighThroughputExecutor(drain_period=...) must be a positive number of seconds "
            f"or None, got {drain_period!r}"
        )
