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
        return self.task_record.kwargs.get("stdout")

    @property
    def stderr(self) -> Any:
        return self.task_record.kwargs.get("stderr")

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
