"""One WebSocket as the signalling service sees it; the only code that touches simple-websocket.

Parley leans on three things simple-websocket does not promise as API, pinned by
tests/test_socket.py: `Server.receive_bytes` is the size of each read, `Server.ws` is the wsproto
connection its reader feeds (replaceable before the reader first runs), and `Server.sock` is the
raw socket a whole frame can be written to.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import TypeAlias

from simple_websocket import ConnectionClosed, Server

from .framing import FastReader, text_frame

RECEIVE_BYTES = 65536  # at least a TLS record (16 KiB); see tune

WebSocket: TypeAlias = Server  # what flask-sock hands a route


def tune(ws: WebSocket) -> None:
    """Set a just-upgraded socket up for Parley; call before anything yields."""
    # simple-websocket reads 4 KiB at a time and then waits in select() for more. Over TLS the
    # rest of a 16 KiB record is then decrypted and pending inside the SSL object, where select()
    # cannot see it: a large frame (an SDP offer) sat unread until the client's next frame or
    # the next ping. Reading up to a whole record leaves nothing pending, and under load one
    # read takes several frames. Its reader has not run yet: nothing has yielded since the
    # upgrade, so every read uses this size.
    ws.receive_bytes = RECEIVE_BYTES
    ws.ws = FastReader(ws.ws)  # plain text frames read without wsproto's generic parser


class Socket:
    """One open WebSocket of one signed-in session, safe to send to from any greenlet."""

    def __init__(self, ws: WebSocket, user_id: int, sid: str | None, node: str) -> None:
        self.id = f"{node}.{uuid.uuid4().hex}"
        self.user_id = user_id
        self.sid = sid
        self._ws = ws
        # Fan-out sends come from other sockets' greenlets and timers: one frame at a time, and
        # sendall, because a partial TLS write interleaved with another frame corrupts both.
        self._lock = threading.Lock()

    def frames(self) -> Iterator[str | bytes]:
        """Yield each message the client sends, until the socket closes."""
        try:
            while True:
                data = self._ws.receive()
                if data is not None:
                    yield data
        except ConnectionClosed:
            return

    def send(self, text: str) -> None:
        """Send one text frame; raise ConnectionError when the socket is closed."""
        frame = text_frame(text)
        with self._lock:
            if not self._ws.connected:
                raise ConnectionError("socket closed")
            sock = self._ws.sock
            sent = sock.send(frame)  # nearly always all of it: skip sendall's layers
            if sent < len(frame):
                sock.sendall(memoryview(frame)[sent:])

    def close(self, code: int, reason: str) -> None:
        """Close with a WebSocket close code; the read loop then ends."""
        with self._lock:
            if self._ws.connected:
                try:
                    self._ws.close(code, reason)
                except ConnectionClosed:
                    pass  # the client closed first: the read loop ends all the same

    def drain(self, seconds: float = 1.0) -> None:
        """Read and drop what the client still sends after our close, for up to `seconds`.

        Closing a TCP socket with unread data sends a reset, and the reset can destroy our close
        frame before the client reads it; draining lets the client see the close code.
        """
        raw = self._ws.sock
        deadline = time.monotonic() + seconds
        try:
            raw.settimeout(0.2)
            while time.monotonic() < deadline:
                try:
                    if not raw.recv(65536):
                        return
                except TimeoutError:
                    return
        except Exception:  # the socket's own reader may hold it: then it drains for us
            return
