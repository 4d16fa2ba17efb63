"""Where call signals are decided: this process's registry, or the cluster's one leader.

One worker (no broker): `LocalCalls` hands every socket event to the local CallRegistry.

Several workers or hosts (`REDIS_URL`): the call registry must see every signal of a call in one
place, because busy, glare and "answered elsewhere" compare calls of different users. One node at
a time holds the lease (lease.py) and runs the registry; every other node forwards its sockets'
events through the reliable queue (eventqueue.py). The leader answers sockets on other nodes
through the hub, which routes by socket id. Before the effects of a change of call state go out,
the leader writes a snapshot of the live calls (snapshot.py) to `<prefix>:calls-snapshot`; a node
that takes the lease over restores it, keeping the sockets that are still open bound, so a dead
leader costs a few seconds of signalling and no call. The leader also unbinds sockets of dead
nodes, which starts their grace period as if they closed.

Every write of call state is fenced by the lease: the snapshot, the acknowledgement of applied
events, taking events from the queue, and the route announcements. A write that finds another
epoch fails, and its leader steps down at once; the change it was about to make never takes
effect (CallRegistry.on_change raises OwnerLost before any frame goes out or any record is
written), and the event that caused it goes to the queue for the real leader. Before applying
anything, a leader whose last renewal is older than the margin renews first, so a woken leader
finds out before it acts, not after. A node taken for dead that wakes re-binds its sockets to
their calls (`revived`, see redisbus). The hot path skips the leader: relay.py.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from . import protocol
from .eventqueue import EventQueue
from .hub import Connection, Envelope, Hub, node_of
from .lease import FENCE, LEASE, Lease
from .protocol import CallMessage, ProtocolError, RelaySend, Welcome
from .redisbus import RedisBus
from .registry import CallRegistry, OwnerLost
from .relay import Relay

log = logging.getLogger("parley.signaling")

# Write the snapshot. KEYS: lease, snapshot; ARGV: token, snapshot.
SAVE = FENCE + "redis.call('SET', KEYS[2], ARGV[2]) return 1"


class CallRouter(Protocol):
    """Takes a socket's call events to the registry that owns the calls."""

    def opened(self, conn: Connection, user: protocol.User) -> None:
        """A socket opened: send its welcome and ring it if a call is ringing for its user."""

    def handle(self, conn: Connection, message: CallMessage, raw: str | bytes) -> None:
        """A socket sent a call signal (parsed, and its frame as received)."""

    def closed(self, conn: Connection) -> None:
        """A socket closed."""

    def members_changed(self, room_id: int, members: list[int], removed: list[int]) -> None:
        """A group's members changed: its live call follows (groupcalls.py)."""

    def shutdown(self) -> None:
        """Hand the calls over (if owned) and stop."""


def welcome(hub: Hub, registry: CallRegistry, user: protocol.User) -> Welcome:
    """Return the first frame of a socket: who you are, who is online, your live calls."""
    return Welcome(
        user=user,
        online=hub.online_peers(user.id),
        calls=registry.calls_of(user.id),
        group_calls=registry.groups.states_for(user.id),
    )


class Handover(Protocol):
    """Where a lone process keeps its live calls for the next one (handover.CallsFile)."""

    def keep(self, calls: list[dict[str, Any]]) -> None:
        """Keep a registry snapshot for the next process."""

    def take(self) -> list[dict[str, Any]]:
        """Return the calls the last process kept, once."""


class LocalCalls:
    """One process: the local registry owns every call, and hands them over across a restart."""

    def __init__(self, hub: Hub, registry: CallRegistry, handover: Handover | None = None) -> None:
        self.hub = hub
        self.registry = registry
        self.handover = handover
        calls = handover.take() if handover is not None else []
        if calls:
            registry.restore(calls)

    def opened(self, conn: Connection, user: protocol.User) -> None:
        self.hub.send(conn, welcome(self.hub, self.registry, user))
        self.registry.socket_opened(conn)

    def handle(self, conn: Connection, message: CallMessage, raw: str | bytes) -> None:
        self.registry.handle(conn, message)

    def closed(self, conn: Connection) -> None:
        self.registry.socket_closed(conn)

    def members_changed(self, room_id: int, members: list[int], removed: list[int]) -> None:
        self.registry.groups.members_changed(room_id, members, removed)

    def shutdown(self) -> None:
        if self.handover is not None:
            self.handover.keep(self.registry.snapshot())
        self.registry.close()


@dataclass
class RemoteConn:
    """A socket on another node, as the leader's registry sees it; sends go through the hub."""

    id: str
    user_id: int
    hub: Hub
    sid: str | None = None

    def send(self, text: str) -> None:
        if not self.hub.send(self.id, text):
            raise ConnectionError("socket gone")

    def close(self, code: int, reason: str) -> None:
        """The leader never closes sockets; their own node does."""


class LeaderCalls:
    """Several nodes: forward call events to the node holding the lease, or be that node."""

    def __init__(self, hub: Hub, registry: CallRegistry, bus: RedisBus, lease: float = LEASE):
        self.hub = hub
        self.registry = registry
        self.bus = bus
        self.control = bus.control  # the lease, the queue and the snapshot: never starved
        lease_key, epoch_key = bus.key("leader"), bus.key("leader-epoch")
        self.lease = Lease(self.control, lease_key, epoch_key, bus.node, lease)
        self.queue = EventQueue(bus, self.lease.key)
        self.relay = Relay(hub, bus, self.lease.key, self._submit)
        self.snapshot_key = bus.key("calls-snapshot")
        self._save_script = self.control.register_script(SAVE)
        self._leading = False
        self._consumer_stop = threading.Event()
        bus.attach(self._on_envelope)
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._stopped = threading.Event()
        self._tick()
        threading.Thread(target=self._lease_loop, name="parley-leader-lease", daemon=True).start()

    # --- CallRouter ------------------------------------------------------------------------

    def opened(self, conn: Connection, user: protocol.User) -> None:
        self.bus.ensure_alive()
        self._submit({"e": "opened", "conn": conn.id, "user": user.model_dump()})

    def handle(self, conn: Connection, message: CallMessage, raw: str | bytes) -> None:
        # A node that slept past its heartbeat rejoins before acting on what its sockets sent.
        self.bus.ensure_alive()
        text = raw.decode() if isinstance(raw, bytes) else raw
        if isinstance(message, RelaySend) and self.relay.relay(conn, message, text):
            return
        self._submit({"e": "signal", "conn": conn.id, "user_id": conn.user_id, "raw": text})

    def closed(self, conn: Connection) -> None:
        self.relay.forget(conn.id)
        self._submit({"e": "closed", "conn": conn.id, "user_id": conn.user_id})

    def members_changed(self, room_id: int, members: list[int], removed: list[int]) -> None:
        self._submit({"e": "members", "room_id": room_id, "members": members, "removed": removed})

    def shutdown(self) -> None:
        self._stopped.set()
        with self._lock:
            if not self._leading:
                return
            try:
                self._save()
                self.lease.release()
            except OwnerLost:
                return
            except redis.RedisError:
                log.warning("could not hand the call registry over", exc_info=True)
            self._stop_leading()

    def _on_envelope(self, envelope: Envelope) -> int:
        """Routes from the leader and relays from other nodes; `revived` for this node."""
        if envelope.op != "revived":
            return self.relay.receive(envelope)
        # This node was taken for dead: its sockets were unbound from their calls. Bind them
        # again, ahead of anything they sent (this runs before those frames are handled).
        for conn in self.hub.connections():
            self._submit({"e": "revived", "conn": conn.id, "user_id": conn.user_id})
        return 0

    # --- forwarding ------------------------------------------------------------------------

    def _submit(self, event: dict[str, Any]) -> None:
        if self._holds_lease():
            try:
                self._apply(event)
                return
            except OwnerLost:
                pass  # the lease moved while applying: the new leader applies it
        self.queue.push(event)

    def _consume(self, stop: threading.Event) -> None:
        """The leader's loop: apply forwarded events in the order they were queued."""
        self.queue.consume(stop, self.lease.token, self._holds_lease, self._apply, self._lost)

    # --- leading ---------------------------------------------------------------------------

    def _apply(self, event: dict[str, Any]) -> None:
        if event["e"] == "members":  # no socket: a group's members changed over HTTP
            self.registry.groups.members_changed(event["room_id"], event["members"],
                                                 event["removed"])  # fmt: skip
            return  # it saved any change of state (on_change)
        conn_id = event["conn"]
        local = self.hub.connection(conn_id)
        kind = event["e"]
        if kind == "revived":
            woken: Connection = local or RemoteConn(conn_id, int(event["user_id"]), self.hub)
            self.registry.socket_revived(woken)  # saves (on_change) before it sends the backlog
            user = self.registry.store.user(woken.user_id)
            if user is not None:  # and tell it what it missed asleep, as after a reconnect
                self.hub.send(woken, welcome(self.hub, self.registry, user))
            return
        if kind == "opened":
            user = protocol.User.model_validate(event["user"])
            conn: Connection = local or RemoteConn(conn_id, user.id, self.hub)
            self.hub.send(conn, welcome(self.hub, self.registry, user))
            self.registry.socket_opened(conn)
        else:
            conn = local or RemoteConn(conn_id, int(event["user_id"]), self.hub)
            if kind == "closed":
                self.registry.socket_closed(conn)
            else:
                try:
                    message = protocol.parse(event["raw"])
                except ProtocolError:  # its node parsed it already; never expected here
                    log.exception("a forwarded call signal did not parse")
                    return
                self.registry.handle(conn, message)  # type: ignore[arg-type]
                return  # the registry saved any change of state (on_change)
        self._save()

    def _save(self) -> None:
        """Write the snapshot and routes; raise OwnerLost (and step down) if the lease moved."""
        # One save at a time: a snapshot taken earlier must never land after a later one.
        with self._save_lock:
            if not self._leading:
                raise OwnerLost
            snapshot = json.dumps(self.registry.snapshot(ringing=True), separators=(",", ":"))
            keys = [self.lease.key, self.snapshot_key]
            if self._save_script(keys=keys, args=[self.lease.token, snapshot]) < 0:
                self._lost()
            self.relay.announce(self.registry.routes(), self.lease.token, self._lost)

    def _lost(self) -> None:
        """A fenced write found another leader's epoch: step down now; raise OwnerLost."""
        # No self._lock here: the lease loop may hold it while it waits for this save.
        if self._leading:
            log.warning("node %s lost the call leader lease (epoch %d)", self.bus.node,
                        self.lease.epoch)  # fmt: skip
            self._stop_leading()
        raise OwnerLost

    def _holds_lease(self) -> bool:
        """Tell whether this node leads, renewing first if the last renewal is too old to trust."""
        if not self._leading:
            return False
        if self.lease.trusted():
            return True
        with self._lock:
            try:
                return self._renew()
            except redis.RedisError:
                log.warning("could not renew the call leader lease", exc_info=True)
                return False

    def _renew(self) -> bool:
        """Renew the lease (lock held); step down and return False when it is gone."""
        if not self._leading:
            return False
        if not self.lease.renew():
            log.warning("node %s lost the call leader lease (epoch %d)", self.bus.node,
                        self.lease.epoch)  # fmt: skip
            self._stop_leading()
            return False
        return True

    def _lease_loop(self) -> None:
        while not self._stopped.wait(self.lease.seconds / 3):
            try:
                self._tick()
            except redis.RedisError:
                log.warning("call leader lease check failed", exc_info=True)
            except Exception:
                log.exception("call leader tick failed")

    def _tick(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            if self._leading:
                if not self._renew():
                    return
                self._unbind_dead()
                try:
                    self._save()
                except OwnerLost:
                    return
                return
            if self.lease.acquire():
                self._start_leading()

    def _start_leading(self) -> None:
        epoch = self.lease.epoch
        raw = self.control.get(self.snapshot_key)
        calls = json.loads(raw) if raw else []
        self.registry.reset()
        self.relay.clear_announced()
        self.registry.restore(calls, alive=self._socket_alive)
        requeued = self.queue.take_over(epoch)
        if requeued:
            log.warning("%d call event(s) were in flight at the last leader", requeued)
        self._consumer_stop = threading.Event()
        consumer = threading.Thread(
            target=self._consume, args=(self._consumer_stop,), name="parley-calls", daemon=True
        )
        self.registry.on_change = self._save
        self._leading = True
        consumer.start()
        log.info("node %s leads the call registry, epoch %d (%d live call(s))", self.bus.node,
                 epoch, len(calls))  # fmt: skip

    def _stop_leading(self) -> None:
        self._leading = False
        self.registry.on_change = None
        self._consumer_stop.set()
        self.registry.reset()

    def _socket_alive(self, conn_id: str) -> bool:
        node = node_of(conn_id)
        if node == self.bus.node:
            return self.hub.connection(conn_id) is not None
        return self.bus.alive(node)

    def _unbind_dead(self) -> None:
        verdict: dict[str, bool] = {}
        for conn_id, user_id in self.registry.bound_sockets():
            node = node_of(conn_id)
            if node == self.bus.node:
                continue
            if node not in verdict:
                verdict[node] = self.bus.alive(node)
            if not verdict[node]:
                log.info("socket %s of user %s went with node %s", conn_id, user_id, node)
                self.registry.socket_closed(RemoteConn(conn_id, user_id, self.hub), lost=True)
