"""The hot path of a call in a cluster: relay a call's frames node to node, past the leader.

Once a call is active with both sockets bound, the leader sends each socket's node a route
(call, this socket -> the peer's socket, who "from" is), and that node relays the call's
`ice_candidate`, `call_description` and `call_media` frames straight to the peer's node. A relay
that finds the peer's socket gone goes to the leader after all (which keeps it for a resume),
and the leader withdraws routes whenever the call's sockets change or it ends. Route
announcements are fenced by the lease (lease.py). Direct calls only: a group call has no route
(CallRegistry.routes lists direct calls), so its signals, each addressed with `to`, go to the
leader, which checks both ends are in the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from . import protocol
from .hub import Connection, Envelope, Hub, node_of
from .lease import FENCE
from .protocol import RelaySend, User
from .redisbus import RedisBus

# Publish a route to a node. KEYS: lease; ARGV: token, channel, payload.
ROUTE = FENCE + "return redis.call('PUBLISH', ARGV[2], ARGV[3])"

# The active calls with both sockets bound: id -> (caller, socket, callee, socket).
Routes = dict[str, tuple[User, str, User, str]]


class Relay:
    """Routes of this node's sockets (node side) and the routes announced (leader side)."""

    def __init__(
        self, hub: Hub, bus: RedisBus, lease_key: str, to_leader: Callable[[dict[str, Any]], None]
    ) -> None:
        self.hub = hub
        self.bus = bus
        self._lease_key = lease_key
        self._to_leader = to_leader
        self._route_script = bus.control.register_script(ROUTE)
        # Node side: (call id, local socket id) -> (peer socket id, this side as "from").
        self._routes: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        # Leader side: the routes last announced, call id -> (caller socket, callee socket).
        self._announced: dict[str, tuple[str, str]] = {}

    def forget(self, conn_id: str) -> None:
        """Drop the routes of a socket that closed."""
        for key in [k for k in list(self._routes) if k[1] == conn_id]:
            self._routes.pop(key, None)

    def relay(self, conn: Connection, message: RelaySend, raw: str) -> bool:
        """Relay a candidate, description or media state along a route; False: ask the leader."""
        route = self._routes.get((message.call_id, conn.id))
        if route is None:
            return False
        peer_conn, me = route
        text = protocol.dump(protocol.relayed(message, me))
        local = self.hub.connection(peer_conn)
        if local is not None:
            return self.hub.send(local, text)
        if node_of(peer_conn) == self.bus.node:
            return False  # the peer's socket here is gone
        bounce = {"e": "signal", "conn": conn.id, "user_id": conn.user_id, "raw": raw}
        relay = Envelope("relay", 0, text=text, conn_id=peer_conn, data=bounce)
        self.bus.post(node_of(peer_conn), relay)
        return True

    def receive(self, envelope: Envelope) -> int:
        """Take a route from the leader, or a relay from another node, for a socket here."""
        data = envelope.data or {}
        conn_id = envelope.conn_id or ""
        if envelope.op == "route":
            self._routes[(data["call_id"], conn_id)] = (data["peer_conn"], data["me"])
        elif envelope.op == "unroute":
            self._routes.pop((data["call_id"], conn_id), None)
        elif envelope.op == "relay":
            target = self.hub.connection(conn_id)
            if target is not None and self.hub.send(target, envelope.text):
                return 1
            self._to_leader(dict(data))  # the peer's socket is gone: the leader keeps it for them
        return 0

    def announce(self, current: Routes, token: str, lost: Callable[[], None]) -> None:
        """Leader: tell the nodes of both sockets of each active call how to relay directly.

        `lost` is called (and raises) when a fenced announcement finds another leader.
        """
        for call_id, (old_a, old_b) in list(self._announced.items()):
            now = current.get(call_id)
            if now is None or (now[1], now[3]) != (old_a, old_b):
                for conn_id in (old_a, old_b):
                    self._send("unroute", conn_id, {"call_id": call_id}, token, lost)
                del self._announced[call_id]
        for call_id, (caller, a, callee, b) in current.items():
            if call_id in self._announced:
                continue
            self._send("route", a, {"call_id": call_id, "peer_conn": b,
                                    "me": caller.model_dump()}, token, lost)  # fmt: skip
            self._send("route", b, {"call_id": call_id, "peer_conn": a,
                                    "me": callee.model_dump()}, token, lost)  # fmt: skip
            self._announced[call_id] = (a, b)

    def clear_announced(self) -> None:
        """Forget what was announced (a new leader announces every route again)."""
        self._announced.clear()

    def _send(self, op: str, conn_id: str, data: dict[str, Any], token: str,
              lost: Callable[[], None]) -> None:  # fmt: skip
        envelope = Envelope(op, 0, conn_id=conn_id, data=data)  # type: ignore[arg-type]
        node = node_of(conn_id)
        if node == self.bus.node:
            self.receive(envelope)
            return
        payload = json.dumps(asdict(envelope), separators=(",", ":"))
        args = [token, self.bus.channel(node), payload]
        if self._route_script(keys=[self._lease_key], args=args) < 0:
            lost()
