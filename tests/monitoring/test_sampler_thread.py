"""The process's sampling thread comes back if it dies: without it no try of the process
would get a periodic resource sample again, and nothing would say so."""

from __future__ import annotations

import threading
import time

from taskscope.monitoring import sampler


def test_a_dead_sampling_thread_is_started_again_by_the_next_try(monkeypatch):
    died: list[type[BaseException]] = []
    # The death is this test's doing: noted here, not reported as an unhandled exception.
    monkeypatch.setattr(threading, "excepthook", lambda args: died.append(args.exc_type))
    monitor = sampler.process_monitor()
    old = monitor._thread
    assert old.is_alive()

    def dying_loop() -> None:
        raise KeyboardInterrupt  # what a test's patched sleep once delivered to it

    monitor._thread = threading.Thread(target=dying_loop, daemon=True)
    monitor._thread.start()
    monitor._thread.join(5)
    assert not monitor._thread.is_alive() and died == [KeyboardInterrupt]
    again = sampler.process_monitor()  # what the wrapper calls as a try begins
    assert again is monitor and monitor._thread.is_alive() and monitor._thread is not old
    time.sleep(0.3)  # a few of its periods: it keeps running
    assert monitor._thread.is_alive()
