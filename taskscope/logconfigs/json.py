"""``JSONLogging``: every log record of the process as one JSON object per line in
``<log_dir>/<log_name>.jsonlog``, with the record's ``taskscope.*`` and ``parsl.*``
attributes (task id, state, executor) as keys."""

from __future__ import annotations

import json
import logging
import pathlib
from collections.abc import Callable

from taskscope.logconfigs.base import RECORD_PREFIXES, LogConfig, lower_level


class JSONHandler(logging.Handler):
    def __init__(self, filename: pathlib.Path) -> None:
        super().__init__()
        self._file = open(filename, "w")  # noqa: SIM115 - closed by close()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry: dict[str, object] = {
                "created": record.created,
                "process": record.process,
                "processName": record.processName,
                "threadName": record.threadName,
                "thread": record.thread,
                "name": record.name,
                "lineno": record.lineno,
                "funcname": record.funcName,
                "levelname": record.levelname,
                "msg": str(record.msg),
                "formatted": self.format(record),
            }
            for key, value in record.__dict__.items():
                if key.startswith(RECORD_PREFIXES):
                    try:
                        entry[key] = str(value)
                    except Exception as e:  # noqa: BLE001 - show it rather than drop the key
                        entry[key] = f"UNREPRESENTABLE: {e!r}"
            self.acquire()
            try:
                self._file.write(json.dumps(entry) + "\n")
                self._file.flush()
            finally:
                self.release()
        except Exception:  # noqa: BLE001
            self.handleError(record)

    def close(self) -> None:
        self.acquire()
        try:
            if not self._file.closed:
                self._file.close()
        finally:
            self.release()
        super().close()


class JSONLogging(LogConfig):
    def __init__(self, *, level: int = logging.DEBUG):
        super().__init__()
        self.level = level

    def initialize_logging(self, *, log_dir: pathlib.Path, log_name: str) -> Callable[[], None]:
        log_dir = pathlib.Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = JSONHandler(log_dir / f"{log_name}.jsonlog")
        handler.setLevel(self.level)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root = logging.getLogger()
        # The taskscope logger too: an explicit INFO there would hide its DEBUG records.
        restore_levels = [lower_level(root, self.level)]
        restore_levels.append(lower_level(logging.getLogger("taskscope"), self.level))
        root.addHandler(handler)

        def unregister() -> None:
            root.removeHandler(handler)
            for restore in restore_levels:
                restore()
            handler.close()

        return unregister

    def __repr__(self) -> str:
        return f"JSONLogging(level={self.level!r})"
