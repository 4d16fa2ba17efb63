"""One thread (a greenlet under gevent) that pings every open socket of the process."""

from __future__ import annotations

import collections
import logging
import threading
import time

from .socket import Socket

log = logging.getLogger("parley.signaling")


class Pinger:
    """Ping every open socket of this process each `interval` seconds, from one thread.

    A socket that has not answered the previous ping by the next one is closed (1008), as
    simple-websocket's own per-socket pinger did; so is one we closed that never replied.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._due: collections.deque[tuple[float, Socket]] = collections.deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, conn: Socket) -> None:
        """Ping `conn` from `interval` seconds on, until it closes."""
        if self.interval <= 0:
            return
        with self._lock:
            # Every socket waits the same interval, so appending keeps the deque in due order.
            self._due.append((time.monotonic() + self.interval, conn))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="parley-pinger")
                self._thread.start()

    def __len__(self) -> int:
        return len(self._due)

    def _run(self) -> None:
        while True:
            now = time.monotonic()
            with self._lock:
                due = []
                while self._due and self._due[0][0] <= now:
                    due.append(self._due.popleft())
            for _, conn in due:
                try:
                    keep = conn.keepalive()
                except Exception:
                    log.exception("pinging socket %s failed", conn.id)
                    keep = False
                if keep:
                    with self._lock:  # in due order: every later add is due later still
                        self._due.append((time.monotonic() + self.interval, conn))
            with self._lock:
                wait = self._due[0][0] - time.monotonic() if self._due else self.interval
            time.sleep(max(wait, 0.01))
