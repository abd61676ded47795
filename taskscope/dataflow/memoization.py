"""Memoization: equal calls of a ``cache=True`` app reuse the outcome of the first.

The plugin API is Parsl's (``parsl.dataflow.memoization``): ``Config(memoizer=...)`` takes a
``Memoizer``; the DataFlowKernel calls ``start`` once, ``check_memo(task_record)`` when a
task's arguments are resolved (a Future returned there is the task's outcome, the task is
not run), and ``update_memo_result`` / ``update_memo_exception`` when a task ends.
``BasicMemoizer`` is the default: a table from call hash to the first call's AppFuture, kept
for the run (results and exceptions both, as in Parsl), and optionally checkpoint files that
carry successful results to later runs (``taskscope/dataflow/checkpoint.py``).

``id_for_memo`` turns one argument into bytes that are equal for "the same" value; register
an implementation for your own types with ``@id_for_memo.register(MyType)``. A type with no
implementation makes a ``cache=True`` call fail with ValueError, as in Parsl: hashing its
pickle would call two objects the same whenever their attributes match, whatever their
``__eq__`` says.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import pickle
import types
from abc import ABCMeta, abstractmethod
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from taskscope.data_provider.files import File
from taskscope.dataflow.checkpoint import (
    CHECKPOINT_MODES,
    CheckpointWriter,
    PeriodicCheckpoint,
    get_all_checkpoints,
    load_checkpoints,
    parse_period,
)
from taskscope.errors import ConfigurationError

if TYPE_CHECKING:
    from taskscope.dataflow.taskrecord import TaskRecord

logger = logging.getLogger(__name__)


@functools.singledispatch
def id_for_memo(obj: object, output_ref: bool = False) -> bytes:
    """Bytes identifying ``obj`` for memoization; ``output_ref`` is True for items of
    ``outputs=[...]`` (a File there is a name, not content)."""
    raise ValueError(
        f"unknown type for memoization: {type(obj).__qualname__}; register one with "
        "@taskscope.dataflow.memoization.id_for_memo.register"
    )


@id_for_memo.register(str)
@id_for_memo.register(int)
@id_for_memo.register(float)
@id_for_memo.register(bytes)
@id_for_memo.register(complex)
@id_for_memo.register(type(None))
def _id_plain(obj: object, output_ref: bool = False) -> bytes:
    # The type is part of the identity: 1, 1.0 and True are equal in Python, but an app
    # may well return different things for them.
    return pickle.dumps((type(obj).__name__, obj), protocol=4)


@id_for_memo.register(list)
@id_for_memo.register(tuple)
def _id_sequence(seq: list | tuple, output_ref: bool = False) -> bytes:
    if type(seq) not in (list, tuple):
        raise ValueError(f"unknown type for memoization: {type(seq).__qualname__} (a subclass)")
    return pickle.dumps(
        (type(seq).__name__, [id_for_memo(e, output_ref=output_ref) for e in seq]), protocol=4
    )


@id_for_memo.register(set)
@id_for_memo.register(frozenset)
def _id_set(items: set | frozenset, output_ref: bool = False) -> bytes:
    return pickle.dumps(("set", sorted(id_for_memo(e, output_ref=output_ref) for e in items)))


@id_for_memo.register(dict)
def _id_dict(mapping: dict, output_ref: bool = False) -> bytes:
    if type(mapping) is not dict:
        raise ValueError(f"unknown type for memoization: {type(mapping).__qualname__} (a subclass)")
    # Sorted by each key's identity, so insertion order does not matter (and keys of
    # mixed types, which sorted() would refuse, are fine).
    pairs = sorted(
        (id_for_memo(k), id_for_memo(v, output_ref=output_ref)) for k, v in mapping.items()
    )
    return pickle.dumps(("dict", pairs), protocol=4)


@id_for_memo.register(File)
def _id_file(file: File, output_ref: bool = False) -> bytes:
    return pickle.dumps(("File", file.url), protocol=4)


@functools.lru_cache(maxsize=4096)
def _function_identity(func: types.FunctionType) -> bytes:
    """Module, qualified name and a hash of the source: two lambdas of one module differ."""
    try:
        source = inspect.getsource(func).encode()
    except (OSError, TypeError):
        source = func.__code__.co_code
    return pickle.dumps(
        ("function", func.__module__, func.__qualname__, hashlib.sha256(source).hexdigest())
    )


@id_for_memo.register(types.FunctionType)
def _id_function(func: types.FunctionType, output_ref: bool = False) -> bytes:
    return _function_identity(func)


@id_for_memo.register(functools.partial)
def _id_partial(p: functools.partial, output_ref: bool = False) -> bytes:
    # Bash apps and apps with a walltime run as partials of the user's function.
    return pickle.dumps(
        ("partial", id_for_memo(p.func), id_for_memo(p.args), id_for_memo(p.keywords))
    )


def make_hash(task: TaskRecord) -> str:
    """The memo key of a task: its function, arguments and keyword arguments (minus those
    in ``ignore_for_cache``), with ``outputs`` hashed as output references."""
    kwargs = dict(task.kwargs)
    for name in task.ignore_for_cache:
        kwargs.pop(name, None)
    parts = []
    if "outputs" in kwargs:
        parts.append(id_for_memo(kwargs.pop("outputs"), output_ref=True))
    parts.append(id_for_memo(kwargs))
    parts.append(id_for_memo(task.func))
    parts.append(id_for_memo(tuple(task.args)))
    return hashlib.md5(b"".join(parts)).hexdigest()


class Memoizer(metaclass=ABCMeta):
    """What the DataFlowKernel asks of a memoization plugin (see the module docstring)."""

    @abstractmethod
    def start(self, *, run_dir: str, config_run_dir: str) -> None: ...

    @abstractmethod
    def check_memo(self, task: TaskRecord) -> Future | None: ...

    @abstractmethod
    def update_memo_result(self, task: TaskRecord, r: Any) -> None: ...

    @abstractmethod
    def update_memo_exception(self, task: TaskRecord, e: BaseException) -> None: ...

    @abstractmethod
    def close(self) -> None: ...


class BasicMemoizer(Memoizer):
    """Reuses the outcome of an earlier equal call of a ``cache=True`` app.

    Calls are not collapsed while the first is running: only an outcome that exists when
    the equal call is ready is reused. ``memoize=False`` turns memoization off for every
    app (``Config(app_cache=False)`` does the same).

    Checkpointing, as in Parsl: ``checkpoint_mode`` ``'task_exit'`` writes each successful
    result to ``<run_dir>/checkpoint/tasks.pkl`` as its task ends, ``'periodic'`` every
    ``checkpoint_period`` (``'HH:MM:SS'``), ``'dfk_exit'`` at cleanup, ``'manual'`` when
    ``checkpoint()`` is called (and at cleanup). ``checkpoint_files`` lists checkpoint
    directories to load results from; by default, with a mode set, every earlier run's.
    """

    def __init__(
        self,
        *,
        checkpoint_files: Sequence[str] | None = None,
        checkpoint_period: str | None = None,
        checkpoint_mode: str | None = None,
        memoize: bool = True,
    ):
        if checkpoint_mode is not None and checkpoint_mode not in CHECKPOINT_MODES:
            raise ConfigurationError(
                f"checkpoint_mode must be one of {', '.join(CHECKPOINT_MODES)} or None, "
                f"got {checkpoint_mode!r}"
            )
        if checkpoint_mode == "periodic":
            if checkpoint_period is None:
                raise ConfigurationError(
                    "Checkpoint period must be specified with periodic checkpoint mode"
                )
            try:
                self._period_seconds = parse_period(checkpoint_period)
            except ValueError as e:
                raise ConfigurationError(str(e)) from None
        if checkpoint_files is not None and (
            isinstance(checkpoint_files, (str, bytes)) or not isinstance(checkpoint_files, Iterable)
        ):
            raise TypeError("checkpoint_files must be a list of checkpoint directories")
        if not isinstance(memoize, bool):
            raise TypeError(f"BasicMemoizer(memoize=...) must be a bool, got {memoize!r}")
        self.checkpoint_files = checkpoint_files
        self.checkpoint_period = checkpoint_period
        self.checkpoint_mode = checkpoint_mode
        self.memoize = memoize
        self.memo_lookup_table: dict[str, Future] = {}
        self.run_dir: str | None = None
        self._writer: CheckpointWriter | None = None
        self._periodic: PeriodicCheckpoint | None = None

    def start(self, *, run_dir: str, config_run_dir: str) -> None:
        self.run_dir = run_dir
        self.config_run_dir = config_run_dir
        if self.checkpoint_files is not None:
            directories = list(self.checkpoint_files)
        elif self.checkpoint_mode is not None:
            # Every earlier run's (this run's directory has no checkpoint yet).
            directories = get_all_checkpoints(config_run_dir)
        else:
            directories = []
        loaded = load_checkpoints(directories) if directories else {}
        self.memo_lookup_table = loaded if self.memoize else {}
        if self.checkpoint_mode is not None:
            self._writer = CheckpointWriter(run_dir)
            if self.checkpoint_mode == "periodic":
                self._periodic = PeriodicCheckpoint(self._writer, self._period_seconds)

    def check_memo(self, task: TaskRecord) -> Future | None:
        if not self.memoize or not task.memoize:
            task.hashsum = None
            return None
        hashsum = make_hash(task)
        task.hashsum = hashsum
        return self.memo_lookup_table.get(hashsum)

    def update_memo_result(self, task: TaskRecord, r: Any) -> None:
        self._update_memo(task)
        writer = self._writer
        # Memo hits too, as in Parsl: a checkpoint carries what its run used, wherever from.
        if writer is not None and isinstance(task.hashsum, str):
            if self.checkpoint_mode == "task_exit":
                writer.write([(task.hashsum, r)])
            else:
                writer.add(task.hashsum, r)

    def update_memo_exception(self, task: TaskRecord, e: BaseException) -> None:
        self._update_memo(task)  # exceptions are memoized in the run, never checkpointed

    def _update_memo(self, task: TaskRecord) -> None:
        if not self.memoize or not task.memoize or not isinstance(task.hashsum, str):
            return
        future = task.app_fu
        if future is not None:
            # A dict store is atomic under the GIL; the last outcome wins, as in Parsl.
            self.memo_lookup_table[task.hashsum] = future

    def checkpoint(self) -> None:
        """Write the results not yet checkpointed now (``checkpoint_mode='manual'``)."""
        if self._writer is None:
            raise ConfigurationError("checkpoint() needs a checkpoint_mode; this memoizer has none")
        self._writer.write()

    def close(self) -> None:
        """Stop the periodic checkpoint and write what is left (any mode but task_exit's,
        which has nothing left)."""
        if self._periodic is not None:
            self._periodic.stop()
            self._periodic = None
        if self._writer is not None:
            self._writer.write()
