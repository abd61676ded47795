"""How calls and results cross the DFK <-> worker pipes.

This channel connects our own processes on this machine, so it uses pickle (cloudpickle for
functions and for whatever plain pickle cannot handle). Monitoring messages never use it.

Each function is cloudpickled once and shipped to each worker once: the call pickler swaps
every function object for a small integer key (pickle's ``persistent_id``), and the worker
keeps a table of keys to functions. A per-task wrapper object holding the app function
therefore costs only its own few bytes per task.

Other objects that many calls share can travel the same way: instances of a ``ShipOnce``
type (``taskscope/ship_once.py``: immutable, hashable, weak-referenceable) are sent to each
worker once too. The monitoring wrapper's hub target (address, port, run id, settings) is
one: pickled with every task it cost ~6 µs and ~165 bytes per task.
"""

from __future__ import annotations

import functools
import inspect
import io
import itertools
import pickle
import threading
import traceback
import types
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle

from taskscope.errors import RemoteExceptionWrapper, SerializationError
from taskscope.ship_once import ShipOnce

PROTOCOL = 5


class _NeedsCloudpickle(Exception):
    """Plain pickle would pickle this by reference to ``__main__``, which workers lack."""


class FunctionRegistry:
    """Function object -> key, and key -> cloudpickled bytes (DFK side)."""

    def __init__(self) -> None:
        self._keys: weakref.WeakKeyDictionary[Callable[..., Any], int] = weakref.WeakKeyDictionary()
        self._blobs: dict[int, bytes] = {}
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._local = threading.local()

    def key_for(self, func: Any) -> int:
        key = self._keys.get(func)
        if key is not None:
            return key
        try:
            blob = cloudpickle.dumps(func, protocol=PROTOCOL)
        except Exception as e:  # noqa: BLE001
            raise SerializationError(
                f"function {getattr(func, '__qualname__', func)!r} cannot be serialised: "
                f"{type(e).__name__}: {e}"
            ) from None
        with self._lock:
            key = self._keys.get(func)
            if key is None:
                key = next(self._counter)
                self._blobs[key] = blob
                self._keys[func] = key
                weakref.finalize(func, self._blobs.pop, key, None)
        return key

    def blob(self, key: int) -> bytes:
        return self._blobs[key]

    def dump_fast(self, obj: Any) -> tuple[bytes, list[int]]:
        """Plain-pickle ``obj`` with a pickler kept per thread (making one costs more
        than a small call's whole pickling)."""
        local = self._local
        pickler = getattr(local, "pickler", None)
        if pickler is None:
            local.buf = io.BytesIO()
            pickler = local.pickler = _FastPickler(local.buf, self, True)
        buf = local.buf
        buf.seek(0)
        buf.truncate()
        pickler.clear_memo()
        pickler.keys = []
        try:
            pickler.dump(obj)
        except BaseException:
            local.pickler = None  # its state after a failed dump is not worth trusting
            raise
        return buf.getvalue(), pickler.keys


_ship_once_types: dict[type, bool] = {types.FunctionType: True}


def _ships_once(cls: type) -> bool:
    """Whether instances of ``cls`` are sent once per worker and referenced by key."""
    flag = _ship_once_types.get(cls)
    if flag is None:
        flag = _ship_once_types[cls] = issubclass(cls, ShipOnce)
    return flag


def _make_pickler(base: type) -> type:
    class CallPickler(base):
        def __init__(self, file: io.BytesIO, registry: FunctionRegistry, strict_main: bool):
            super().__init__(file, protocol=PROTOCOL)
            self.registry = registry
            self.keys: list[int] = []
            self.strict_main = strict_main

        def persistent_id(self, obj: Any) -> Any:
            if _ships_once(type(obj)):
                key = self.registry.key_for(obj)
                self.keys.append(key)
                return key
            if self.strict_main and type(obj) is type and obj.__module__ == "__main__":
                raise _NeedsCloudpickle
            return None

    return CallPickler


_FastPickler = _make_pickler(pickle.Pickler)
_CloudPickler = _make_pickler(cloudpickle.CloudPickler)


def _dump(
    pickler_class: type, obj: Any, registry: FunctionRegistry, strict_main: bool
) -> tuple[bytes, list[int]]:
    buf = io.BytesIO()
    p = pickler_class(buf, registry, strict_main)
    p.dump(obj)
    return buf.getvalue(), p.keys


def pack_call(
    func: Callable[..., Any], args: tuple, kwargs: dict, registry: FunctionRegistry
) -> tuple[bytes, tuple[int, ...]]:
    """Serialise one call; SerializationError names the argument that cannot travel."""
    call = (func, args, kwargs)
    try:
        payload, keys = registry.dump_fast(call)
    except SerializationError:
        raise
    except Exception:  # noqa: BLE001
        try:
            payload, keys = _dump(_CloudPickler, call, registry, False)
        except SerializationError:
            raise
        except Exception as e:  # noqa: BLE001
            raise SerializationError(_explain(func, args, kwargs, registry, e)) from None
    return payload, tuple(keys) if len(keys) < 2 else tuple(set(keys))


def _parameter_names(func: Callable[..., Any], args: tuple, kwargs: dict) -> list[str] | None:
    candidates = [func, getattr(func, "__wrapped__", None)]
    if isinstance(func, functools.partial) and func.args and callable(func.args[0]):
        candidates.append(func.args[0])
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            params = list(inspect.signature(candidate).parameters.values())
        except (TypeError, ValueError):
            continue
        positional = [
            p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        if len(positional) >= len(args) and positional:
            return positional[: len(args)]
    return None


def _explain(
    func: Callable[..., Any],
    args: tuple,
    kwargs: dict,
    registry: FunctionRegistry,
    error: Exception,
) -> str:
    names = _parameter_names(func, args, kwargs)
    for i, value in enumerate(args):
        try:
            _dump(_CloudPickler, value, registry, False)
        except Exception as e:  # noqa: BLE001
            label = f"argument {i}" + (f" ({names[i]!r})" if names else "")
            return (
                f"{label} of type {type(value).__name__} cannot be serialised: "
                f"{type(e).__name__}: {e}"
            )
    for key, value in kwargs.items():
        try:
            _dump(_CloudPickler, value, registry, False)
        except Exception as e:  # noqa: BLE001
            return (
                f"keyword argument {key!r} of type {type(value).__name__} cannot be "
                f"serialised: {type(e).__name__}: {e}"
            )
    return (
        f"the call to {getattr(func, '__name__', func)!r} cannot be serialised: "
        f"{type(error).__name__}: {error}"
    )


# --------------------------------------------------------------------------- worker side
class CallUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, functions: dict[int, Any]):
        super().__init__(file)
        self.functions = functions

    def persistent_load(self, pid: Any) -> Any:
        fn = self.functions.get(pid)
        if fn is None:
            raise SerializationError(f"function #{pid} was never received by this worker")
        if isinstance(fn, BaseException):
            raise fn
        return fn


def load_call(payload: bytes, functions: dict[int, Any]) -> tuple[Callable[..., Any], tuple, dict]:
    return CallUnpickler(io.BytesIO(payload), functions).load()


def load_function(blob: bytes) -> Any:
    """A function for the worker's table, or the exception that stops it from loading."""
    try:
        return cloudpickle.loads(blob)
    except Exception as e:  # noqa: BLE001
        return SerializationError(
            f"a function could not be loaded on the worker: {type(e).__name__}: {e}"
        )


def dump_result(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except Exception:  # noqa: BLE001
        try:
            return cloudpickle.dumps(value, protocol=PROTOCOL)
        except Exception as e:  # noqa: BLE001
            raise SerializationError(
                f"the result of type {type(value).__name__} cannot be "
                f"serialised: {type(e).__name__}: {e}"
            ) from None


def dump_exception(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """(pickled exception or None, type name, message, formatted traceback)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    blob: bytes | None
    try:
        blob = cloudpickle.dumps(exc, protocol=PROTOCOL)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt; find out here
    except Exception:  # noqa: BLE001
        blob = None
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return blob, name, str(exc), tb


def load_exception(packed: tuple[bytes | None, str, str, str]) -> BaseException:
    blob, name, message, tb = packed
    exc: BaseException
    try:
        exc = pickle.loads(blob) if blob is not None else RemoteExceptionWrapper(name, message)
    except Exception:  # noqa: BLE001
        exc = RemoteExceptionWrapper(name, message)
    try:
        exc._taskscope_remote_traceback = tb  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001
        pass
    return exc
