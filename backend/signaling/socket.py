"""One WebSocket as the signalling service sees it; the only code that touches simple-websocket.

simple-websocket gives every socket a reader thread (a greenlet under gunicorn's gevent worker),
an event to hand messages over and, for pings, a selector of its own: two greenlets and a
selector per socket, most of an idle socket's memory, and a hand-off between greenlets for
every frame (docs/benchmarks.md, section 1). Parley keeps simple-websocket for the upgrade
handshake and for wsproto's handling of control frames, and does the rest itself: the route's
own greenlet reads the socket (`Socket.frames`), and one `Pinger` per process pings every socket.

Parley leans on what simple-websocket does not promise as API, pinned by tests/test_socket.py:
the constructor's `thread_class` and `event_class` (so no reader starts), `Server.ws` (the wsproto
connection, replaceable after the handshake), `Server.sock` (the raw socket), `connected`,
`pong_received`, `input_buffer` and `_handle_events` (wsproto's events turned into messages,
pongs and close replies).
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

from simple_websocket import ConnectionClosed, Server
from wsproto import WSConnection
from wsproto.utilities import LocalProtocolError

from .framing import FastReader, text_frame

log = logging.getLogger("parley.signaling")

# At least a TLS record (16 KiB): reading less left the rest of a record decrypted inside the SSL
# object, where select() cannot see it, so a large frame (an SDP offer) sat unread until the
# client's next frame. Under load one read takes several frames.
RECEIVE_BYTES = 65536
PING_FRAME = b"\x89\x00"  # a final ping frame with no payload (RFC 6455, 5.5.2)
CLOSE_PING_TIMEOUT = 1008  # policy violation, as simple-websocket's own ping timeout uses

WebSocket: TypeAlias = Server  # what flask-sock hands a route


class _NoReader:
    """simple-websocket's `thread_class`: its reader never starts; `Socket.frames` reads."""

    def __init__(self, target: Callable[[], None] | None = None, **_: Any) -> None:
        self.name = "parley-ws-no-reader"

    def start(self) -> None:
        """Start nothing."""


class _NoHandOff:
    """simple-websocket's `event_class`: nothing waits on it, since no reader hands over."""

    def set(self) -> None:
        """Do nothing: the reading greenlet takes messages straight from the buffer."""

    def clear(self) -> None:
        """Do nothing."""

    def wait(self, timeout: float | None = None) -> bool:
        """Return at once: `Server.receive` is not used."""
        return True


def server_options(max_message_size: int) -> dict[str, Any]:
    """Return flask-sock's SOCK_SERVER_OPTIONS for Parley's sockets."""
    return {
        "max_message_size": max_message_size,
        "receive_bytes": RECEIVE_BYTES,
        "ping_interval": None,  # the Pinger's job
        "thread_class": _NoReader,
        "event_class": _NoHandOff,
    }


def tune(ws: WebSocket) -> None:
    """Set a just-upgraded socket up for Parley: read plain text frames without wsproto.

    After the upgrade only wsproto's frame protocol (`WSConnection.connection`) is needed: its
    handshake object keeps the request's headers three times over (h11's parser among them),
    about 2 KB a socket for as long as it is open.
    """
    protocol = ws.ws.connection if isinstance(ws.ws, WSConnection) else None
    ws.ws = FastReader(protocol if protocol is not None else ws.ws)


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
        self._reading = True  # frames() has not ended: the raw socket is still ours
        self._unanswered_close = False  # the Pinger found it closed by us and still reading

    def frames(self) -> Iterator[str | bytes]:
        """Yield each message the client sends, until the socket closes.

        Read in the caller's own greenlet. Control frames are answered here (a pong for a ping,
        the close reply) under the send lock, so they never split another greenlet's frame.
        """
        ws = self._ws
        raw = ws.sock
        try:
            while True:
                while ws.input_buffer:
                    yield ws.input_buffer.pop(0)
                if not ws.connected:
                    return
                try:
                    data = raw.recv(RECEIVE_BYTES)
                except OSError:  # reset, or shut down under us by the pinger
                    data = b""
                if not data:
                    ws.connected = False
                    return
                with self._lock:
                    try:
                        ws.ws.receive_data(data)
                        ws.connected = ws._handle_events()
                    except (OSError, LocalProtocolError):
                        ws.connected = False
        finally:
            self._reading = False
            try:
                raw.close()
            except OSError:
                pass

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
        """Close with a WebSocket close code; the read loop ends at the client's reply.

        A client that never replies is cut off by the Pinger at its next round.
        """
        with self._lock:
            if self._ws.connected:
                try:
                    self._ws.close(code, reason)
                except (ConnectionClosed, OSError):
                    pass  # the client closed first: the read loop ends all the same

    def drain(self, seconds: float = 1.0) -> None:
        """Read and drop what the client still sends after our close, for up to `seconds`.

        Closing a TCP socket with unread data sends a reset, and the reset can destroy our close
        frame before the client reads it; draining lets the client see the close code. Call it
        from the greenlet that reads the socket (the one iterating `frames`).
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
        except OSError:
            return

    # --- what the Pinger asks ------------------------------------------------------------------

    def keepalive(self) -> bool:
        """Ping the client, or cut it off if it did not answer the last ping; False when done.

        Never blocks: the writes run in a short-lived thread of their own (a greenlet under
        gevent), since a client that stopped reading can hold a send until TCP gives up.
        """
        ws = self._ws
        if not self._reading:
            return False
        if not ws.connected:  # closed by us: the client has until the next round to reply
            if self._unanswered_close:
                self._spawn(self._cut_off)
                return False
            self._unanswered_close = True
            return True
        if not ws.pong_received:
            self._spawn(self._time_out)
            return False
        ws.pong_received = False  # before the ping goes: a quick pong must count
        self._spawn(self._ping)
        return True

    @staticmethod
    def _spawn(target: Callable[[], None]) -> None:
        threading.Thread(target=target, daemon=True, name="parley-ws-ping").start()

    def _ping(self) -> None:
        with self._lock:
            if self._ws.connected:
                try:
                    self._ws.sock.sendall(PING_FRAME)
                except OSError:
                    pass  # the read loop sees the broken socket

    def _time_out(self) -> None:
        log.info("socket %s of user %s did not answer a ping: closing it", self.id, self.user_id)
        self.close(CLOSE_PING_TIMEOUT, "Ping/Pong timeout")
        self._cut_off()

    def _cut_off(self) -> None:
        """End the read loop of a client that is gone without a word (no FIN, no close)."""
        self._ws.connected = False
        try:
            self._ws.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


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
