"""``AppFuture`` (what an app call returns) and ``DataFuture`` (one per output File)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from taskscope.data_provider.files import File

if TYPE_CHECKING:
    from taskscope.dataflow.taskrecord import TaskRecord


class AppFuture(Future):
    """The future result of one app call.

    ``tid`` is the task id, ``task_record`` the DataFlowKernel's record of the task (state,
    tries, failures), ``outputs`` the DataFutures of the ``outputs=[File(...)]`` argument.
    """

    def __init__(self, task_record: TaskRecord):
        super().__init__()
        self.task_record = task_record
        self._outputs: list[DataFuture] = []
        self._stdout_future: DataFuture | None = None
        self._stderr_future: DataFuture | None = None

    @property
    def tid(self) -> int:
        return self.task_record.id

    @property
    def task_def(self) -> TaskRecord:
        return self.task_record

    @property
    def outputs(self) -> list[DataFuture]:
        return self._outputs

    @property
    def stdout(self) -> Any:
        """The ``stdout=`` argument, or for ``stdout=File(...)`` that file's DataFuture."""
        return self._stdout_future or self.task_record.kwargs.get("stdout")

    @property
    def stderr(self) -> Any:
        """The ``stderr=`` argument, or for ``stderr=File(...)`` that file's DataFuture."""
        return self._stderr_future or self.task_record.kwargs.get("stderr")

    def __getitem__(self, key: Any) -> AppFuture:
        """``fut[key]``: a future of ``fut.result()[key]``, without waiting (Parsl's lifting).

        It is a task of its own in the kernel's internal thread pool, depending on this one.
        """
        return _lift(self, _deferred_getitem, key)

    def __getattr__(self, name: str) -> AppFuture:
        """``fut.attr``: a future of ``fut.result().attr``. Names starting with ``_`` are
        not lifted (they are Python's protocols and private attributes)."""
        if name.startswith("_"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return _lift(self, _deferred_getattr, name)

    def task_status(self) -> str:
        """The task's current state name, e.g. ``'launched'``."""
        return self.task_record.status.name

    def cancel(self) -> bool:
        raise NotImplementedError("taskscope cannot cancel a submitted task")

    def __repr__(self) -> str:
        return (
            f"<AppFuture task {self.tid} {self.task_record.func_name} "
            f"state={self.task_record.status.name}>"
        )


def _deferred_getitem(o: Any, key: Any) -> Any:
    return o[key]


def _deferred_getattr(o: Any, name: str) -> Any:
    return getattr(o, name)


def _lift(parent: AppFuture, func: Any, key: Any) -> AppFuture:
    record = parent.__dict__.get("task_record")
    dfk = getattr(record, "dfk", None) if record is not None else None
    if dfk is None:
        raise AttributeError("this AppFuture belongs to no DataFlowKernel; nothing to lift")
    from taskscope.dataflow.dflow import INTERNAL_ONLY

    return dfk.submit(
        func, (parent, key), executors=INTERNAL_ONLY, func_name=func.__name__.lstrip("_")
    )


class DataFuture(Future):
    """A File that exists once the task writing it has finished.

    ``result()`` returns the File; the future fails if the app that writes it fails.
    """

    def __init__(self, app_fut: AppFuture, file_obj: File, tid: int | None = None):
        super().__init__()
        if not isinstance(file_obj, File):
            raise TypeError(
                f"outputs=[...] items must be File objects, got {type(file_obj).__name__}"
            )
        self.app_fut = app_fut
        self.file_obj = file_obj
        self._tid = tid
        app_fut.add_done_callback(self._parent_done)

    def _parent_done(self, parent: Future) -> None:
        exc = parent.exception()
        if exc is None:
            self.set_result(self.file_obj)
        else:
            self.set_exception(exc)

    @property
    def tid(self) -> int | None:
        return self._tid

    @property
    def filepath(self) -> str:
        return self.file_obj.filepath

    @property
    def filename(self) -> str:
        return self.file_obj.filename

    def cancel(self) -> bool:
        raise NotImplementedError("taskscope cannot cancel a DataFuture")

    def __repr__(self) -> str:
        return f"<DataFuture {self.file_obj.url} of task {self._tid}>"
