"""One WebSocket as the signalling service sees it; the only code that touches simple-websocket.

simple-websocket does the upgrade handshake, and nothing after it. A `Socket` then takes the raw
socket and wsproto's frame protocol out of it and the route returns: the socket is read in a
greenlet of its own that holds only those (`Signaling.adopt`), not in the request's greenlet,
which would keep gunicorn's parsed request, the WSGI environ and Flask's contexts for as long as
the socket is open (about 12 KB a socket, docs/benchmarks.md section 1). One `Pinger` per
process (pinger.py) pings every socket, instead of a reader thread and a selector per socket.

Parley leans on what simple-websocket does not promise as API, pinned by tests/test_socket.py:
the constructor's `thread_class` and `event_class` (so no reader starts), `Server.ws` (the wsproto
connection after the handshake), `Server.sock` (the raw socket), `max_message_size` and
`connected` (set false, so flask-sock's close after the route sends nothing).
"""

from __future__ import annotations

import collections
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

from simple_websocket import Server
from wsproto import WSConnection
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError

from .framing import FastReader, text_frame
from .tasks import gevent_threads, spawn

log = logging.getLogger("parley.signaling")

# At least a TLS record (16 KiB): reading less left the rest of a record decrypted inside the SSL
# object, where select() cannot see it, so a large frame (an SDP offer) sat unread until the
# client's next frame. Under load one read takes several frames.
RECEIVE_BYTES = 65536
PING_FRAME = b"\x89\x00"  # a final ping frame with no payload (RFC 6455, 5.5.2)
CLOSE_PING_TIMEOUT = 1008  # policy violation, as simple-websocket's own ping timeout used
# Frames queued for a client that is not reading, past which the socket is cut off (the client
# reconnects and resumes): a few hundred SDP offers, far beyond any live client's backlog.
MAX_UNSENT = 4 * 1024 * 1024

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
        """Do nothing."""

    def clear(self) -> None:
        """Do nothing."""

    def wait(self, timeout: float | None = None) -> bool:
        """Return at once: `Server.receive` is not used."""
        return True


# Under gevent (one OS thread), the sockets with frames queued and no write under way. Their
# frames go out when the greenlet that sent them is about to wait on its own client's socket,
# or at the latest at the event loop turn's end: a burst a reader relays costs one write for
# each socket it reaches, and a frame waits only for the rest of its sender's work.
_due: list[Socket] = []


def write_due() -> None:
    """Write what is queued for every socket due, without blocking."""
    while _due:
        due = _due.copy()
        _due.clear()
        for conn in due:
            conn._flush()


def server_options(max_message_size: int) -> dict[str, Any]:
    """Return flask-sock's SOCK_SERVER_OPTIONS for Parley's sockets."""
    return {
        "max_message_size": max_message_size,
        "receive_bytes": RECEIVE_BYTES,
        "ping_interval": None,  # the Pinger's job
        "thread_class": _NoReader,
        "event_class": _NoHandOff,
    }


class Socket:
    """One open WebSocket of one signed-in session, safe to send to from any greenlet.

    Built in the route from flask-sock's just-upgraded socket, which it takes over: from then on
    the route may return, and the socket stays open until `frames()` ends.
    """

    def __init__(self, ws: WebSocket, user_id: int, sid: str | None, node: str) -> None:
        self.id = f"{node}.{uuid.uuid4().hex}"
        self.user_id = user_id
        self.sid = sid
        self._sock = ws.sock
        # A file on the socket keeps its descriptor open when the HTTP server closes the socket
        # after the route returns (socket.close waits for every makefile() to close).
        self._hold = self._sock.makefile("rb", buffering=0)
        # After the upgrade only wsproto's frame protocol is needed: the handshake object keeps
        # the request's headers three times over (h11's parser among them).
        protocol = ws.ws.connection if isinstance(ws.ws, WSConnection) else ws.ws
        self._protocol = FastReader(protocol)
        self._max_message = int(ws.max_message_size or 0)
        # flask-sock's response after the route closes over `ws` in a class made per request, a
        # cycle only the garbage collector frees: keep nothing in it but what that response and
        # its close read, so the request and its socket do not wait for a collection.
        mode = ws.mode
        # gunicorn leaves the socket alone once the route returns; werkzeug's development
        # server (tests/test_signals.py) writes a response after it, so there the route serves.
        self.outlives_request = mode == "gunicorn"
        ws.__dict__.clear()
        ws.mode, ws.connected = mode, False  # the close after the route must send nothing
        self._connected = True
        self._pong_received = True
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._partial: str | bytes | bytearray | None = None  # a fragmented message so far
        self._partial_size = 0
        # Fan-out sends come from other sockets' greenlets and timers: one frame at a time, and
        # sendall, because a partial TLS write interleaved with another frame corrupts both.
        self._lock = threading.Lock()
        self._reading = True  # frames() has not ended: the raw socket is still ours
        self._unanswered_close = False  # the Pinger found it closed by us and still reading
        # Under gevent, frames sent to this socket are queued, in order, and written together
        # without blocking (`write_due`); what a client's full buffer does not take goes to a
        # writer greenlet, so a sender never waits on a peer that does not read
        # (docs/benchmarks.md, sections 1 and 7). Threads (werkzeug's server) write at once.
        self._queues = gevent_threads()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._writing = False  # a write of the queue is scheduled and has not finished
        # What a write that would have blocked left (over TLS OpenSSL holds that write, and it
        # must be repeated as is): every later write under the lock sends it first.
        self._head = b""
        if self._queues:
            from gevent import get_hub, spawn_raw
            from gevent.ssl import SSLSocket

            self._spawn_writer = spawn_raw
            self._loop = get_hub().loop
            # Written without blocking, from the sender or the event loop: plain TCP (behind
            # the reverse proxy) through the OS socket under gevent's; TLS through its SSL object.
            self._os_sock = None if isinstance(self._sock, SSLSocket) else self._sock._sock

    def frames(self) -> Iterator[str | bytes]:
        """Yield each message the client sends, until the socket closes; then release it.

        Read in the caller's own greenlet. Control frames are answered here (a pong for a ping,
        the close reply) under the send lock, so they never split another greenlet's frame.
        """
        raw = self._sock
        try:
            while True:
                while self._messages:
                    yield self._messages.popleft()
                if not self._connected:
                    return
                if _due:  # what this greenlet sent goes before it waits on its client
                    write_due()
                try:
                    data = raw.recv(RECEIVE_BYTES)
                except OSError:  # reset, or shut down under us by the pinger
                    data = b""
                if not data:
                    self._connected = False
                    return
                with self._lock:
                    try:
                        self._receive(data)
                    except (OSError, LocalProtocolError):
                        self._connected = False
        finally:
            self._reading = False
            # A close from another thread (a sign-out elsewhere) marks the socket closed before
            # its frame goes out: wait for that frame, then let the socket go. Without this, a
            # server writing after the route (werkzeug's response) overtook the close frame.
            with self._lock:
                self._hold.close()
                try:
                    raw.close()
                except OSError:
                    pass

    def _receive(self, data: bytes) -> None:
        """Take bytes from the client: queue its messages, answer pings and the close handshake."""
        protocol = self._protocol
        protocol.receive_data(data)
        out = b""
        for event in protocol.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                if not self._message_part(event):
                    out += protocol.send(
                        CloseConnection(CloseReason.MESSAGE_TOO_BIG, "Message is too big")
                    )
                    self._connected = False
                    break
            elif isinstance(event, Ping):
                out += protocol.send(event.response())
            elif isinstance(event, Pong):
                self._pong_received = True
            elif isinstance(event, CloseConnection):
                self._connected = False
                try:
                    out += protocol.send(event.response())
                except LocalProtocolError:
                    pass  # the reply to our own close: nothing more to say
                break
        if not self._connected:  # a close went into `out`: the frames queued before it go first
            out = self._take_queued() + out
        if out:
            self._write_locked(out)

    def _message_part(self, event: TextMessage | BytesMessage) -> bool:
        """Add a frame's data to the message it belongs to; False when the message is too big."""
        data = event.data
        self._partial_size += len(data)
        if self._max_message and self._partial_size > self._max_message:
            return False
        partial = self._partial
        if partial is None:
            if event.message_finished:  # nearly every message: one frame
                self._messages.append(data if isinstance(data, str) else bytes(data))
                self._partial_size = 0
                return True
            partial = data
        elif isinstance(partial, bytearray):
            partial += data.encode() if isinstance(data, str) else data
        else:  # the second part: from here on a bytearray, cheap to add to
            first = partial.encode() if isinstance(partial, str) else partial
            partial = bytearray(first) + (data.encode() if isinstance(data, str) else data)
        if not event.message_finished:
            self._partial = partial
            return True
        if isinstance(partial, bytearray):
            whole: str | bytes = (
                partial.decode() if isinstance(event, TextMessage) else bytes(partial)
            )
        else:
            whole = partial
        self._messages.append(whole)
        self._partial, self._partial_size = None, 0
        return True

    def send(self, text: str) -> None:
        """Send one text frame; raise ConnectionError when the socket is closed or broken.

        Under gevent never waits: the frame is queued, in order, and written soon (`write_due`).
        """
        frame = text_frame(text)
        if not self._queues:
            with self._lock:
                if not self._connected:
                    raise ConnectionError("socket closed")
                self._send_exact(frame)
            return
        if not self._connected:
            raise ConnectionError("socket closed")
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._writing:  # a write is due: this frame goes with it
            if self._out_bytes + len(self._head) > MAX_UNSENT:
                log.warning("socket %s of user %s is not reading: cut off", self.id, self.user_id)
                self._out, self._out_bytes, self._head = [], 0, b""
                self._cut_off()
                raise ConnectionError("socket not reading")
            return
        self._writing = True
        if not _due:  # the first socket due in this turn: the event loop writes at its end
            self._loop.run_callback(write_due)
        _due.append(self)

    def _flush(self) -> None:
        """Write the queue without blocking (`write_due`).

        What the client's buffer does not take (or all, while another write holds the lock)
        goes to a writer greenlet.
        """
        lock = self._lock
        if not lock.acquire(blocking=False):  # a ping, a pong or a close is being written
            self._spawn_writer(self._write_out)
            return
        try:
            data = self._take_queued()
            sent = self._write_now(data) if data else 0
            if sent < len(data):
                self._head = data[sent:]
                self._spawn_writer(self._write_out)
                return
            self._writing = False
        except Exception as exc:  # an OSError: the connection is broken
            self._broken(exc)
        finally:
            lock.release()

    def _write_now(self, data: bytes) -> int:
        """Write what the client's buffer takes now; return how much (over TLS, all or none)."""
        if self._os_sock is not None:
            try:
                sent: int = self._os_sock.send(data)
            except BlockingIOError:
                return 0
            return sent
        try:
            sent = self._sock._sslobj.write(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0  # OpenSSL holds the write until it is repeated
        return sent

    def _write_out(self) -> None:
        """Write the queued frames, and those queued meanwhile, until none is left (gevent)."""
        try:
            with self._lock:
                self._write_locked(b"")
                while self._out:
                    self._send_exact(self._take_queued())
        except Exception as exc:  # an OSError: the connection is broken
            self._broken(exc)
        finally:
            self._writing = False

    def _broken(self, exc: Exception) -> None:
        """A write failed: drop what waits, and refuse what comes (the read loop sees the rest)."""
        log.debug("writing to socket %s failed: %r", self.id, exc)
        self._out, self._out_bytes, self._head, self._writing = [], 0, b"", False
        self._connected = False

    def _write_locked(self, data: bytes) -> None:
        """Write under the send lock, waiting if need be; a write left unfinished goes first."""
        if self._head:
            head, self._head = self._head, b""
            self._send_exact(head)
        if data:
            self._send_exact(data)

    def _send_exact(self, data: bytes) -> None:
        sock = self._sock
        sent = sock.send(data)  # nearly always all of it: skip sendall's layers (TLS: all)
        if sent < len(data):
            sock.sendall(memoryview(data)[sent:])

    def _take_queued(self) -> bytes:
        """Take the frames queued and not yet written, as one (call under the send lock)."""
        out, self._out, self._out_bytes = self._out, [], 0
        return b"".join(out)  # one frame: that frame itself, not a copy

    def close(self, code: int, reason: str) -> None:
        """Close with a WebSocket close code; the read loop ends at the client's reply.

        A client that never replies is cut off by the Pinger at its next round.
        """
        with self._lock:
            if self._connected:
                self._connected = False
                queued = self._take_queued()  # the frames queued before the close go first
                try:
                    self._write_locked(queued + self._protocol.send(CloseConnection(code, reason)))
                except (OSError, LocalProtocolError):
                    pass  # the client closed first: the read loop ends all the same

    def drain(self, seconds: float = 1.0) -> None:
        """Read and drop what the client still sends after our close, for up to `seconds`.

        Closing a TCP socket with unread data sends a reset, and the reset can destroy our close
        frame before the client reads it; draining lets the client see the close code. Call it
        from the greenlet that reads the socket (the one iterating `frames`).
        """
        raw = self._sock
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
        if not self._reading:
            return False
        if not self._connected:  # closed by us: the client has until the next round to reply
            if self._unanswered_close:
                spawn(self._cut_off)
                return False
            self._unanswered_close = True
            return True
        if not self._pong_received:
            spawn(self._time_out)
            return False
        self._pong_received = False  # before the ping goes: a quick pong must count
        spawn(self._ping)
        return True

    def _ping(self) -> None:
        with self._lock:
            if self._connected:
                try:
                    self._write_locked(PING_FRAME)
                except OSError:
                    pass  # the read loop sees the broken socket

    def _time_out(self) -> None:
        log.info("socket %s of user %s did not answer a ping: closing it", self.id, self.user_id)
        self.close(CLOSE_PING_TIMEOUT, "Ping/Pong timeout")
        self._cut_off()

    def _cut_off(self) -> None:
        """End the read loop of a client that is gone without a word (no FIN, no close)."""
        self._connected = False
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed
