"""Where every user's sockets are: user -> connections, delivery, presence. No Flask here.

One Hub per app (per worker). Deliveries go through a Bus so that a Redis bus can later carry them
to the worker that holds the socket; the in-memory bus hands them straight back to this hub.
Presence goes to the people a user shares a room with, when the user's first socket opens and
when the last one closes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from .protocol import Presence, dump

log = logging.getLogger("parley.signaling")

Outgoing = BaseModel | dict[str, Any]


class Connection(Protocol):
    """One open socket of one signed-in session."""

    id: str
    user_id: int
    sid: str | None

    def send(self, text: str) -> None:
        """Send one text frame; raise OSError (or similar) when the socket is gone."""

    def close(self, code: int, reason: str) -> None:
        """Close the socket with a WebSocket close code."""


@dataclass(frozen=True)
class Envelope:
    """What travels on the bus: a frame for a user's sockets, or a session to close."""

    op: Literal["deliver", "close_session"]
    user_id: int
    text: str = ""
    exclude: str | None = None
    sid: str | None = None
    code: int = 1000


class Bus(Protocol):
    """Carries envelopes to every hub that may hold the addressed user's sockets."""

    def attach(self, receiver: Callable[[Envelope], int]) -> None:
        """Register the local hub's receiver."""

    def publish(self, envelope: Envelope) -> int:
        """Send an envelope; return the number of sockets reached when known (else 0)."""


class InMemoryBus:
    """A bus for one process: publishing is calling the local hub."""

    def __init__(self) -> None:
        self._receivers: list[Callable[[Envelope], int]] = []

    def attach(self, receiver: Callable[[Envelope], int]) -> None:
        """Register the local hub's receiver."""
        self._receivers.append(receiver)

    def publish(self, envelope: Envelope) -> int:
        """Hand the envelope to every attached hub and return the sockets reached."""
        return sum(receive(envelope) for receive in self._receivers)


class Hub:
    """The one owner of user -> sockets, thread-safe (threads in tests, greenlets in gunicorn)."""

    def __init__(self, peers_of: Callable[[int], Iterable[int]], bus: Bus | None = None) -> None:
        self._peers_of = peers_of
        self._lock = threading.RLock()
        self._by_user: dict[int, dict[str, Connection]] = {}
        self._by_id: dict[str, Connection] = {}
        # Peers of online users, loaded when their first socket opens, so going offline needs
        # no database and a new room updates it through link().
        self._peers: dict[int, set[int]] = {}
        self.bus: Bus = bus or InMemoryBus()
        self.bus.attach(self._receive)

    # --- sockets ---------------------------------------------------------------------------

    def add(self, conn: Connection) -> bool:
        """Register a socket; return True when it brought its user online (presence sent)."""
        with self._lock:
            first = conn.user_id not in self._by_user
            self._by_user.setdefault(conn.user_id, {})[conn.id] = conn
            self._by_id[conn.id] = conn
        if first:
            peers = set(self._peers_of(conn.user_id))
            with self._lock:
                if conn.user_id in self._by_user:
                    self._peers[conn.user_id] = peers | self._peers.get(conn.user_id, set())
            self._announce(conn.user_id, online=True)
        return first

    def remove(self, conn: Connection) -> bool:
        """Forget a socket; return True when it was its user's last one (presence sent)."""
        with self._lock:
            if self._by_id.pop(conn.id, None) is None:
                return False
            sockets = self._by_user.get(conn.user_id, {})
            sockets.pop(conn.id, None)
            if sockets:
                return False
            del self._by_user[conn.user_id]
        self._announce(conn.user_id, online=False)
        with self._lock:
            if conn.user_id not in self._by_user:
                self._peers.pop(conn.user_id, None)
        return True

    def connection(self, conn_id: str) -> Connection | None:
        """Return the open socket with this id, if it is on this hub."""
        with self._lock:
            return self._by_id.get(conn_id)

    def connections_of(self, user_id: int) -> list[Connection]:
        """Return the user's open sockets on this hub."""
        with self._lock:
            return list(self._by_user.get(user_id, {}).values())

    def is_online(self, user_id: int) -> bool:
        """Tell whether the user has at least one open socket."""
        with self._lock:
            return user_id in self._by_user

    # --- presence --------------------------------------------------------------------------

    def online_peers(self, user_id: int) -> list[int]:
        """Return the ids of the user's room peers that are online, sorted."""
        with self._lock:
            peers = self._peers.get(user_id)
            if peers is None:
                peers = set()
            return sorted(p for p in peers if p in self._by_user)

    def link(self, a: int, b: int) -> None:
        """Record that a and b now share a room and tell each that the other is online."""
        with self._lock:
            if a in self._peers:
                self._peers[a].add(b)
            if b in self._peers:
                self._peers[b].add(a)
            both = a in self._by_user and b in self._by_user
        if both:
            self.deliver(a, Presence(user_id=b, online=True))
            self.deliver(b, Presence(user_id=a, online=True))

    def _announce(self, user_id: int, *, online: bool) -> None:
        with self._lock:
            peers = sorted(self._peers.get(user_id, set()))
        message = dump(Presence(user_id=user_id, online=online))
        for peer in peers:
            self.deliver(peer, message)

    # --- delivery --------------------------------------------------------------------------

    def deliver(self, user_id: int, message: Outgoing | str, exclude: str | None = None) -> int:
        """Send a message to every socket of a user (but `exclude`); return sockets reached."""
        text = message if isinstance(message, str) else dump(message)
        return self.bus.publish(Envelope("deliver", user_id, text=text, exclude=exclude))

    def send(self, conn: Connection | str, message: Outgoing | str) -> bool:
        """Send a message to one socket (a connection or its id); False when it is gone."""
        target = self.connection(conn) if isinstance(conn, str) else conn
        if target is None:
            return False
        return self._send_text(target, message if isinstance(message, str) else dump(message))

    def close_session(self, user_id: int, sid: str | None, code: int, reason: str) -> None:
        """Close every socket of this user opened by the session `sid`."""
        self.bus.publish(Envelope("close_session", user_id, text=reason, sid=sid, code=code))

    def _receive(self, envelope: Envelope) -> int:
        """Act on an envelope from the bus for the sockets this hub holds."""
        targets = [c for c in self.connections_of(envelope.user_id) if c.id != envelope.exclude]
        if envelope.op == "close_session":
            closing = [c for c in targets if c.sid == envelope.sid]
            for conn in closing:
                try:
                    conn.close(envelope.code, envelope.text)
                except Exception:  # a socket already gone must not stop the others closing
                    log.debug("closing socket %s failed", conn.id, exc_info=True)
            return len(closing)
        return sum(self._send_text(conn, envelope.text) for conn in targets)

    def _send_text(self, conn: Connection, text: str) -> bool:
        try:
            conn.send(text)
        except Exception as exc:  # one dead socket must not break a fan-out
            log.debug("send to socket %s of user %s failed: %r", conn.id, conn.user_id, exc)
            return False
        return True
