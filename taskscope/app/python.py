"""Python and join apps."""

from __future__ import annotations

import ctypes
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from taskscope.app.app import AppBase
from taskscope.dataflow.futures import AppFuture
from taskscope.errors import AppTimeout


def _takes_keyword(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _call_until(func: Callable[..., Any], walltime: float, args: tuple, kwargs: dict) -> Any:
    target = threading.get_ident()
    lock = threading.Lock()
    finished = False

    def expire() -> None:
        with lock:
            if not finished:  # raise AppTimeout inside the thread running the app
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(target), ctypes.py_object(AppTimeout)
                )

    timer = threading.Timer(walltime, expire)
    timer.daemon = True
    timer.start()
    try:
        return func(*args, **kwargs)
    finally:
        with lock:
            finished = True
        timer.cancel()


def run_with_walltime(func: Callable[..., Any], limit: float, /, *args: Any, **kwargs: Any) -> Any:
    """Runs where the task runs: ``func`` is interrupted with AppTimeout after ``walltime``.

    Like Parsl, this interrupts Python code between bytecodes; a call blocked inside C code
    is interrupted when it returns to Python.
    """
    if not _takes_keyword(func, "walltime"):
        kwargs.pop("walltime", None)
    try:
        return _call_until(func, limit, args, kwargs)
    except AppTimeout:
        raise AppTimeout(
            f"python app {getattr(func, '__name__', func)!r} exceeded its walltime of {limit} s"
        ) from None


def timeout(func: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """``func`` interrupted with AppTimeout after ``seconds`` (Parsl's
    ``parsl.app.python.timeout``); the timer is cancelled when ``func`` returns or raises."""

    @functools.wraps(func)
    def limited(*args: Any, **kwargs: Any) -> Any:
        return _call_until(func, seconds, args, kwargs)

    return limited


class PythonApp(AppBase):
    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        func = self.func
        invocation = {**self.kwargs, **kwargs} if self.kwargs else kwargs
        walltime = invocation.get("walltime")
        if walltime is not None:
            self._check_walltime(walltime)
            # Named like the app (Parsl wraps it too): task_record.func.__name__ stays the app's.
            func = functools.update_wrapper(
                functools.partial(run_with_walltime, self.func, walltime), self.func
            )
        return self._submit(func, args, invocation)


class JoinApp(AppBase):
    def __call__(self, *args: Any, **kwargs: Any) -> AppFuture:
        invocation = {**self.kwargs, **kwargs} if self.kwargs else kwargs
        return self._submit(self.func, args, invocation, join=True)
