"""gunicorn's gevent worker, closing Parley's sockets at once when it is told to stop."""

from __future__ import annotations

import sys
from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker


class ParleyWorker(GeventWorker):
    """A gevent worker whose graceful stop closes every socket with 1001 (going away).

    Without this, open sockets keep a stopping worker alive for the whole graceful timeout and
    clients notice the restart late; with it they reconnect to the next server straight away.
    """

    def patch(self) -> None:
        super().patch()
        _refuse_a_blocking_psycopg()

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        gevent.spawn(self._close_sockets)

    def _close_sockets(self) -> None:
        extensions = getattr(self.wsgi, "extensions", {})
        service = extensions.get("parley.signaling")
        if service is not None:
            service.shutdown()


def _refuse_a_blocking_psycopg() -> None:
    """Stop the worker if psycopg was imported before gevent patched `select`.

    psycopg 3 picks how it waits on the server when first imported: after patching it waits
    through gevent, before it waits in C and every query stalls all sockets of the worker
    (measured: a 1 s query froze a 10 ms ticker for 1,012 ms). Preloading the app does that.
    """
    waiting = sys.modules.get("psycopg.waiting")
    if waiting is not None and waiting.wait is getattr(waiting, "wait_c", None):
        raise RuntimeError(
            "psycopg was imported before gevent's monkey-patching (is preload_app on?): "
            "its queries would block every socket of the worker; do not preload the app"
        )
