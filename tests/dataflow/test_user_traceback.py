"""Failed tries' tracebacks start at the user's code and name the user's file."""

from __future__ import annotations

from taskscope.dataflow.user_traceback import PACKAGE_DIR, user_traceback


def user_task(x: int) -> int:
    return 1 // x


def worker_text() -> str:
    """A traceback as an HTEX worker formats it: taskscope's frames, then cloudpickle's
    renamed file for the user's function (no source line: the worker could not read it)."""
    line = user_task.__code__.co_firstlineno + 1
    return (
        "Traceback (most recent call last):\n"
        f'  File "{PACKAGE_DIR}executors/high_throughput/worker.py", line 102, in _run_one\n'
        "    value = func(*args, **kwargs)\n"
        f'  File "{PACKAGE_DIR}monitoring/wrapper.py", line 143, in __call__\n'
        "    return self.func(*args, **kwargs)\n"
        f'  File "<dynamic-code>", line {line}, in user_task\n'
        "ZeroDivisionError: integer division or modulo by zero\n"
    )


def test_dynamic_frame_gets_the_real_file_and_source() -> None:
    text = user_traceback(worker_text(), user_task)
    assert "<dynamic-code>" not in text
    assert f'File "{__file__}", line' in text and "return 1 // x" in text
    assert "worker.py" not in text and "wrapper.py" not in text
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("ZeroDivisionError: integer division or modulo by zero\n")


def test_only_taskscope_frames_are_kept() -> None:
    text = (
        "Traceback (most recent call last):\n"
        f'  File "{PACKAGE_DIR}executors/threads.py", line 5, in run\n'
        "    boom()\n"
        "RuntimeError: inside taskscope\n"
    )
    assert user_traceback(text, user_task) == text
