"""``Config``: what a workflow runs on and how (the shape of ``parsl.config.Config``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from taskscope.errors import ConfigurationError
from taskscope.executors.base import Executor

_STRATEGIES = {None, "none", "simple", "htex_auto_scale"}
INTERNAL_EXECUTOR_LABEL = "_taskscope_internal"


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Config({name}=...) must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"Config({name}=...) must be >= {minimum}, got {value}")
    return value


def _check_usage_tracking(level: Any) -> int | bool:
    # Parsl: an int (bools are ints) from 0 (off) to 3; taskscope sends no usage data at
    # any level (docs/compatibility.md), but a value Parsl refuses is refused here too.
    if not isinstance(level, int):
        raise TypeError(f"Config(usage_tracking=...) must be an int, got {type(level).__name__}")
    if not 0 <= level <= 3:
        raise ConfigurationError(f"Usage Tracking values must be 0, 1, 2, or 3 and not {level}")
    return level


def _check_instance(option: str, value: Any, kinds: tuple[type, ...], wanted: str) -> Any:
    """`value` unchanged if it is one of `kinds`; otherwise a TypeError that says what
    ``Config(option=...)`` takes (`wanted`) and what it was given."""
    if not isinstance(value, kinds):
        raise TypeError(f"Config({option}=...) must be {wanted}, got {type(value).__name__}")
    return value


class Config:
    """Everything ``taskscope.load()`` needs.

    ``retries``: how many times a failed task is tried again (each failure costs 1, or what
    ``retry_handler(exception, task_record)`` returns). ``app_cache``: lets apps declared with
    ``cache=True`` reuse results of equal calls. ``run_dir``: where each run gets a numbered
    directory for its logs. ``monitoring``: a ``MonitoringHub`` or None.
    """

    def __init__(
        self,
        executors: Sequence[Executor] | None = None,
        app_cache: bool = True,
        retries: int = 0,
        retry_handler: Callable[[BaseException, Any], float] | None = None,
        run_dir: str | os.PathLike[str] = "runinfo",
        strategy: str | None = "simple",
        strategy_period: float = 5,
        max_idletime: float = 120.0,
        monitoring: Any = None,
        checkpoint_files: Sequence[str] | None = None,
        checkpoint_mode: str | None = None,
        checkpoint_period: str | None = None,
        garbage_collect: bool = True,
        internal_tasks_max_threads: int = 10,
        initialize_logging: bool = True,
        usage_tracking: int | bool = 0,
        exit_mode: str = "cleanup",
        std_autopath: Callable[..., str] | None = None,
        project_name: str | None = None,
        memoizer: Any = None,
        dependency_resolver: Any = None,
    ):
        # Imported when a Config is made, not with this module: importing taskscope.config
        # loads none of the kernel.
        from taskscope.dataflow.dependency_resolvers import DependencyResolver
        from taskscope.dataflow.memoization import Memoizer
        from taskscope.logconfigs.base import LogConfig

        if executors is None:
            from taskscope.executors.threads import ThreadPoolExecutor

            executors = [ThreadPoolExecutor()]
        if isinstance(executors, Executor) or not isinstance(executors, (list, tuple)):
            raise TypeError(
                f"Config(executors=...) must be a list of executors, got {type(executors).__name__}"
            )
        if not executors:
            raise ValueError("Config(executors=...) needs at least one executor")
        labels: list[str] = []
        for ex in executors:
            if not isinstance(ex, Executor):
                raise TypeError(
                    "Config(executors=...) items must be executors such as "
                    f"ThreadPoolExecutor(), got {type(ex).__name__}"
                )
            if ex.label in labels:
                raise ValueError(
                    f"Config(executors=...): label {ex.label!r} is used twice; "
                    "labels must be unique"
                )
            if ex.label == INTERNAL_EXECUTOR_LABEL:
                raise ValueError(f"Config(executors=...): label {ex.label!r} is reserved")
            labels.append(ex.label)
        self.executors: list[Executor] = list(executors)

        if not isinstance(app_cache, bool):
            raise TypeError(f"Config(app_cache=...) must be a bool, got {type(app_cache).__name__}")
        self.app_cache = app_cache
        self.retries = _check_int("retries", retries)
        if retry_handler is not None and not callable(retry_handler):
            raise TypeError("Config(retry_handler=...) must be callable(exception, task_record)")
        self.retry_handler = retry_handler
        if not isinstance(run_dir, (str, os.PathLike)) or not os.fspath(run_dir):
            raise TypeError(f"Config(run_dir=...) must be a non-empty path, got {run_dir!r}")
        self.run_dir = os.fspath(run_dir)
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"Config(strategy=...) must be one of "
                f"{sorted(s for s in _STRATEGIES if s)} or None, got {strategy!r}"
            )
        self.strategy = strategy
        self.strategy_period = strategy_period
        self.max_idletime = max_idletime
        if monitoring is not None:
            for method in ("start", "send", "wrap", "close"):
                if not callable(getattr(monitoring, method, None)):
                    raise TypeError(
                        "Config(monitoring=...) must be a MonitoringHub (an object "
                        f"with start/send/wrap/close), got {type(monitoring).__name__}"
                    )
        self.monitoring = monitoring
        self.checkpoint_files = checkpoint_files
        self.checkpoint_mode = checkpoint_mode
        self.checkpoint_period = checkpoint_period
        self.garbage_collect = garbage_collect
        self.internal_tasks_max_threads = _check_int(
            "internal_tasks_max_threads", internal_tasks_max_threads, minimum=1
        )
        self.initialize_logging = _check_instance(
            "initialize_logging",
            initialize_logging,
            (bool, LogConfig),
            "True, False or a LogConfig such as FileLogging()",
        )
        self.usage_tracking = _check_usage_tracking(usage_tracking)
        if not isinstance(exit_mode, str) or exit_mode not in ("cleanup", "skip", "wait"):
            # TypeError, as Parsl's type check of the Literal raises.
            raise TypeError(
                f"Config(exit_mode=...) must be 'cleanup', 'skip' or 'wait', got {exit_mode!r}"
            )
        self.exit_mode = exit_mode
        if std_autopath is not None and not callable(std_autopath):
            raise TypeError("Config(std_autopath=...) must be callable(task_record, 'stdout')")
        self.std_autopath = std_autopath
        self.project_name = _check_instance(
            "project_name", project_name, (str, type(None)), "a str"
        )
        memoizer = _check_instance(
            "memoizer", memoizer, (Memoizer, type(None)), "a Memoizer such as BasicMemoizer()"
        )
        if checkpoint_mode is not None or checkpoint_files is not None:
            # Parsl's older Config options, now BasicMemoizer's: build one from them.
            if memoizer is not None:
                raise ConfigurationError(
                    "give checkpoint_mode/checkpoint_files/checkpoint_period to the "
                    "memoizer (BasicMemoizer(checkpoint_mode=...)), not to Config as well"
                )
            from taskscope.dataflow.memoization import BasicMemoizer

            memoizer = BasicMemoizer(
                checkpoint_files=checkpoint_files,
                checkpoint_mode=checkpoint_mode,
                checkpoint_period=checkpoint_period,
                memoize=app_cache,
            )
        self.memoizer = memoizer
        self.dependency_resolver = _check_instance(
            "dependency_resolver",
            dependency_resolver,
            (DependencyResolver, type(None)),
            "a DependencyResolver such as DEEP_DEPENDENCY_RESOLVER",
        )

    @property
    def executor_labels(self) -> list[str]:
        return [ex.label for ex in self.executors]

    def __repr__(self) -> str:
        return (
            f"Config(executors={self.executors!r}, retries={self.retries}, "
            f"run_dir={self.run_dir!r}, app_cache={self.app_cache}, "
            f"monitoring={self.monitoring!r})"
        )
