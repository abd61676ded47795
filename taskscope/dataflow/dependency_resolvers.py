"""How the DataFlowKernel finds the futures an app call depends on
(``parsl.dataflow.dependency_resolvers``).

The default (``SHALLOW_DEPENDENCY_RESOLVER``, or ``Config(dependency_resolver=None)``) looks
at each positional argument, each keyword argument and each item of ``inputs=[...]``.
``DEEP_DEPENDENCY_RESOLVER`` also looks inside lists, tuples, sets and dicts (keys and
values), at any depth, and passes the app the same structure with each future replaced by
its result. Both are ``functools.singledispatch`` functions, so a program can register its
own container types, as in Parsl.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import singledispatch
from typing import Any


@dataclass
class DependencyResolver:
    """``traverse_to_gather(arg)``: the futures in ``arg`` to wait for;
    ``traverse_to_unwrap(arg)``: ``arg`` with those futures replaced by their results."""

    traverse_to_gather: Callable[[Any], Sequence[Future]]
    traverse_to_unwrap: Callable[[Any], Any]


@singledispatch
def shallow_traverse_to_gather(o: Any) -> list[Future]:
    return []


@shallow_traverse_to_gather.register
def _(fut: Future) -> list[Future]:
    return [fut]


@singledispatch
def shallow_traverse_to_unwrap(o: Any) -> Any:
    return o


@shallow_traverse_to_unwrap.register
def _(fut: Future) -> Any:
    return fut.result()


@singledispatch
def deep_traverse_to_gather(o: Any) -> list[Future]:
    return []


@deep_traverse_to_gather.register
def _(fut: Future) -> list[Future]:
    return [fut]


@deep_traverse_to_gather.register(list)
@deep_traverse_to_gather.register(tuple)
@deep_traverse_to_gather.register(set)
@deep_traverse_to_gather.register(frozenset)
def _(items: Any) -> list[Future]:
    return [f for item in items for f in deep_traverse_to_gather(item)]


@deep_traverse_to_gather.register(dict)
def _(mapping: dict) -> list[Future]:
    found: list[Future] = []
    for key, value in mapping.items():
        found.extend(deep_traverse_to_gather(key))
        found.extend(deep_traverse_to_gather(value))
    return found


@singledispatch
def deep_traverse_to_unwrap(o: Any) -> Any:
    return o


@deep_traverse_to_unwrap.register
def _(fut: Future) -> Any:
    return fut.result()


@deep_traverse_to_unwrap.register(list)
@deep_traverse_to_unwrap.register(tuple)
@deep_traverse_to_unwrap.register(set)
@deep_traverse_to_unwrap.register(frozenset)
def _(items: Any) -> Any:
    unwrapped = [deep_traverse_to_unwrap(item) for item in items]
    if hasattr(items, "_fields"):  # a namedtuple takes its fields positionally
        return type(items)(*unwrapped)
    return type(items)(unwrapped)


@deep_traverse_to_unwrap.register(dict)
def _(mapping: dict) -> dict:
    return {
        deep_traverse_to_unwrap(key): deep_traverse_to_unwrap(value)
        for key, value in mapping.items()
    }


SHALLOW_DEPENDENCY_RESOLVER = DependencyResolver(
    traverse_to_gather=shallow_traverse_to_gather,
    traverse_to_unwrap=shallow_traverse_to_unwrap,
)
DEEP_DEPENDENCY_RESOLVER = DependencyResolver(
    traverse_to_gather=deep_traverse_to_gather,
    traverse_to_unwrap=deep_traverse_to_unwrap,
)
