"""Memoization: equal calls of a ``cache=True`` app within a run reuse the first result.

The key hashes the function (module, name and source) and the resolved arguments.
Arguments are reduced to a canonical form first so that equal values hash equally
(dict order, File objects, tuples vs lists stay distinct as in Python equality).
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from taskscope.data_provider.files import File

_SPECIAL_KWARGS = ("stdout", "stderr")


class NotMemoizable(Exception):
    """An argument has no stable identity, so the call is run instead of looked up."""


def _canonical(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, File):
        return ("__file__", value.url)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_canonical(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(repr(_canonical(v)) for v in value)))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((repr(k), _canonical(v)) for k, v in value.items())))
    try:
        return ("pickle", type(value).__qualname__, pickle.dumps(value, protocol=4))
    except Exception as e:  # noqa: BLE001
        raise NotMemoizable(f"{type(value).__name__} argument cannot be hashed: {e}") from None


def function_identity(func: Callable[..., Any]) -> str:
    """A stable string for a function: its name plus a hash of its source if available."""
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        source = code.co_code.hex() if code is not None else ""
    return name + ":" + hashlib.sha256(source.encode()).hexdigest()


class Memoizer:
    """Maps call hashes to the future of the first successful call in this run."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._table: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._func_ids: dict[int, tuple[Callable[..., Any], str]] = {}

    def make_hash(
        self, func: Callable[..., Any], args: tuple, kwargs: dict, ignore_for_cache: list[str]
    ) -> str:
        entry = self._func_ids.get(id(func))
        if entry is None or entry[0] is not func:
            entry = (func, function_identity(func))
            self._func_ids[id(func)] = entry
        kw = {
            k: v
            for k, v in kwargs.items()
            if k not in ignore_for_cache and k not in _SPECIAL_KWARGS
        }
        blob = pickle.dumps((entry[1], _canonical(args), _canonical(kw)), protocol=4)
        return hashlib.md5(blob).hexdigest()

    def lookup(self, hashsum: str) -> Future | None:
        return self._table.get(hashsum)

    def record(self, hashsum: str, future: Future) -> None:
        """Remember a successful call (failures are not memoized, as in Parsl)."""
        with self._lock:
            self._table.setdefault(hashsum, future)
