"""The DataFlowKernel: task records, dependencies, retries, memoization and futures.

Hot path (monitoring off): one TaskRecord and one AppFuture per call, no lock for a task
without dependencies, no per-task log line at INFO, no message objects. Completion runs in
whichever thread the executor completes futures on (a pool thread, or the HTEX I/O thread).
"""

from __future__ import annotations

import atexit
import collections
import concurrent.futures
import itertools
import logging
import os
import pathlib
import random
import signal
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any

from taskscope.config import INTERNAL_EXECUTOR_LABEL, Config
from taskscope.data_provider.files import File
from taskscope.dataflow import task_log
from taskscope.dataflow.futures import AppFuture, DataFuture
from taskscope.dataflow.memoization import BasicMemoizer, Memoizer
from taskscope.dataflow.rundir import attach_run_log, detach_run_log, make_run_dir
from taskscope.dataflow.states import FINAL_STATES, States
from taskscope.dataflow.taskrecord import TaskRecord, TryFailureRecord
from taskscope.dataflow.user_traceback import user_traceback
from taskscope.errors import (
    BashExitFailure,
    ConfigurationError,
    DependencyError,
    ExecutorError,
    ExecutorLabelError,
    JoinError,
    NoDataFlowKernelError,
    TaskscopeError,
    remote_traceback,
)
from taskscope.executors.base import Executor, ScalingExecutor
from taskscope.executors.threads import ThreadPoolExecutor

logger = logging.getLogger(__name__)

# Parsl's sentinel for "name the stdout/stderr file for me" (parsl.AUTO_LOGNAME).
AUTO_LOGNAME = -1
# ``submit(executors=INTERNAL_ONLY)``: run in the kernel's own thread pool (lifted
# ``fut[key]`` / ``fut.attr`` tasks); not a label an app can name.
INTERNAL_ONLY: tuple[str, ...] = (INTERNAL_EXECUTOR_LABEL,)
# Arguments the data manager stages (taskscope/data_provider/data_manager.py).
_STAGED_TYPES = (File, DataFuture)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("taskscope")
    except Exception:  # noqa: BLE001
        return "0.1.0"


class _WhenAllDone:
    """The done-callback a task gives each future it waits for (its dependencies, or the
    futures its join app returned): when the last is done, ``then(record)``.

    It forgets the record then. Futures keep their callbacks for ever, and the record refers
    to those futures (``depends``, ``joins``): a callback holding the record would make every
    finished task a reference cycle, freed only by a full garbage collection, which then
    walks every task still waiting to be freed (in bursts of short tasks that was most of
    the workflow process's CPU)."""

    __slots__ = ("lock", "record", "then")

    def __init__(
        self, record: TaskRecord, then: Callable[[TaskRecord], None], lock: threading.Lock
    ) -> None:
        self.record: TaskRecord | None = record
        self.then = then
        self.lock = lock

    def __call__(self, _future: Future | None) -> None:
        with self.lock:
            record = self.record
            if record is None:
                return
            record.deps_remaining -= 1
            if record.deps_remaining:
                return
            self.record = None
        self.then(record)


class DataFlowKernel:
    """Runs app calls as tasks once their dependencies are done, on the chosen executors."""

    def __init__(self, config: Config | None = None):
        if config is None:
            config = Config()
        if not isinstance(config, Config):
            raise TypeError(f"load(config) needs a taskscope Config, got {type(config).__name__}")
        self.config = config
        self.run_id = str(uuid.uuid4())
        self.time_began = time.time()
        self.run_dir = make_run_dir(config.run_dir)
        self._log_handler = None
        self._log_config = None
        if config.initialize_logging is True:
            self._log_handler = attach_run_log(self.run_dir)
        elif config.initialize_logging is not False:  # a LogConfig (taskscope.logconfigs)
            from taskscope.logconfigs.base import oneshot_initialize_logging

            self._log_config = config.initialize_logging
            oneshot_initialize_logging(
                log_config=self._log_config,
                log_dir=pathlib.Path(self.run_dir),
                log_name="taskscope",
            )
        logger.info("taskscope run %s starting in %s", self.run_id, self.run_dir)

        self.tasks: dict[int, TaskRecord] = {}
        self._active: dict[int, TaskRecord] = {}
        self._task_ids = itertools.count()
        self._lock = threading.Lock()  # dependency counters and final-state counts
        self._starting = threading.local()
        self._n_done = 0
        self._n_failed = 0
        # Parsl's workflow counts: tasks that ran to exec_done, tasks that ended failed
        # (memo_done and dep_fail are in neither).
        self._n_exec_done = 0
        self._n_failed_final = 0
        self.memoizer: Memoizer = (
            config.memoizer
            if config.memoizer is not None
            else BasicMemoizer(memoize=config.app_cache)
        )
        # The default memoizer has nothing to do for a task without cache=True: skip the calls.
        self._memo_every_task = type(self.memoizer) is not BasicMemoizer
        try:
            self.memoizer.start(run_dir=self.run_dir, config_run_dir=config.run_dir)
        except BaseException:  # e.g. BadCheckpoint: nothing else has started yet
            self._detach_logging()
            raise
        from taskscope.data_provider.data_manager import DataManager

        self._data = DataManager(self)
        # None: the built-in shallow scan (the fast path); else Config(dependency_resolver=).
        self._resolver = config.dependency_resolver
        self._cleanup_called = False
        self._abort_reason: str | None = None

        self.monitoring = config.monitoring
        self._events = None
        if self.monitoring is not None:
            from taskscope.dataflow.monitor_events import TaskEvents

            try:
                self.monitoring.start(self.run_id, config.run_dir)
            except BaseException:
                self.memoizer.close()  # a periodic checkpoint thread stops
                self._detach_logging()
                raise
            self._events = TaskEvents(self.monitoring, self.run_id)
            self._events.workflow_start(
                self.run_dir, config.executor_labels, self.time_began, _version()
            )

        self.executors: dict[str, Executor] = {}
        self._user_labels = config.executor_labels
        # Set before any executor starts: a failed start runs cleanup(), which restores these.
        self._previous_excepthook = sys.excepthook
        self._previous_sigterm: Any = None
        internal = ThreadPoolExecutor(
            label=INTERNAL_EXECUTOR_LABEL, max_threads=config.internal_tasks_max_threads
        )
        try:
            for ex in [*config.executors, internal]:
                if isinstance(ex, ScalingExecutor):
                    # Config(strategy='none') fixes the blocks at init_blocks, as in Parsl.
                    ex.set_adaptive(config.strategy not in (None, "none"))
                if self._events is not None:
                    ex.prepare(self.run_dir, self.run_id, self.monitoring.send)
                else:
                    ex.prepare(self.run_dir)
                task_log.executor_added(self.run_id, ex)
                ex.start()
                self.executors[ex.label] = ex
        except BaseException:
            self._abort_reason = "executor start failed"
            self.cleanup()
            raise

        atexit.register(self.atexit_cleanup)
        sys.excepthook = self._excepthook
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    # ----------------------------------------------------------------- context manager
    def __enter__(self) -> DataFlowKernel:  # noqa: PYI034
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._abort_reason = self._abort_reason or exc_type.__name__
        elif self.config.exit_mode == "wait":
            self.wait_for_current_tasks()
        if self.config.exit_mode != "skip" or exc_type is not None:
            self.cleanup()

    # ----------------------------------------------------------------- submission
    def submit(
        self,
        func: Callable[..., Any],
        app_args: tuple,
        executors: str | Sequence[str] = "all",
        cache: bool = False,
        ignore_for_cache: Sequence[str] | None = None,
        app_kwargs: dict[str, Any] | None = None,
        join: bool = False,
        func_name: str | None = None,
    ) -> AppFuture:
        """Make a task of ``func(*app_args, **app_kwargs)``; returns its AppFuture at once."""
        if self._cleanup_called:
            raise NoDataFlowKernelError(
                "this DataFlowKernel has been cleaned up; load a new "
                "config with taskscope.load(config)"
            )
        name = func_name or getattr(func, "__name__", repr(func))
        kwargs = {} if app_kwargs is None else app_kwargs
        if join or executors is INTERNAL_ONLY:
            label = INTERNAL_EXECUTOR_LABEL
        else:
            label = self._choose_executor(executors, name)
        outputs = kwargs.get("outputs")
        if outputs:
            for i, o in enumerate(outputs):
                if not isinstance(o, File):
                    raise TypeError(
                        f"app {name!r}: outputs[{i}] must be a File, got {type(o).__name__}"
                    )
        staging = (app_args or kwargs) and self._has_files(app_args, kwargs)
        if staging:
            app_args, kwargs, func = self._data.stage_inputs(label, app_args, kwargs, func)
        tid = next(self._task_ids)
        record = TaskRecord(
            id=tid,
            func=func,
            func_name=name,
            executor=label,
            args=app_args,
            kwargs=kwargs,
            time_invoked=time.time(),
            memoize=bool(cache) and self.config.app_cache,
            join=join,
            ignore_for_cache=list(ignore_for_cache or ()),
            resource_specification=kwargs.get("parsl_resource_specification") or {},
            status=States.pending,
            dfk=self,
        )
        if kwargs.get("stdout") is AUTO_LOGNAME or kwargs.get("stderr") is AUTO_LOGNAME:
            self._auto_lognames(record)
        app_fu = AppFuture(record)
        record.app_fu = app_fu
        if not staging and (
            isinstance(kwargs.get("stdout"), File) or isinstance(kwargs.get("stderr"), File)
        ):
            staging = not kwargs.get("_parsl_staging_inhibit")  # e.g. std_autopath gave Files
        if staging:
            # outputs= and stdout=/stderr= Files get their DataFutures (app_fu.outputs,
            # app_fu.stdout), following any stage-out task, as in Parsl.
            record.func = self._data.stage_outputs(label, kwargs, app_fu, record.func)
        elif outputs:  # a staging task's own outputs: no staging, plain DataFutures
            app_fu._outputs = [DataFuture(app_fu, o, tid) for o in outputs]

        if self._resolver is None:
            deps = [a for a in app_args if isinstance(a, Future)]
            if kwargs:
                deps.extend(v for v in kwargs.values() if isinstance(v, Future))
                inputs = kwargs.get("inputs")
                if inputs:
                    deps.extend(v for v in inputs if isinstance(v, Future))
        else:
            deps = self._gather_with_resolver(app_args, kwargs)
        record.depends = deps
        self.tasks[tid] = record
        self._active[tid] = record
        ev = self._events
        if ev is not None:
            ev.submitted(record)
        if task_log.enabled():
            task_log.state_changed(self.run_id, record, None, States.pending)
            task_log.submitted(
                self.run_id, record, [self.render_future_description(d) for d in deps]
            )

        if not deps:
            self._start(record)
        else:
            record.deps_remaining = len(deps) + 1
            release = _WhenAllDone(record, self._start_soon, self._lock)
            for d in deps:
                d.add_done_callback(release)
            release(None)
        return app_fu

    @staticmethod
    def _has_files(args: tuple, kwargs: dict[str, Any]) -> bool:
        """Whether the data manager has Files to look at (a staging task's own do not)."""
        if kwargs.get("outputs"):
            return not kwargs.get("_parsl_staging_inhibit")
        found = any(isinstance(a, _STAGED_TYPES) for a in args) or any(
            isinstance(v, _STAGED_TYPES) for v in kwargs.values()
        )
        if not found and kwargs.get("inputs"):
            found = any(isinstance(v, _STAGED_TYPES) for v in kwargs["inputs"])
        return found and not kwargs.get("_parsl_staging_inhibit")

    def _choose_executor(self, executors: str | Sequence[str], app_name: str) -> str:
        if executors == "all":
            choices = self._user_labels
        else:
            if isinstance(executors, str):
                executors = [executors]
            unknown = [
                e for e in executors if e not in self.executors or e == INTERNAL_EXECUTOR_LABEL
            ]
            if unknown or not executors:
                raise ExecutorLabelError(app_name, unknown or ["(empty list)"], self._user_labels)
            choices = list(executors)
        return choices[0] if len(choices) == 1 else random.choice(choices)

    def _auto_lognames(self, record: TaskRecord) -> None:
        """Name the files of ``stdout=AUTO_LOGNAME``/``stderr=AUTO_LOGNAME``: with
        ``Config(std_autopath=f)``, ``f(task_record, 'stdout')``; else Parsl's layout
        ``<run_dir>/task_logs/0000/task_0007_<app>[_<label>].stdout``. The generated name
        is not part of the memo key (it differs per task), as in Parsl."""
        kwargs = record.kwargs
        for stream in ("stdout", "stderr"):
            if kwargs.get(stream) is not AUTO_LOGNAME:
                continue
            if stream not in record.ignore_for_cache:
                record.ignore_for_cache.append(stream)
            if self.config.std_autopath is not None:
                kwargs[stream] = self.config.std_autopath(record, stream)
            else:
                kwargs[stream] = self.default_std_autopath(record, stream)

    def default_std_autopath(self, record: TaskRecord, stream: str) -> str:
        label = record.kwargs.get("label")
        folder = os.path.join(self.run_dir, "task_logs", f"{record.id // 10000:04d}")
        os.makedirs(folder, exist_ok=True)
        suffix = "" if label is None else f"_{label}"
        return os.path.join(folder, f"task_{record.id:04d}_{record.func_name}{suffix}.{stream}")

    def _start_soon(self, record: TaskRecord) -> None:
        """Start ``record`` now, or after the start already running on this thread.

        A task that ends inline (dep_fail, memo_done) completes its dependents from inside
        its own completion callback; a queue per thread turns that recursion into a loop,
        so a long chain cannot exceed the interpreter's recursion limit.
        """
        queue = getattr(self._starting, "queue", None)
        if queue is not None:
            queue.append(record)
            return
        self._starting.queue = queue = collections.deque([record])
        try:
            while queue:
                self._start(queue.popleft())
        finally:
            self._starting.queue = None

    # ----------------------------------------------------------------- launching
    def _start(self, record: TaskRecord) -> None:
        """All dependencies are done: fail on a failed one, substitute results, launch."""
        if record.depends:
            failed = []
            for d in record.depends:
                try:
                    exc = d.exception()
                except concurrent.futures.CancelledError as e:
                    exc = e
                if exc is not None:
                    failed.append((exc, self.render_future_description(d)))
            if failed:
                self._dep_fail(record, failed)
                return
            if self._resolver is None:
                record.args = tuple(a.result() if isinstance(a, Future) else a for a in record.args)
                kw = {
                    k: (v.result() if isinstance(v, Future) else v)
                    for k, v in record.kwargs.items()
                }
                if kw.get("inputs"):
                    kw["inputs"] = [
                        v.result() if isinstance(v, Future) else v for v in kw["inputs"]
                    ]
                record.kwargs = kw
            else:
                self._unwrap_with_resolver(record)
        if record.memoize or self._memo_every_task:
            try:
                memo_fu = self.memoizer.check_memo(record)
            except Exception as e:  # noqa: BLE001 - e.g. an argument id_for_memo cannot identify
                logger.info("task %s (%s) memo check failed: %s", record.id, record.func_name, e)
                self._try_failed(record, e, retryable=False)
                return
            if memo_fu is not None:
                record.from_memo = True
                if memo_fu.done():
                    self._finish_from_memo(record, memo_fu)
                else:
                    memo_fu.add_done_callback(lambda f, r=record: self._finish_from_memo(r, f))
                return
        self._launch_try(record)

    def _finish_from_memo(self, record: TaskRecord, memo_fu: Future) -> None:
        exc = memo_fu.exception()
        if exc is None:
            self._finish_ok(record, memo_fu.result(), States.memo_done)
        else:  # a memoized failure (Parsl memoizes exceptions too); the task fails again
            self._finish_failed(record, exc, States.failed)

    def _gather_with_resolver(self, args: tuple, kwargs: dict[str, Any]) -> list[Future]:
        gather = self._resolver.traverse_to_gather  # type: ignore[union-attr]
        deps: list[Future] = []
        for a in args:
            deps.extend(gather(a))
        for v in kwargs.values():
            deps.extend(gather(v))
        for v in kwargs.get("inputs") or ():
            deps.extend(gather(v))
        return deps

    def _unwrap_with_resolver(self, record: TaskRecord) -> None:
        unwrap = self._resolver.traverse_to_unwrap  # type: ignore[union-attr]
        record.args = tuple(unwrap(a) for a in record.args)
        kw = {k: unwrap(v) for k, v in record.kwargs.items()}
        if kw.get("inputs"):
            kw["inputs"] = [unwrap(v) for v in kw["inputs"]]
        record.kwargs = kw

    def _launch_try(self, record: TaskRecord) -> None:
        record.try_time_launched = time.time()
        record.try_time_returned = None
        if task_log.enabled():
            task_log.state_changed(self.run_id, record, record.status, States.launched)
        record.status = States.launched
        func = record.func
        ev = self._events
        if ev is not None:
            func = ev.wrap(func, record)
            ev.launched(record)
        try:
            fu = self.executors[record.executor].submit(
                func, record.resource_specification, *record.args, **record.kwargs
            )
        except Exception as e:  # e.g. an argument that cannot be serialised: fails this try  # noqa: BLE001
            fu = Future()
            fu.set_exception(e)
        record.exec_fu = fu
        if task_log.enabled():
            task_log.launched(self.run_id, record, getattr(fu, "parsl_executor_task_id", None))
        fu._taskscope_record = record  # type: ignore[attr-defined]
        fu.add_done_callback(self._try_done)

    def _try_done(self, fu: Future) -> None:
        # Taken off the future: the record keeps its exec_fu, and the pair would otherwise
        # be a cycle that only a full garbage collection frees.
        record: TaskRecord = fu.__dict__.pop("_taskscope_record")
        record.try_time_returned = time.time()
        try:
            exc = fu.exception()
        except concurrent.futures.CancelledError as e:
            exc = ExecutorError(record.executor, f"task was cancelled: {e}")
        if exc is not None:
            self._try_failed(record, exc)
        elif record.join:
            self._start_joining(record, fu.result())
        else:
            self._finish_ok(record, fu.result(), States.exec_done)

    # ----------------------------------------------------------------- join apps
    def _start_joining(self, record: TaskRecord, returned: Any) -> None:
        if isinstance(returned, Future):
            inner = [returned]
        elif isinstance(returned, (list, tuple)) and all(isinstance(f, Future) for f in returned):
            inner = list(returned)
        else:
            self._try_failed(
                record,
                TypeError(
                    f"join app {record.func_name!r} must return a Future or a list of Futures, "
                    f"got {type(returned).__name__}"
                ),
            )
            return
        record.joins = inner
        if task_log.enabled():
            task_log.state_changed(self.run_id, record, record.status, States.joining)
        record.status = States.joining
        ev = self._events
        if ev is not None:
            ev.status(record, States.joining)
        record.deps_remaining = len(inner) + 1
        single = isinstance(returned, Future)
        release = _WhenAllDone(record, partial(self._joins_done, single=single), self._lock)
        for f in inner:
            f.add_done_callback(release)
        release(None)

    def _joins_done(self, record: TaskRecord, single: bool) -> None:
        inner = record.joins or []
        failed = [
            (f.exception(), self.render_future_description(f))
            for f in inner
            if f.exception() is not None
        ]
        record.try_time_returned = time.time()
        if failed:
            # As in Parsl: a join app is not retried (its inner apps retry themselves).
            self._try_failed(record, JoinError(failed, record.id), retryable=False)
        else:
            result = inner[0].result() if single else [f.result() for f in inner]
            self._finish_ok(record, result, States.exec_done)

    # ----------------------------------------------------------------- outcomes
    def _try_failed(self, record: TaskRecord, exc: BaseException, retryable: bool = True) -> None:
        tb = remote_traceback(exc)
        if tb is None:
            tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        tb = user_traceback(tb, record.func)
        exit_code = exc.exitcode if isinstance(exc, BashExitFailure) else None
        failure = TryFailureRecord(record.try_id, exc, tb, exit_code, time.time())
        record.try_failures.append(failure)
        record.fail_history.append(repr(exc))
        record.fail_count += 1
        cost: float = 1
        give_up = not retryable
        if give_up:
            pass
        elif self.config.retry_handler is not None:
            try:
                cost = float(self.config.retry_handler(exc, record))
            except Exception as handler_exc:
                logger.exception("retry_handler raised for task %s; not retrying", record.id)
                give_up = True
                # As in Parsl: the task fails with the handler's exception (it is the
                # newest problem), chained to the try's own exception.
                if handler_exc.__context__ is None:
                    handler_exc.__context__ = exc
                exc = handler_exc
        if give_up:  # as in Parsl: a cost past the retries stops any further try
            record.fail_cost = self.config.retries + 1
        else:
            record.fail_cost += cost
        ev = self._events
        if ev is not None:
            ev.try_failed(record, failure)
            ev.try_ended(record)
        if record.fail_cost <= self.config.retries and not self._cleanup_called:
            logger.info(
                "task %s (%s) try %s failed (%s: %s); retrying",
                record.id,
                record.func_name,
                record.try_id,
                type(exc).__name__,
                exc,
            )
            if task_log.enabled():
                task_log.state_changed(self.run_id, record, record.status, States.fail_retryable)
            record.status = States.fail_retryable
            if ev is not None:
                ev.status(record, States.fail_retryable)
            record.try_id += 1
            record.fail_history = []  # as in Parsl: each try row holds its own failure
            self._launch_try(record)
            return
        logger.info(
            "task %s (%s) failed after %s tries: %s: %s",
            record.id,
            record.func_name,
            record.fail_count,
            type(exc).__name__,
            exc,
        )
        remote_tb = remote_traceback(exc)
        if remote_tb and hasattr(exc, "add_note") and not getattr(exc, "_taskscope_noted", False):
            exc.add_note(f"Traceback on the worker:\n{remote_tb.rstrip()}")
            exc._taskscope_noted = True  # type: ignore[attr-defined]
        self._finish_failed(record, exc, States.failed)

    def render_future_description(self, dep: Future) -> str:
        """How a failed dependency is named in errors: ``task N`` for an AppFuture of this
        run, as in Parsl."""
        if isinstance(dep, AppFuture) and getattr(dep.task_record, "dfk", self) is self:
            return f"task {dep.tid}"
        if isinstance(dep, DataFuture):
            return f"DataFuture from task {dep.tid}"
        return repr(dep)

    def _dep_fail(self, record: TaskRecord, failed: list[tuple[BaseException, str]]) -> None:
        logger.info(
            "task %s (%s) dep_fail: dependencies %s failed",
            record.id,
            record.func_name,
            [t for _, t in failed],
        )
        self._finish_failed(record, DependencyError(failed, record.id), States.dep_fail)

    def _finish_ok(self, record: TaskRecord, result: Any, state: States) -> None:
        self._finalize(record, state, False)
        # Before the future completes (as in Parsl): an equal call made by whoever waits on
        # it finds the memo entry.
        if record.hashsum is not None or self._memo_every_task:
            self._memo_update(self.memoizer.update_memo_result, record, result)
        record.app_fu.set_result(result)  # type: ignore[union-attr]
        self._release_future(record)

    def _finish_failed(self, record: TaskRecord, exc: BaseException, state: States) -> None:
        self._finalize(record, state, True)
        if record.hashsum is not None or self._memo_every_task:
            self._memo_update(self.memoizer.update_memo_exception, record, exc)
        record.app_fu.set_exception(exc)  # type: ignore[union-attr]
        self._release_future(record)

    @staticmethod
    def _memo_update(
        update: Callable[[TaskRecord, Any], None], record: TaskRecord, outcome: Any
    ) -> None:
        try:
            update(record, outcome)
        except Exception:  # a plugin's bug must not leave the task's future unfinished
            logger.exception("memoizer failed to record task %s", record.id)

    def _release_future(self, record: TaskRecord) -> None:
        # With Config(garbage_collect=False) dfk.tasks keeps every record, and a user may
        # find a task's future there after dropping it (as in Parsl): keep it then.
        if self.config.garbage_collect:
            record.let_go_of_app_fu()

    def _finalize(self, record: TaskRecord, state: States, failed: bool) -> None:
        if task_log.enabled():
            task_log.state_changed(self.run_id, record, record.status, state)
        record.status = state
        record.time_returned = time.time()
        with self._lock:
            if failed:
                self._n_failed += 1
                self._n_failed_final += state is States.failed
            else:
                self._n_done += 1
                self._n_exec_done += state is States.exec_done
        self._active.pop(record.id, None)
        if self.config.garbage_collect:
            self.tasks.pop(record.id, None)
        ev = self._events
        if ev is not None:
            ev.finished(record, state)

    # ----------------------------------------------------------------- waiting and ending
    def wait_for_current_tasks(self) -> None:
        """Block until every task submitted so far has reached a final state."""
        while True:
            pending = [r.app_fu for r in list(self._active.values())]
            if not pending:
                return
            concurrent.futures.wait(pending)

    @property
    def task_count(self) -> int:
        return self._n_done + self._n_failed + len(self._active)

    def final_counts(self) -> tuple[int, int]:
        """(tasks that succeeded or were memoized, tasks that failed or dep_failed)."""
        return self._n_done, self._n_failed

    def run_status(self) -> str:
        if self._abort_reason is not None or self._active:
            return "aborted"
        return "failed" if self._n_failed else "completed"

    def cleanup(self) -> None:
        """Shut down executors (no worker process is left) and end the monitored run."""
        if self._cleanup_called:
            return
        self._cleanup_called = True
        status = self.run_status()
        logger.info(
            "taskscope run %s cleaning up: %s (%d done, %d failed, %d unfinished)",
            self.run_id,
            status,
            self._n_done,
            self._n_failed,
            len(self._active),
        )
        self.log_task_states()
        for ex in self.executors.values():
            try:
                ex.shutdown()
            except Exception:
                logger.exception("executor %s did not shut down cleanly", ex.label)
        self._fail_unfinished()
        try:
            self.memoizer.close()
        except Exception:
            logger.exception("memoizer did not close cleanly")
        if self.monitoring is not None:
            try:
                if self._events is not None:
                    self._events.workflow_end(status, self._n_exec_done, self._n_failed_final)
            finally:
                self.monitoring.close()
        self._restore_hooks()
        if DataFlowKernelLoader._dfk is self:
            DataFlowKernelLoader._dfk = None
        self._detach_logging()

    def _detach_logging(self) -> None:
        if self._log_handler is not None:
            detach_run_log(self._log_handler)
            self._log_handler = None
        if self._log_config is not None:
            from taskscope.logconfigs.base import oneshot_uninitialize_logging

            oneshot_uninitialize_logging(log_config=self._log_config)
            self._log_config = None

    @property
    def cleanup_called(self) -> bool:
        """True once ``cleanup()`` has started (Parsl's attribute)."""
        return self._cleanup_called

    @property
    def task_state_counts(self) -> dict[States, int]:
        """How many tasks of this run are in each state now (Parsl's ``task_state_counts``).

        Computed when asked: final states from the kernel's counters, the others from the
        tasks still active, so the hot path keeps no per-state counters.
        """
        counts = dict.fromkeys(States, 0)
        for record in list(self._active.values()):
            if record.status not in FINAL_STATES:  # a final one is in the counters below
                counts[record.status] += 1
        with self._lock:
            n_done, n_failed = self._n_done, self._n_failed
            n_exec_done, n_failed_final = self._n_exec_done, self._n_failed_final
        counts[States.exec_done] += n_exec_done
        counts[States.memo_done] += n_done - n_exec_done
        counts[States.failed] += n_failed_final
        counts[States.dep_fail] += n_failed - n_failed_final
        return counts

    def log_task_states(self) -> None:
        """Log how many tasks are in each state, in Parsl's words (at cleanup)."""
        logger.info("Summary of tasks in DFK:")
        for state, count in self.task_state_counts.items():
            logger.info("Tasks in state %s: %s", state, count)
        logger.info("End of summary")

    def _fail_unfinished(self) -> None:
        """Tasks that can no longer run fail, so nobody waits on them forever."""
        for record in list(self._active.values()):
            # (a record that is not final holds its future strongly: app_fu is not None)
            if record.status not in FINAL_STATES and not record.app_fu.done():  # type: ignore[union-attr]
                self._finish_failed(
                    record,
                    TaskscopeError(
                        f"task {record.id} ({record.func_name}) did not finish: the workflow was "
                        "cleaned up first"
                    ),
                    States.failed,
                )

    def atexit_cleanup(self) -> None:
        if not self._cleanup_called:
            self.cleanup()

    def _restore_hooks(self) -> None:
        try:
            atexit.unregister(self.atexit_cleanup)
        except Exception:  # noqa: BLE001
            pass
        if sys.excepthook == self._excepthook:
            sys.excepthook = self._previous_excepthook
        if (
            self._previous_sigterm is not None
            and threading.current_thread() is threading.main_thread()
        ):
            if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _excepthook(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # The user's script died (an exception or Ctrl-C): the run is aborted, not failed.
        self._abort_reason = self._abort_reason or exc_type.__name__
        self._previous_excepthook(exc_type, exc, tb)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._abort_reason = "SIGTERM"
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:
            # Unwind the main thread; cleanup runs from __exit__ or atexit, never inside
            # the handler, which may have interrupted code holding a kernel lock.
            raise SystemExit(128 + signum)


class DataFlowKernelLoader:
    """Holds the one DataFlowKernel of this process (``taskscope.load`` / ``dfk`` / ``clear``)."""

    _dfk: DataFlowKernel | None = None

    @classmethod
    def load(cls, config: Config | None = None) -> DataFlowKernel:
        if cls._dfk is not None:
            raise ConfigurationError(
                "a config is already loaded; call "
                "taskscope.dfk().cleanup() or taskscope.clear() first"
            )
        cls._dfk = DataFlowKernel(config)
        return cls._dfk

    @classmethod
    def clear(cls) -> None:
        cls._dfk = None

    @classmethod
    def dfk(cls) -> DataFlowKernel:
        if cls._dfk is None:
            raise NoDataFlowKernelError("Must first load config")
        return cls._dfk

    @classmethod
    def wait_for_current_tasks(cls) -> None:
        cls.dfk().wait_for_current_tasks()
