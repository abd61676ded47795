"""Parsl-style provider parameters become the right batch-job script, or a clear error."""

from __future__ import annotations

import pytest

from taskscope.cluster import (
    PBSProProvider,
    PBSProvider,
    ProviderConfigError,
    SingleNodeLauncher,
    SlurmProvider,
    SrunLauncher,
)

pytest.importorskip("dask_jobqueue", reason="needs the dask extra: pip install taskscope[dask]")


def directives(script: str, prefix: str) -> list[str]:
    return [line[len(prefix) :].strip() for line in script.splitlines() if line.startswith(prefix)]


def worker_command(script: str) -> str:
    return next(line for line in script.splitlines() if "distributed.cli.dask_worker" in line)


def test_parsl_slurm_config_becomes_sbatch_directives():
    provider = SlurmProvider(
        partition="debug",
        account="proj42",
        qos="normal",
        constraint="haswell",
        cores_per_node=8,
        mem_per_node=16,
        walltime="01:30:00",
        scheduler_options="#SBATCH --gres=gpu:1\nmodule load python",
        worker_init="source /opt/env.sh",
        exclusive=True,
    )
    script = provider.job_script("htex", cores_per_worker=2)
    lines = directives(script, "#SBATCH")
    for expected in (
        "-p debug",
        "-A proj42",
        "--cpus-per-task=8",
        "--mem=16G",
        "-t 01:30:00",
        "--gres=gpu:1",
        "--qos=normal",
        "--constraint=haswell",
        "--exclusive",
    ):
        assert expected in lines, (expected, lines)
    command = worker_command(script)
    # 8 cores / 2 per worker = 4 single-threaded worker processes: one task each at a time.
    assert "--nworkers 4" in command and "--nthreads 1" in command
    body = script.splitlines()
    # The user's shell lines run before the worker starts, scheduler_options lines first.
    assert body.index("module load python") < body.index("source /opt/env.sh") < body.index(command)


def test_unset_memory_books_none_and_sets_no_worker_limit():
    script = SlurmProvider(cores_per_node=2, exclusive=False).job_script("htex")
    assert not any(d.startswith("--mem") for d in directives(script, "#SBATCH"))
    assert "--exclusive" not in directives(script, "#SBATCH")
    assert "--memory-limit 0" in worker_command(script)


def test_max_workers_per_node_caps_the_workers_and_books_their_cores():
    script = SlurmProvider(cores_per_node=16).job_script("htex", max_workers_per_node=3)
    assert "--nworkers 3" in worker_command(script)
    assert "--cpus-per-task=16" in directives(script, "#SBATCH")
    script = SlurmProvider().job_script("htex", cores_per_worker=2, max_workers_per_node=3)
    assert "--cpus-per-task=6" in directives(script, "#SBATCH")


def test_srun_launcher_starts_the_worker_as_a_job_step():
    script = SlurmProvider(
        cores_per_node=1, launcher=SrunLauncher(overrides="--mpi=none")
    ).job_script()
    assert worker_command(script).startswith("srun --ntasks=1 --nodes=1 --mpi=none ")
    script = SlurmProvider(cores_per_node=1, launcher=SingleNodeLauncher()).job_script()
    assert not worker_command(script).startswith("srun")


def test_pbspro_select_statement():
    provider = PBSProProvider(
        account="acct",
        queue="workq",
        cpus_per_node=12,
        mem_per_node=32,
        select_options="ngpus=2",
        walltime="02:00:00",
        worker_init="conda activate env",
    )
    script = provider.job_script("htex", cores_per_worker=4)
    lines = directives(script, "#PBS")
    assert "-l select=1:ncpus=12:mem=32gb:ngpus=2" in lines
    assert "-q workq" in lines and "-A acct" in lines and "-l walltime=02:00:00" in lines
    assert "--nworkers 3" in worker_command(script)
    assert "conda activate env" in script.splitlines()
    assert PBSProvider is PBSProProvider


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"clusters": "c1"}, ["'clusters'", "--clusters"]),
        ({"partiton": "debug"}, ["'partiton'", "check the spelling"]),
        ({"cmd_timeout": 30, "channel": object()}, ["'channel'", "'cmd_timeout'"]),
        ({"nodes_per_block": 4}, ["nodes_per_block=4", "max_blocks"]),
        ({"parallelism": 0.5}, ["parallelism=0.5"]),
        ({"walltime": "2 hours"}, ["walltime", "HH:MM:SS"]),
        ({"init_blocks": 2, "max_blocks": 1}, ["init_blocks (2)", "max_blocks (1)"]),
        ({"min_blocks": 3, "max_blocks": 2}, ["min_blocks (3)"]),
        ({"cores_per_node": 0}, ["cores_per_node"]),
        ({"mem_per_node": -1}, ["mem_per_node", "GB"]),
        ({"launcher": object()}, ["launcher=object()", "SrunLauncher"]),
    ],
)
def test_unsupported_or_bad_parameters_are_named(kwargs, words):
    with pytest.raises(ProviderConfigError) as info:
        SlurmProvider(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_worker_count_must_be_knowable():
    with pytest.raises(ProviderConfigError, match=r"cores_per_node.*max_workers_per_node"):
        SlurmProvider().cluster_kwargs("htex")


def test_srun_needs_slurm():
    with pytest.raises(ProviderConfigError, match="needs Slurm"):
        PBSProProvider(launcher=SrunLauncher())


def test_parsl_launcher_objects_are_accepted_by_name():
    class SrunLauncher:  # stands in for parsl.launchers.SrunLauncher
        overrides = "--exclusive"

    script = SlurmProvider(cores_per_node=1, launcher=SrunLauncher()).job_script()
    assert worker_command(script).startswith("srun --ntasks=1 --nodes=1 --exclusive ")
