"""gunicorn's gevent worker, closing Parley's sockets at once when it is told to stop."""

from __future__ import annotations

from typing import Any

import gevent
from gunicorn.workers.ggevent import GeventWorker


class ParleyWorker(GeventWorker):
    """A gevent worker whose graceful stop closes every socket with 1001 (going away).

    Without this, open sockets keep a stopping worker alive for the whole graceful timeout and
    clients notice the restart late; with it they reconnect to the next server straight away.
    """

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        gevent.spawn(self._close_sockets)

    def _close_sockets(self) -> None:
        extensions = getattr(self.wsgi, "extensions", {})
        service = extensions.get("parley.signaling")
        if service is not None:
            service.shutdown()
