"""Where call signals are decided: this process's registry, or the cluster's one leader.

One worker (no broker): `LocalCalls` hands every socket event to the local CallRegistry.

Several workers or hosts (`REDIS_URL`): the call registry must see every signal of a call in one
place, because busy, glare and "answered elsewhere" compare calls of different users. One node at
a time holds the lease `<prefix>:leader` (renewed every second, lost after `lease` seconds) and
runs the registry. Every other node forwards its sockets' events to the list `<prefix>:calls-queue`
(a list, not a pub/sub channel: what is pushed while no node leads waits for the next leader;
events older than `FORWARD_PATIENCE` seconds are dropped). The leader moves them in order to
`<prefix>:calls-inflight` while it applies them, so those a dying leader had taken are applied by
the next one (at least once: a candidate may arrive twice, which WebRTC ignores). The leader
answers sockets on other nodes through the hub, which routes by socket id. Before the effects of
a change of call state go out, the leader writes a snapshot of the live calls to
`<prefix>:calls-snapshot`; a node that takes the lease over restores it, keeping the sockets
that are still open bound, so a dead leader costs a few seconds of signalling and no call.
The leader also unbinds sockets of dead nodes, which starts their grace period as if they closed.

A leader can stall past its lease (a GC pause, a stopped VM, SIGSTOP) and wake while another node
leads. So every acquisition of the lease takes a new epoch (`<prefix>:leader-epoch`), the lease's
value is `<node>:<epoch>`, and every write of call state checks it in the same Redis script as the
write: the snapshot, the acknowledgement of applied events, taking events from the queue, and the
route announcements. A write that finds another epoch fails, and its leader steps down at once;
the change it was about to make never takes effect (CallRegistry.on_change raises OwnerLost before
any frame goes out or any record is written), and the event that caused it goes to the queue for
the real leader. Before applying anything, a leader whose last renewal is older than the margin
renews first, so a woken leader finds out before it acts, not after. Each epoch has its own
in-flight list, so a stale leader can never acknowledge or requeue the events its successor took.
A node taken for dead that wakes re-binds its sockets to their calls (`revived`, see redisbus).

The hot path skips the leader: once a call is active with both sockets bound, the leader sends
each socket's node a route (call, this socket -> the peer's socket, who "from" is), and that node
relays the call's `ice_candidate`, `call_description` and `call_media` frames straight to the
peer's node. A relay that finds the peer's socket gone goes to the leader after all (which keeps
it for a resume), and the leader withdraws routes whenever the call's sockets change or it ends.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import redis

from . import protocol
from .hub import Connection, Envelope, Hub, node_of
from .protocol import CallMessage, ProtocolError, RelaySend, Welcome
from .redisbus import RedisBus
from .registry import CallRegistry, OwnerLost

log = logging.getLogger("parley.signaling")

FORWARD_PATIENCE = 10.0  # seconds a forwarded event waits for a leader before it is dropped
LEASE = 3.0  # seconds the call leader lease lasts without a renewal
# A leader acts on its own clock for this share of the lease after a renewal, and renews first
# after that; renewals come every third of the lease, so only a stalled leader ever waits.
TRUST = 2 / 3

# Take the free lease with the next epoch. KEYS: lease, epoch; ARGV: node, ttl ms. 0: taken.
ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
return epoch
"""
# Every script below starts by checking that the lease still holds this leader's token (node and
# epoch): a leader that slept through its lease must not write (fencing).
_FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
"""
# Renew the lease. KEYS: lease; ARGV: token, ttl ms.
RENEW = _FENCE + "return redis.call('PEXPIRE', KEYS[1], ARGV[2])"
RELEASE = _FENCE + "return redis.call('DEL', KEYS[1])"
# Write the snapshot. KEYS: lease, snapshot; ARGV: token, snapshot.
SAVE = _FENCE + "redis.call('SET', KEYS[2], ARGV[2]) return 1"
# Acknowledge applied events. KEYS: lease, in-flight; ARGV: token, how many.
ACK = _FENCE + "redis.call('LTRIM', KEYS[2], ARGV[2], -1) return 1"
# Publish a route to a node. KEYS: lease; ARGV: token, channel, payload.
ROUTE = _FENCE + "return redis.call('PUBLISH', ARGV[2], ARGV[3])"
# Put an in-flight list back at the head of the queue, in order. KEYS: queue, in-flight.
_REQUEUE = """
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do n = n + 1 end
return n
"""
REQUEUE = _REQUEUE
# Move up to ARGV[2] more events from the queue to the in-flight list and return them; a stale
# leader instead puts back what it took (the one BLMOVE took too) and gets -1.
# KEYS: lease, queue, in-flight; ARGV: token, count.
TAKE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  while redis.call('LMOVE', KEYS[3], KEYS[2], 'RIGHT', 'LEFT') do end
  return -1
end
local out = {}
for i = 1, tonumber(ARGV[2]) do
  local v = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not v then break end
  out[i] = v
end
return out
"""
# Give back events a leader took and did not apply (it lost the lease): drop the first ARGV[1]
# (applied), put the rest back at the head of the queue. KEYS: queue, in-flight.
GIVE_BACK = "redis.call('LTRIM', KEYS[2], ARGV[1], -1)" + _REQUEUE


class CallRouter(Protocol):
    """Takes a socket's call events to the registry that owns the calls."""

    def opened(self, conn: Connection, user: protocol.User) -> None:
        """A socket opened: send its welcome and ring it if a call is ringing for its user."""

    def handle(self, conn: Connection, message: CallMessage, raw: str | bytes) -> None:
        """A socket sent a call signal (parsed, and its frame as received)."""

    def closed(self, conn: Connection) -> None:
        """A socket closed."""

    def shutdown(self) -> None:
        """Hand the calls over (if owned) and stop."""


def welcome(hub: Hub, registry: CallRegistry, user: protocol.User) -> Welcome:
    """Return the first frame of a socket: who you are, who is online, your live calls."""
    return Welcome(user=user, online=hub.online_peers(user.id), calls=registry.calls_of(user.id))


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
        self.redis = bus.redis
        self.lease = lease
        self.queue_key = bus.key("calls-queue")
        self.inflight_key = bus.key("calls-inflight", 0)  # per epoch: set when leading
        self.lease_key = bus.key("leader")
        self.epoch_key = bus.key("leader-epoch")
        self.snapshot_key = bus.key("calls-snapshot")
        self.control = bus.control  # the lease, the queue and the snapshot: never starved
        self._acquire = self.control.register_script(ACQUIRE)
        self._renew_script = self.control.register_script(RENEW)
        self._release = self.control.register_script(RELEASE)
        self._save_script = self.control.register_script(SAVE)
        self._ack = self.control.register_script(ACK)
        self._route = self.control.register_script(ROUTE)
        self._take = self.control.register_script(TAKE)
        self._requeue = self.control.register_script(REQUEUE)
        self._give_back = self.control.register_script(GIVE_BACK)
        self._leading = False
        self.epoch = 0
        self._token = ""  # the lease's value while this node leads: "<node>:<epoch>"
        self._trusted_until = 0.0  # monotonic time up to which the lease is surely ours
        self._consumer_stop = threading.Event()
        # Node side: (call id, local socket id) -> (peer socket id, this side as "from").
        self._routes: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        # Leader side: the routes last announced, call id -> (caller socket, callee socket).
        self._announced: dict[str, tuple[str, str]] = {}
        bus.attach(self._on_envelope)
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._stopped = threading.Event()
        self._tick()
        threading.Thread(target=self._lease_loop, name="parley-leader-lease", daemon=True).start()

    @property
    def leading(self) -> bool:
        """Tell whether this node runs the cluster's call registry now."""
        return self._leading

    # --- CallRouter ------------------------------------------------------------------------

    def opened(self, conn: Connection, user: protocol.User) -> None:
        self.bus.ensure_alive()
        self._submit({"e": "opened", "conn": conn.id, "user": user.model_dump()})

    def handle(self, conn: Connection, message: CallMessage, raw: str | bytes) -> None:
        # A node that slept past its heartbeat rejoins before acting on what its sockets sent.
        self.bus.ensure_alive()
        text = raw.decode() if isinstance(raw, bytes) else raw
        if isinstance(message, RelaySend) and self._relay(conn, message, text):
            return
        self._submit({"e": "signal", "conn": conn.id, "user_id": conn.user_id, "raw": text})

    def closed(self, conn: Connection) -> None:
        for key in [k for k in list(self._routes) if k[1] == conn.id]:
            self._routes.pop(key, None)
        self._submit({"e": "closed", "conn": conn.id, "user_id": conn.user_id})

    def shutdown(self) -> None:
        self._stopped.set()
        with self._lock:
            if not self._leading:
                return
            try:
                self._save()
                self._release(keys=[self.lease_key], args=[self._token])
            except OwnerLost:
                return
            except redis.RedisError:
                log.warning("could not hand the call registry over", exc_info=True)
            self._stop_leading()

    # --- the relay fast path ----------------------------------------------------------------

    def _relay(self, conn: Connection, message: RelaySend, raw: str) -> bool:
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

    def _on_envelope(self, envelope: Envelope) -> int:
        """Routes from the leader, and relays from other nodes, for sockets on this node."""
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
            self._submit(dict(data))  # the peer's socket is gone: the leader keeps it for them
        elif envelope.op == "revived":
            # This node was taken for dead: its sockets were unbound from their calls. Bind them
            # again, ahead of anything they sent (this runs before those frames are handled).
            for conn in self.hub.connections():
                self._submit({"e": "revived", "conn": conn.id, "user_id": conn.user_id})
        return 0

    def _announce_routes(self) -> None:
        """Leader: tell the nodes of both sockets of each active call how to relay directly."""
        current = self.registry.routes()
        for call_id, (old_a, old_b) in list(self._announced.items()):
            now = current.get(call_id)
            if now is None or (now[1], now[3]) != (old_a, old_b):
                for conn_id in (old_a, old_b):
                    self._send_route("unroute", conn_id, {"call_id": call_id})
                del self._announced[call_id]
        for call_id, (caller, a, callee, b) in current.items():
            if call_id in self._announced:
                continue
            self._send_route("route", a, {"call_id": call_id, "peer_conn": b,
                                          "me": caller.model_dump()})  # fmt: skip
            self._send_route("route", b, {"call_id": call_id, "peer_conn": a,
                                          "me": callee.model_dump()})  # fmt: skip
            self._announced[call_id] = (a, b)

    def _send_route(self, op: str, conn_id: str, data: dict[str, Any]) -> None:
        envelope = Envelope(op, 0, conn_id=conn_id, data=data)  # type: ignore[arg-type]
        node = node_of(conn_id)
        if node == self.bus.node:
            self._on_envelope(envelope)
            return
        payload = json.dumps(asdict(envelope), separators=(",", ":"))
        if (
            self._route(keys=[self.lease_key], args=[self._token, self.bus.channel(node), payload])
            < 0
        ):
            self._lost()

    # --- forwarding ------------------------------------------------------------------------

    def _submit(self, event: dict[str, Any]) -> None:
        if self._holds_lease():
            try:
                self._apply(event)
                return
            except OwnerLost:
                pass  # the lease moved while applying: the new leader applies it
        self._enqueue(event)

    def _enqueue(self, event: dict[str, Any]) -> None:
        event.setdefault("t", time.time())
        try:
            self.redis.rpush(self.queue_key, json.dumps(event, separators=(",", ":")))
        except redis.RedisError:
            log.exception("could not forward a %s event to the call leader", event["e"])

    def _consume(self, stop: threading.Event) -> None:
        """The leader's loop: apply forwarded events in the order they were queued.

        Events move to an in-flight list while they are applied (Redis's reliable-queue
        pattern): a leader that dies with events in flight leaves them for the next one.
        """
        inflight, token = self.inflight_key, self._token
        keys = [self.lease_key, self.queue_key, inflight]
        while not stop.is_set() and self._holds_lease():
            try:
                first = self.control.blmove(self.queue_key, inflight, 1, "LEFT", "RIGHT")
                if first is None:
                    continue
                more = self._take(keys=keys, args=[token, 199])
            except redis.RedisError:
                log.warning("reading forwarded call events failed", exc_info=True)
                stop.wait(0.5)
                continue
            if more == -1:  # another leader took over: what was taken is back in the queue
                self._lost()
                return
            batch = [first, *more]
            applied = 0
            for payload in batch:
                if not self._holds_lease():
                    break
                event = json.loads(payload)
                try:
                    if time.time() - float(event.get("t", 0)) > FORWARD_PATIENCE:
                        log.error("dropped a stale %s event (no leader for a while)", event["e"])
                    else:
                        self._apply(event)
                except OwnerLost:
                    break
                except Exception:
                    log.exception("applying a forwarded %s event failed", event["e"])
                applied += 1
            try:
                if applied < len(batch):
                    # The lease moved mid-batch: the rest is the next leader's, in order.
                    self._give_back(keys=[self.queue_key, inflight], args=[applied])
                    return
                if self._ack(keys=[self.lease_key, inflight], args=[token, applied]) < 0:
                    self._lost()
                    return
            except redis.RedisError:
                log.warning("could not clear applied call events", exc_info=True)

    # --- leading ---------------------------------------------------------------------------

    def _apply(self, event: dict[str, Any]) -> None:
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
            keys = [self.lease_key, self.snapshot_key]
            if self._save_script(keys=keys, args=[self._token, snapshot]) < 0:
                self._lost()
            self._announce_routes()

    def _lost(self) -> None:
        """A fenced write found another leader's epoch: step down now; raise OwnerLost."""
        # No self._lock here: the lease loop may hold it while it waits for this save.
        if self._leading:
            log.warning("node %s lost the call leader lease (epoch %d)", self.bus.node, self.epoch)
            self._stop_leading()
        raise OwnerLost

    def _holds_lease(self) -> bool:
        """Tell whether this node leads, renewing first if the last renewal is too old to trust."""
        if not self._leading:
            return False
        if time.monotonic() < self._trusted_until:
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
        started = time.monotonic()
        ttl = int(self.lease * 1000)
        if self._renew_script(keys=[self.lease_key], args=[self._token, ttl]) != 1:
            log.warning("node %s lost the call leader lease (epoch %d)", self.bus.node, self.epoch)
            self._stop_leading()
            return False
        self._trusted_until = started + self.lease * TRUST
        return True

    def _lease_loop(self) -> None:
        while not self._stopped.wait(self.lease / 3):
            try:
                self._tick()
            except redis.RedisError:
                log.warning("call leader lease check failed", exc_info=True)
            except Exception:
                log.exception("call leader tick failed")

    def _tick(self) -> None:
        ttl = int(self.lease * 1000)
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
            started = time.monotonic()
            epoch = int(self._acquire(keys=[self.lease_key, self.epoch_key],
                                      args=[self.bus.node, ttl]))  # fmt: skip
            if epoch:
                self._start_leading(epoch, started)

    def _start_leading(self, epoch: int, started: float) -> None:
        self.epoch = epoch
        self._token = f"{self.bus.node}:{epoch}"
        self._trusted_until = started + self.lease * TRUST
        self.inflight_key = self.bus.key("calls-inflight", epoch)
        raw = self.control.get(self.snapshot_key)
        calls = json.loads(raw) if raw else []
        self.registry.reset()
        self._announced.clear()
        self.registry.restore(calls, alive=self._socket_alive)
        # What the last leader had taken and not applied (a stale leader that wakes and takes
        # more puts that back itself: TAKE).
        requeued = self._requeue(keys=[self.queue_key, self.bus.key("calls-inflight", epoch - 1)])
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
