"""The `/ws` route: refuse what must not upgrade, then hand the socket to the signalling service."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, g, request, session
from flask_login import current_user

from ..errors import error_response
from ..extensions import db, sock
from ..security import origin_allowed
from . import protocol, service
from .socket import Socket, WebSocket

log = logging.getLogger("parley.signaling")

bp = Blueprint("signaling", __name__)


@bp.before_request
def _guard() -> Any:
    # Cross-site WebSocket hijacking: a page elsewhere can open a socket with our cookie, so
    # the Origin must be ours, and the session must be signed in, before the upgrade.
    if not origin_allowed(request):
        log.warning("refused /ws upgrade from origin %r", request.headers.get("Origin"))
        return error_response(403, "cross-origin socket refused (Origin not allowed)")
    if not current_user.is_authenticated:
        return error_response(401, "sign in first")
    # Decline permessage-deflate: its zlib state cost about 37 KB per socket, most of a socket's
    # memory (docs/benchmarks.md), for frames that are small and mostly sent once.
    request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@bp.errorhandler(OSError)
def _gone(exc: OSError) -> Any:
    # The client went away during the upgrade (a tab closed, the echo bot stopped by Ctrl-C as
    # it connected): simple-websocket's handshake could not write its 101. No one is left to
    # answer, and it is no fault of the server's, so one line and no traceback.
    log.info("a /ws upgrade ended early, the client gone: %r", exc)
    return error_response(400, "the WebSocket upgrade did not complete")


@sock.route("/ws", bp=bp)
def ws_route(ws: WebSocket) -> None:
    user = protocol.User(id=current_user.id, username=current_user.username)
    sid = session.get("sid")
    # Release the pooled connection flask-login used, and the ORM user it keeps in `g`: sockets
    # live for hours and each keeps its request context (docs/benchmarks.md).
    g.pop("_login_user", None)
    db.session.remove()
    signaling = service.signaling()
    conn = Socket(ws, user.id, sid, signaling.node)
    if conn.outlives_request:  # served in a greenlet of its own; this request ends now
        signaling.adopt(conn, user)
    else:
        signaling.serve(conn, user)


def init_app(app: Flask) -> None:
    """Register `/ws` and the signalling service of this app."""
    app.register_blueprint(bp)
    service.init_app(app)
