"""The DataFlowKernel's record of one task (fields named like Parsl's ``TaskRecord``)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from taskscope.dataflow.states import States

if TYPE_CHECKING:
    from taskscope.dataflow.futures import AppFuture


@dataclass(slots=True)
class TryFailureRecord:
    """Why one try of a task failed; kept per try so monitoring can store each one."""

    try_id: int
    exception: BaseException
    traceback: str
    exit_code: int | None
    time: float


@dataclass(slots=True, eq=False)
class TaskRecord:
    id: int
    func: Callable[..., Any]
    func_name: str
    executor: str
    args: tuple
    kwargs: dict
    time_invoked: float
    memoize: bool = False
    join: bool = False
    ignore_for_cache: list[str] = field(default_factory=list)
    resource_specification: dict = field(default_factory=dict)
    status: States = States.unsched
    depends: list[Future] = field(default_factory=list)
    # The AppFuture, or once the task is final a weak reference to it (see ``app_fu``).
    _app_fu: Any = field(default=None, repr=False)
    exec_fu: Future | None = None
    try_id: int = 0
    fail_count: int = 0
    fail_cost: float = 0.0
    fail_history: list[str] = field(default_factory=list)
    try_failures: list[TryFailureRecord] = field(default_factory=list)
    hashsum: str | None = None
    from_memo: bool = False
    time_returned: float | None = None
    try_time_launched: float | None = None
    try_time_returned: float | None = None
    joins: list[Future] | None = None
    # Dependencies still running, plus one held by submit() until all callbacks are added.
    deps_remaining: int = 1
    # The DataFlowKernel the task belongs to (Parsl's ``task_record['dfk']``): lifted
    # ``fut[key]`` / ``fut.attr`` tasks go to the same kernel.
    dfk: Any = field(default=None, repr=False)

    def __getitem__(self, name: str) -> Any:
        """Parsl's task record is a dict; ``record['status']`` keeps ported code working."""
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, value: Any) -> None:
        """``record['hashsum'] = ...``, as Parsl memoizer plugins write it."""
        if name not in self.__slots__ and name != "app_fu":
            raise KeyError(name)
        setattr(self, name, value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and hasattr(self, name)

    @property
    def app_fu(self) -> AppFuture | None:
        held = self._app_fu
        return held() if type(held) is weakref.ref else held

    @app_fu.setter
    def app_fu(self, future: AppFuture | None) -> None:
        self._app_fu = future

    def let_go_of_app_fu(self) -> None:
        """Once the task is final its record needs its future no more, and the future
        refers to its record (``task_record``): holding it weakly from here on lets both go
        when the user drops the future, instead of at the next full garbage collection, whose
        cost grows with every finished task waiting for it."""
        if self._app_fu is not None and type(self._app_fu) is not weakref.ref:
            self._app_fu = weakref.ref(self._app_fu)

    @property
    def depends_ids(self) -> list[int]:
        return [tid for d in self.depends if (tid := getattr(d, "tid", None)) is not None]
