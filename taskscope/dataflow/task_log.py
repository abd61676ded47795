"""Log records about tasks, with structured attributes for log processors.

Each record carries ``taskscope.dfk``, ``taskscope.task`` and, as it applies,
``taskscope.task_state``, ``taskscope.app_name``, ``taskscope.dependency_task``,
``taskscope.executor`` and ``taskscope.executor_task``, and the same values under Parsl's
``parsl.*`` names so that ported log processing keeps working (``JSONLogging`` writes both).

They are DEBUG records, emitted only when DEBUG is enabled for ``taskscope.dataflow``: at
INFO, four lines a task into the run log would cost more than the rest of a no-op task's
path through the kernel (Parsl logs them at INFO).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskscope.dataflow.taskrecord import TaskRecord

logger = logging.getLogger("taskscope.dataflow.dflow")


def _extra(run_id: str, task_id: int, **fields: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for name, value in (("dfk", run_id), ("task", task_id), *fields.items()):
        extra[f"taskscope.{name}"] = value
        extra[f"parsl.{name}"] = value
    return extra


def enabled() -> bool:
    return logger.isEnabledFor(logging.DEBUG)


def state_changed(run_id: str, record: TaskRecord, old: Any, new: Any) -> None:
    extra = _extra(run_id, record.id, task_state=new.name)
    if old is None:
        logger.debug("Task %s initializing state to %s", record.id, new.name, extra=extra)
    else:
        logger.debug(
            "Task %s changing state from %s to %s", record.id, old.name, new.name, extra=extra
        )


def submitted(run_id: str, record: TaskRecord, dependency_names: list[str]) -> None:
    waiting = (
        "waiting on " + ", ".join(dependency_names)
        if dependency_names
        else ("not waiting on any dependency")
    )
    logger.debug(
        "Task %s submitted for App %s, %s",
        record.id,
        record.func_name,
        waiting,
        extra=_extra(run_id, record.id, app_name=record.func_name),
    )
    for dep in record.depends:
        dep_id = getattr(dep, "tid", None)
        if dep_id is not None:
            logger.debug(
                "Task %s depends on task %s",
                record.id,
                dep_id,
                extra=_extra(run_id, record.id, dependency_task=dep_id),
            )


def launched(run_id: str, record: TaskRecord, executor_task: Any) -> None:
    fields: dict[str, Any] = {"executor": record.executor}
    if executor_task is not None:
        fields["executor_task"] = executor_task
    logger.debug(
        "Task %s try %s launched on executor %s%s",
        record.id,
        record.try_id,
        record.executor,
        f" with executor id {executor_task}" if executor_task is not None else "",
        extra=_extra(run_id, record.id, **fields),
    )


def executor_added(run_id: str, executor: Any) -> None:
    """One INFO line per executor at start-up (Parsl's ``parsl.executor.label``/``type``)."""
    kind = f"{type(executor).__module__}.{type(executor).__name__}"
    extra = {"taskscope.dfk": run_id, "parsl.dfk": run_id}
    for prefix in ("taskscope", "parsl"):
        extra[f"{prefix}.executor.label"] = executor.label
        extra[f"{prefix}.executor.type"] = kind
    logger.info("Adding executor %s of type %s", executor.label, kind, extra=extra)
