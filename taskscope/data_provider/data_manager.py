"""Staging of Files that are not local paths, with Parsl's provider interface
(``parsl.data_provider.data_manager``).

When an app call has Files among its arguments, ``inputs=`` or ``outputs=`` (or as
``stdout=``/``stderr=``), the kernel asks the executor's ``storage_access`` providers (or
``default_staging``) which one stages each: for an input, ``stage_in`` may return a future
the task then waits for (staging as a task of its own) and ``replace_task`` may wrap the
task's function (staging inside the task); for an output, ``stage_out`` may return a future
the output's DataFuture follows and ``replace_task_stage_out`` may wrap the function. A File
no provider accepts fails the call with ValueError, as in Parsl.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from taskscope.data_provider.file_noop import NoOpFileStaging
from taskscope.data_provider.files import File
from taskscope.data_provider.ftp import FTPInTaskStaging
from taskscope.data_provider.http import HTTPInTaskStaging
from taskscope.data_provider.staging import Staging
from taskscope.data_provider.zip import ZipFileStaging

if TYPE_CHECKING:
    from taskscope.dataflow.dflow import DataFlowKernel

logger = logging.getLogger(__name__)

# Shared by every executor without its own storage_access: no executor-specific state.
# Parsl stages FTP and HTTP here as separate tasks; taskscope inside the task (the same
# download, one task fewer).
default_staging: list[Staging] = [
    NoOpFileStaging(),
    FTPInTaskStaging(),
    HTTPInTaskStaging(),
    ZipFileStaging(),
]

__all__ = ["DataManager", "default_staging"]


def needs_staging(args: tuple, kwargs: dict[str, Any]) -> bool:
    """Whether a call has any File (or DataFuture) for the data manager to look at."""
    from taskscope.dataflow.futures import DataFuture

    kinds = (File, DataFuture)
    if kwargs.get("outputs") or any(isinstance(a, kinds) for a in args):
        return True
    if any(isinstance(v, kinds) for v in kwargs.values()):
        return True
    return any(isinstance(v, kinds) for v in kwargs.get("inputs") or ())


class DataManager:
    def __init__(self, dfk: DataFlowKernel) -> None:
        self.dfk = dfk

    def providers(self, executor: str) -> list[Staging]:
        ex = self.dfk.executors.get(executor)
        custom = getattr(ex, "storage_access", None)
        return list(custom) if custom else default_staging

    def working_dir(self, executor: str) -> str:
        """Where in-task staging puts files: the executor's ``working_dir``, or this run's
        ``staging`` directory (Parsl needs a working_dir; a shared run directory serves)."""
        ex = self.dfk.executors.get(executor)
        path = getattr(ex, "working_dir", None) or os.path.join(self.dfk.run_dir, "staging")
        return os.path.abspath(path)

    # ---------------------------------------------------------------- inputs
    def stage_inputs(
        self, executor: str, args: tuple, kwargs: dict[str, Any], func: Callable[..., Any]
    ) -> tuple[tuple, dict[str, Any], Callable[..., Any]]:
        new_args = []
        for a in args:
            a, func = self.optionally_stage_in(a, func, executor)
            new_args.append(a)
        for key, value in list(kwargs.items()):
            if key in ("stdout", "stderr", "outputs", "inputs"):
                continue
            kwargs[key], func = self.optionally_stage_in(value, func, executor)
        if kwargs.get("inputs"):
            staged = []
            for value in kwargs["inputs"]:
                value, func = self.optionally_stage_in(value, func, executor)
                staged.append(value)
            kwargs["inputs"] = staged
        return tuple(new_args), kwargs, func

    def optionally_stage_in(self, value: Any, func: Callable[..., Any], executor: str) -> Any:
        from taskscope.dataflow.futures import DataFuture

        # Staging works on a copy, as in Parsl: the caller's File keeps no local_path set for
        # where this task runs (even when the task runs in this process).
        if isinstance(value, DataFuture):
            file = value.file_obj.cleancopy()
            value = parent = DataFuture(value, file, value.tid)  # done with the original
        elif isinstance(value, File):
            file = value = value.cleancopy()
            parent = None
        else:
            return value, func
        for provider in self.providers(executor):
            if provider.can_stage_in(file):
                staged = provider.stage_in(self, executor, file, parent)
                func = provider.replace_task(self, executor, file, func) or func
                return (staged if staged is not None else value), func
        raise ValueError(f"Executor {executor} cannot stage file {file!r}")

    # ---------------------------------------------------------------- outputs
    def stage_outputs(
        self, executor: str, kwargs: dict[str, Any], app_fu: Any, func: Callable[..., Any]
    ) -> Callable[..., Any]:
        """Make ``app_fu``'s DataFutures; rewrite ``kwargs`` outputs to the staged copies."""
        outputs = kwargs.get("outputs") or []
        app_fu._outputs = []
        for i, file in enumerate(outputs):
            func, outputs[i], future = self._stage_out_one(executor, file, app_fu, func)
            app_fu._outputs.append(future)
        for stream in ("stdout", "stderr"):
            if isinstance(kwargs.get(stream), File):
                func, kwargs[stream], future = self._stage_out_one(
                    executor, kwargs[stream], app_fu, func
                )
                setattr(app_fu, f"_{stream}_future", future)
        return func

    def _stage_out_one(
        self, executor: str, file: File, app_fu: Any, func: Callable[..., Any]
    ) -> tuple[Callable[..., Any], File, Any]:
        from taskscope.dataflow.futures import DataFuture

        # The staging side gets a copy it may change (local_path); the DataFuture keeps the
        # File the user made, as in Parsl.
        copy = file.cleancopy()
        for provider in self.providers(executor):
            if provider.can_stage_out(copy):
                staged: Future | None = provider.stage_out(self, executor, copy, app_fu)
                future = DataFuture(staged if staged is not None else app_fu, file, app_fu.tid)
                func = provider.replace_task_stage_out(self, executor, copy, func) or func
                return func, copy, future
        raise ValueError(f"Executor {executor} cannot stage file {file!r}")

    # ---------------------------------------------------------------- helpers for providers
    def internal_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Run ``func`` as a task in the kernel's internal pool (a staging task), after the
        futures among its arguments; its own Files are not staged again."""
        from taskscope.dataflow.dflow import INTERNAL_ONLY

        kwargs["_parsl_staging_inhibit"] = True
        return self.dfk.submit(
            func, args, executors=INTERNAL_ONLY, app_kwargs=kwargs, func_name=func.__name__
        )
