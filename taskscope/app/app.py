"""The app decorators: ``python_app``, ``bash_app``, ``join_app`` (as ``parsl.app.app``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from taskscope.dataflow.dflow import DataFlowKernel, DataFlowKernelLoader
from taskscope.dataflow.futures import AppFuture
from taskscope.errors import ExecutorLabelError

# Keyword arguments taskscope interprets itself; a default for one in the app's signature
# applies to every call (as in Parsl's AppBase), e.g. ``def f(inputs=[fut], walltime=5)``.
SPECIAL_KWARGS = (
    "stdout",
    "stderr",
    "walltime",
    "parsl_resource_specification",
    "outputs",
    "inputs",
)


def _special_defaults(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    return {
        name: params[name].default
        for name in SPECIAL_KWARGS
        if name in params and params[name].default is not inspect.Parameter.empty
    }


class AppBase:
    """A decorated function: calling it makes a task and returns an AppFuture."""

    def __init__(
        self,
        func: Callable[..., Any],
        data_flow_kernel: DataFlowKernel | None = None,
        executors: str | Sequence[str] = "all",
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
    ):
        if not callable(func):
            raise TypeError(f"an app decorates a function, got {type(func).__name__}")
        if executors != "all":
            if isinstance(executors, str):
                executors = [executors]
            if not isinstance(executors, (list, tuple)) or not all(
                isinstance(e, str) for e in executors
            ):
                raise TypeError(
                    f"executors= must be 'all' or a list of executor labels, got {executors!r}"
                )
            executors = list(executors)
        if not isinstance(cache, bool):
            raise TypeError(f"cache= must be a bool, got {type(cache).__name__}")
        self.func = func
        self.__name__ = getattr(func, "__name__", type(func).__name__)
        self.data_flow_kernel = data_flow_kernel
        self.executors = executors
        self.cache = cache
        self.ignore_for_cache = list(ignore_for_cache or ())
        functools.update_wrapper(self, func)
        self.kwargs = _special_defaults(func)
        loaded = data_flow_kernel or DataFlowKernelLoader._dfk
        if loaded is not None and executors != "all":
            # Catch a typo at decoration time when a config is already loaded.
            unknown = [e for e in executors if e not in loaded._user_labels]
            if unknown:
                raise ExecutorLabelError(self.__name__, unknown, loaded._user_labels)

    def _dfk(self) -> DataFlowKernel:
        return self.data_flow_kernel or DataFlowKernelLoader.dfk()

    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        raise NotImplementedError

    def _submit(
        self, func: Callable[..., Any], args: tuple, kwargs: dict, join: bool = False
    ) -> AppFuture:
        return self._dfk().submit(
            func,
            args,
            executors=self.executors,
            cache=self.cache,
            ignore_for_cache=self.ignore_for_cache,
            app_kwargs=kwargs,
            join=join,
            func_name=self.__name__,
        )

    def _check_walltime(self, walltime: Any) -> None:
        if walltime is None:
            return
        if isinstance(walltime, bool) or not isinstance(walltime, (int, float)) or walltime <= 0:
            raise ValueError(
                f"app {self.__name__!r}: walltime= must be a positive number of seconds, "
                f"got {walltime!r}"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.__name__}>"


def _decorator(kind: str, function: Callable[..., Any] | None, **options: Any) -> Any:
    from taskscope.app.bash import BashApp
    from taskscope.app.python import JoinApp, PythonApp

    app_class = {"python": PythonApp, "bash": BashApp, "join": JoinApp}[kind]
    if function is not None:
        return app_class(function, **options)
    return lambda f: app_class(f, **options)


def python_app(
    function: Callable[..., Any] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> Any:
    """Run the function as a task; its return value is the future's result."""
    options = {"cache": cache, "executors": executors, "ignore_for_cache": ignore_for_cache}
    return _decorator("python", function, data_flow_kernel=data_flow_kernel, **options)


def bash_app(
    function: Callable[..., Any] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    executors: str | Sequence[str] = "all",
    ignore_for_cache: Sequence[str] | None = None,
) -> Any:
    """The function returns a shell command line; the task runs it (result: exit code 0)."""
    options = {"cache": cache, "executors": executors, "ignore_for_cache": ignore_for_cache}
    return _decorator("bash", function, data_flow_kernel=data_flow_kernel, **options)


def join_app(
    function: Callable[..., Any] | None = None,
    data_flow_kernel: DataFlowKernel | None = None,
    cache: bool = False,
    ignore_for_cache: Sequence[str] | None = None,
) -> Any:
    """The function runs in the workflow's process and returns futures of further apps;
    the task completes with their results."""
    options = {"cache": cache, "ignore_for_cache": ignore_for_cache}
    return _decorator("join", function, data_flow_kernel=data_flow_kernel, **options)
