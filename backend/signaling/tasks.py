"""Short-lived work of the signalling service on its own: a bare greenlet under gevent."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("parley.signaling")


def spawn(target: Callable[..., None], *args: Any) -> None:
    """Run target(*args) on its own: a bare greenlet under gevent, else a daemon thread.

    Under gunicorn's gevent worker a monkey-patched `threading.Thread` is a full Greenlet that
    keeps its spawning stack and a thread object: several KB for each socket and each ping.
    Exceptions are logged, never raised into gevent's hub.
    """

    def run() -> None:
        try:
            target(*args)
        except Exception:
            log.exception("%s failed", getattr(target, "__qualname__", target))

    if gevent_threads():
        from gevent import spawn_raw

        spawn_raw(run)
    else:
        threading.Thread(target=run, daemon=True).start()


def gevent_threads() -> bool:
    """True under gunicorn's gevent worker: threads are greenlets, one OS thread runs them."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("threading"))
