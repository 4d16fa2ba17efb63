"""Where every user's sockets are: user -> connections, delivery, presence. No Flask here.

One Hub per app (per worker). Deliveries go through a Bus: the in-memory bus hands them straight
back to this hub; the Redis bus (redisbus.py) carries them to every worker that holds one of the
user's sockets, and answers "is this user online anywhere?". Presence goes to the people a user
shares a room with, when the user's first socket (anywhere) opens and when the last one closes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable
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


Op = Literal[
    "deliver",
    "close_session",
    "link",
    "unlink",
    "conn",
    "gone",
    "revived",
    "route",
    "unroute",
    "relay",
]


@dataclass(frozen=True)
class Envelope:
    """What travels on the bus.

    deliver: a frame for a user's sockets; close_session: close a session's sockets; link: the
    user now shares a room with `peer`, unlink: shares none any more; conn: a frame for the one
    socket `conn_id`; gone: the user's last socket went with a dead worker, and revived: this
    node was taken for dead and is back (both only ever handed to the local hub and router). route,
    unroute and relay belong to the call router (cluster.py) and the hub ignores them.
    """

    op: Op
    user_id: int
    text: str = ""
    exclude: str | None = None
    sid: str | None = None
    code: int = 1000
    conn_id: str | None = None
    peer: int | None = None
    data: dict[str, Any] | None = None


def node_of(conn_id: str) -> str:
    """Return the node (worker) part of a socket id, `<node>.<random>`."""
    return conn_id.split(".", 1)[0]


class Bus(Protocol):
    """Carries envelopes between the hubs of every worker, and knows who is online where."""

    node: str

    def attach(self, receiver: Callable[[Envelope], int]) -> None:
        """Register the local hub's receiver."""

    def publish(self, envelope: Envelope) -> int:
        """Send an envelope to every node holding the user's sockets; return how many it reached
        (sockets for the in-memory bus, nodes for Redis): 0 means the user is offline."""

    def to_node(self, node: str, envelope: Envelope) -> bool:
        """Send an envelope to one node; False when that node is gone."""

    def joined(self, user_id: int) -> bool:
        """The user's first socket on this node opened; True when they were offline elsewhere."""

    def left(self, user_id: int) -> bool:
        """The user's last socket on this node closed; True when they are offline everywhere."""

    def online_elsewhere(self, user_ids: Collection[int]) -> set[int]:
        """Return which of these users have a socket on another node."""

    def close(self) -> None:
        """Leave the other nodes (at shutdown)."""


class InMemoryBus:
    """A bus for one process: publishing is calling the local hub."""

    node = "local"

    def __init__(self) -> None:
        self._receivers: list[Callable[[Envelope], int]] = []

    def attach(self, receiver: Callable[[Envelope], int]) -> None:
        """Register the local hub's receiver."""
        self._receivers.append(receiver)

    def publish(self, envelope: Envelope) -> int:
        """Hand the envelope to every attached hub and return the sockets reached."""
        return sum(receive(envelope) for receive in self._receivers)

    def to_node(self, node: str, envelope: Envelope) -> bool:
        """There is only this node."""
        return node == self.node and self.publish(envelope) > 0

    def joined(self, user_id: int) -> bool:
        """There is no elsewhere: the first socket here is the first socket."""
        return True

    def left(self, user_id: int) -> bool:
        """There is no elsewhere: the last socket here was the last one."""
        return True

    def online_elsewhere(self, user_ids: Collection[int]) -> set[int]:
        """There is no elsewhere."""
        return set()

    def close(self) -> None:
        """There are no other nodes to leave."""


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

    @property
    def node(self) -> str:
        """This hub's node id: the prefix of the ids of the sockets it holds."""
        return self.bus.node

    def add(self, conn: Connection) -> bool:
        """Register a socket; return True when it brought its user online (presence sent)."""
        with self._lock:
            first = conn.user_id not in self._by_user
            self._by_user.setdefault(conn.user_id, {})[conn.id] = conn
            self._by_id[conn.id] = conn
        if not first:
            return False
        peers = set(self._peers_of(conn.user_id))
        with self._lock:
            if conn.user_id in self._by_user:
                self._peers[conn.user_id] = peers | self._peers.get(conn.user_id, set())
        if not self.bus.joined(conn.user_id):
            return False  # already online on another node
        self._announce(conn.user_id, online=True)
        return True

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
        last = self.bus.left(conn.user_id)
        if last:
            self._announce(conn.user_id, online=False)
        with self._lock:
            if conn.user_id not in self._by_user:
                self._peers.pop(conn.user_id, None)
        return last

    def connection(self, conn_id: str) -> Connection | None:
        """Return the open socket with this id, if it is on this hub."""
        # One dict read is atomic (GIL, and gevent never switches inside it): no lock on the
        # path every relayed frame takes.
        return self._by_id.get(conn_id)

    def connections(self) -> list[Connection]:
        """Return every open socket on this hub."""
        with self._lock:
            return list(self._by_id.values())

    def connections_of(self, user_id: int) -> list[Connection]:
        """Return the user's open sockets on this hub."""
        with self._lock:
            return list(self._by_user.get(user_id, {}).values())

    def is_online(self, user_id: int) -> bool:
        """Tell whether the user has at least one open socket, here or on another node."""
        with self._lock:
            if user_id in self._by_user:
                return True
        return user_id in self.bus.online_elsewhere([user_id])

    # --- presence --------------------------------------------------------------------------

    def online_peers(self, user_id: int) -> list[int]:
        """Return the ids of the user's room peers that are online (on any node), sorted."""
        with self._lock:
            cached = self._peers.get(user_id)
        peers = set(cached) if cached is not None else set(self._peers_of(user_id))
        with self._lock:
            here = {p for p in peers if p in self._by_user}
        return sorted(here | self.bus.online_elsewhere(peers - here))

    def link(self, a: int, b: int) -> None:
        """Record that a and b now share a room and tell each that the other is online."""
        # Every node holding a's or b's sockets updates its peer cache (for later presence).
        self.bus.publish(Envelope("link", a, peer=b))
        self.bus.publish(Envelope("link", b, peer=a))
        if self.is_online(a) and self.is_online(b):
            self.deliver(a, Presence(user_id=b, online=True))
            self.deliver(b, Presence(user_id=a, online=True))

    def unlink(self, a: int, b: int) -> None:
        """Record that a and b share no room any more: neither hears the other's presence."""
        self.bus.publish(Envelope("unlink", a, peer=b))
        self.bus.publish(Envelope("unlink", b, peer=a))

    def _rejoin(self) -> None:
        """Record this node's users again after the cluster took the node for dead."""
        with self._lock:
            users = list(self._by_user)
        for user_id in users:
            if self.bus.joined(user_id):
                self._announce(user_id, online=True)

    def _announce(self, user_id: int, *, online: bool) -> None:
        with self._lock:
            cached = self._peers.get(user_id)
        peers = sorted(cached if cached is not None else self._peers_of(user_id))
        message = dump(Presence(user_id=user_id, online=online))
        for peer in peers:
            self.deliver(peer, message)

    # --- delivery --------------------------------------------------------------------------

    def deliver(self, user_id: int, message: Outgoing | str, exclude: str | None = None) -> int:
        """Send a message to every socket of a user (but `exclude`); return sockets reached."""
        text = message if isinstance(message, str) else dump(message)
        return self.bus.publish(Envelope("deliver", user_id, text=text, exclude=exclude))

    def send(self, conn: Connection | str, message: Outgoing | str) -> bool:
        """Send a message to one socket (a connection or its id, here or on another node).

        Return False when it is known to be gone.
        """
        text = message if isinstance(message, str) else dump(message)
        conn_id = conn if isinstance(conn, str) else conn.id
        target = self.connection(conn_id)
        if target is not None:
            return self._send_text(target, text)
        node = node_of(conn_id)
        if node == self.node:
            return False
        return self.bus.to_node(node, Envelope("conn", 0, text=text, conn_id=conn_id))

    def close_session(self, user_id: int, sid: str | None, code: int, reason: str) -> None:
        """Close every socket of this user opened by the session `sid`."""
        self.bus.publish(Envelope("close_session", user_id, text=reason, sid=sid, code=code))

    def _receive(self, envelope: Envelope) -> int:
        """Act on an envelope from the bus for the sockets this hub holds."""
        if envelope.op == "conn":
            target = self.connection(envelope.conn_id or "")
            return 0 if target is None else int(self._send_text(target, envelope.text))
        if envelope.op in ("link", "unlink"):
            with self._lock:
                peers = self._peers.get(envelope.user_id)
                if peers is not None and envelope.peer is not None:
                    if envelope.op == "link":
                        peers.add(envelope.peer)
                    else:
                        peers.discard(envelope.peer)
            return 0
        if envelope.op == "gone":
            # The user's sockets went with a dead node and none is left anywhere.
            self._announce(envelope.user_id, online=False)
            return 0
        if envelope.op == "revived":
            self._rejoin()
            return 0
        if envelope.op not in ("deliver", "close_session"):
            return 0
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
