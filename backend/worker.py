"""gunicorn's gevent worker, closing Parley's sockets at once when it is told to stop."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any

import gevent
from gevent.server import StreamServer
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker

log = logging.getLogger("parley")

# A client has this long to finish the TLS handshake (nginx's ssl_handshake_timeout is 60 s).
TLS_HANDSHAKE_TIMEOUT = float(os.environ.get("TLS_HANDSHAKE_TIMEOUT", "30"))


class TlsServer(StreamServer):
    """gevent's StreamServer with the TLS handshake bounded in time and its failures quiet.

    gevent does the handshake in the connection's greenlet with no time limit and prints a
    traceback when it fails: a client that connects and sends nothing held a greenlet forever,
    and one that went away mid-handshake (a phone losing signal, a port probe) printed
    `SSLEOFError` tracebacks into the server's log.
    """

    def wrap_socket_and_handle(self, client_socket: Any, address: Any) -> Any:
        # Wrapped first, shaken hands after: the wrapped socket owns the descriptor from then on,
        # so it is the one to close when the handshake fails.
        tls = self.wrap_socket(client_socket, **{**self.ssl_args, "do_handshake_on_connect": False})
        with contextlib.closing(tls):
            try:
                with gevent.Timeout(TLS_HANDSHAKE_TIMEOUT) as timer:
                    tls.do_handshake()
            except gevent.Timeout as expired:
                if expired is not timer:
                    raise
                log.debug("TLS handshake from %s timed out", address)
                return None
            except OSError as error:  # ssl.SSLError is one
                log.debug("TLS handshake from %s failed: %s", address, error)
                return None
            return self.handle(tls, address)


class ParleyWorker(GeventWorker):
    """A gevent worker whose graceful stop closes every socket with 1001 (going away).

    Without this, open sockets keep a stopping worker alive for the whole graceful timeout and
    clients notice the restart late; with it they reconnect to the next server straight away.
    """

    def patch(self) -> None:
        super().patch()
        _refuse_a_blocking_psycopg()

    _closing: gevent.Greenlet | None = None

    def run(self) -> None:
        ggevent.StreamServer = TlsServer  # the name gunicorn's run() builds its server from
        super().run()
        # gunicorn waited for its request handlers; Parley's sockets are served outside them
        # (Signaling.adopt), so their close handshakes are waited for here.
        started = time.monotonic()
        if self._closing is None:
            self._closing = gevent.spawn(self._close_sockets)
        self._closing.join(timeout=self.cfg.graceful_timeout)
        service = self._service()
        if service is not None:
            left = self.cfg.graceful_timeout - (time.monotonic() - started)
            if not service.wait_closed(max(left, 0.0)):
                log.warning("stopping with sockets still open after the graceful timeout")

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        self._closing = gevent.spawn(self._close_sockets)

    def _service(self) -> Any:
        return getattr(self.wsgi, "extensions", {}).get("parley.signaling")

    def _close_sockets(self) -> None:
        service = self._service()
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
