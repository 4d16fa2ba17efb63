"""Run a function once after a delay: the Scheduler the call registry's timers use."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("parley.signaling")


class Cancellable(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None:
        """Stop the callback from running if it has not run yet."""


class Scheduler(Protocol):
    """Runs a function once after a delay."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        """Run fn after delay seconds; return a handle that cancels it."""


class ThreadScheduler:
    """A Scheduler on threading.Timer: real threads in tests, greenlets under gunicorn's gevent."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        """Run fn after delay seconds in a daemon timer; exceptions are logged."""

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("scheduled call callback failed")

        timer = threading.Timer(delay, run)
        timer.daemon = True
        timer.start()
        return timer
