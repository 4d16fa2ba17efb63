"""gunicorn settings for Parley: one gevent worker holds thousands of sockets."""

import os
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
_certs = Path(os.environ.get("CERTS_DIR", _root / "certs"))

# gevent, plus closing sockets with 1001 on a graceful stop (backend/worker.py).
worker_class = "backend.worker.ParleyWorker"
# The default of 1,000 stalls new sockets in the handshake; an idle socket costs about 40 KB.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "20000"))
workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
# BIND: one address or several, separated by commas ("127.0.0.1:8000,10.0.0.11:8000").
_bind = (
    os.environ.get("BIND")
    or f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8443')}"
)
bind = _bind.replace(" ", "").split(",")
# Long-lived sockets: a worker is never "stuck" just because a socket is open.
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = "-" if os.environ.get("ACCESS_LOG", "0") == "1" else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

if os.environ.get("PARLEY_TLS", "1") != "0" and (_certs / "server.crt").exists():
    certfile = str(_certs / "server.crt")
    keyfile = str(_certs / "server.key")


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Log Parley's messages with gunicorn's, and start signalling (REDIS_URL: join the cluster)."""
    import logging

    parley = logging.getLogger("parley")
    parley.handlers = list(logging.getLogger("gunicorn.error").handlers)
    parley.setLevel(loglevel.upper())
    parley.propagate = False
    service = getattr(worker.wsgi, "extensions", {}).get("parley.signaling")
    if service is not None:
        service.start()
    # Everything loaded so far (the app, its libraries: about 140,000 objects) lives as long as
    # the worker. Frozen, the collector's full passes skip it: each pass stops every socket of
    # the worker, and at 19,000 frames/s they were what set the relay's p99 (docs/benchmarks.md,
    # section 1).
    import gc

    gc.collect()
    gc.freeze()
