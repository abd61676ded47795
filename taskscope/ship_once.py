"""``ShipOnce``: the declared contract for objects that many calls share.

An executor that pickles each call to send it to a worker process (``HighThroughputExecutor``)
can send an instance of a ``ShipOnce`` type to each worker once and refer to it by a small key
in every later call. The monitoring wrapper's target (address, port, run id, settings) is the
case that matters: pickled with every task it cost ~6 µs and ~165 bytes per task.

It lives outside the layers because both sides use it: the capture side declares its types,
the executors check for them, and neither may import the other's internals.
"""

from __future__ import annotations

from abc import ABC


class ShipOnce(ABC):  # noqa: B024 - a marker: it declares a contract, it has no methods
    """Instances are immutable, hashable and weak-referenceable, and many calls share one.

    Declare a type with ``ShipOnce.register(cls)`` (a virtual subclass, so msgspec structs and
    other classes with their own base qualify) or by subclassing."""

    __slots__ = ()
