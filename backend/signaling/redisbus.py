"""The Redis bus: signalling across gunicorn workers and hosts through Redis pub/sub.

Each worker is a node with a random id. Its sockets' ids start with that id, and it listens on
its own channel `<prefix>:node:<node>`. Redis holds who is where:

- `<prefix>:alive:<node>`: the node's pid, refreshed every `heartbeat` seconds, expiring after
  `dead_after`. A node whose key expired is dead (killed, hung, or cut off from Redis).
- `<prefix>:presence:<user>`: a hash of the nodes holding at least one of the user's sockets.
- `<prefix>:users:<node>`: the users with sockets on that node, so a dead node can be cleaned up.
- `<prefix>:nodes`: every node that has not been cleaned up yet.

Delivering to a user publishes on the channel of each node in their presence hash, in one Lua
script whose answer (the subscribers reached) says whether the user is online. Every node checks
the others' heartbeats; the first to see one expired takes a lock, removes the dead node from the
presence hashes and tells the local hub which users went offline with it.

A node can outlive that verdict: a worker stopped (SIGSTOP, a long GC pause, a frozen VM) for
longer than `dead_after` wakes up with its sockets open, and the cluster has already taken them
offline and unbound them from their calls. Each beat tells whether the node's key had expired;
when it had, the node hands a `revived` envelope to its receivers before it trusts itself again
(the hub re-registers its users' presence, the call router re-binds its sockets). A socket frame
that arrives when the last beat is too old to vouch for the node beats first (`ensure_alive`), so
nothing a woken node's sockets sent is acted on before the node has rejoined.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import asdict
from typing import Any

import redis

from .hub import Envelope

log = logging.getLogger("parley.signaling")

REDIS_CONNECTIONS = 64  # per worker

# Publish the envelope to the channel of every node in the user's presence hash.
DELIVER = """
local n = 0
for _, node in ipairs(redis.call('HKEYS', KEYS[1])) do
  n = n + redis.call('PUBLISH', ARGV[1] .. node, ARGV[2])
end
return n
"""

# Any live node other than ARGV[2] in the presence hash KEYS[1]? (ARGV[1]: alive key prefix)
_LIVE_ELSEWHERE = """
local function live_elsewhere(key, alive, me)
  for _, node in ipairs(redis.call('HKEYS', key)) do
    if node ~= me and redis.call('EXISTS', alive .. node) == 1 then return true end
  end
  return false
end
"""


# Both end the same way: 1 when the user's presence changed (no other live node has them).
_CHANGED = """
if live_elsewhere(KEYS[1], ARGV[1], ARGV[2]) then return 0 end
return 1
"""

# KEYS: presence:<user>, users:<node>; ARGV: alive prefix, node, user. 1 if offline elsewhere.
JOIN = (
    _LIVE_ELSEWHERE
    + """
redis.call('HSET', KEYS[1], ARGV[2], 1)
redis.call('SADD', KEYS[2], ARGV[3])"""
    + _CHANGED
)

# KEYS: presence:<user>, users:<node>; ARGV: alive prefix, node, user. 1 if now offline.
LEAVE = (
    _LIVE_ELSEWHERE
    + """
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])"""
    + _CHANGED
)

# KEYS: presence hashes; ARGV: alive prefix, node. One 0/1 per key.
ONLINE = (
    _LIVE_ELSEWHERE
    + """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = live_elsewhere(key, ARGV[1], ARGV[2]) and 1 or 0
end
return out
"""
)


# KEYS: alive:<node>, nodes, reaping:<node>; ARGV: pid, ttl ms, node. 0 if the key had expired.
BEAT = """
local was = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if was == 0 then redis.call('DEL', KEYS[3]) end
return was
"""


class RedisBus:
    """A Bus over Redis pub/sub, with presence and node liveness kept in Redis."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "parley",
        heartbeat: float = 2.0,
        dead_after: float = 6.0,
    ) -> None:
        self.node = uuid.uuid4().hex[:16]
        self.prefix = prefix
        self.heartbeat = heartbeat
        self.dead_after = dead_after
        # A blocking pool: thousands of greenlets publish at once, and each waits for one of a
        # bounded set of connections instead of failing with "Too many connections".
        self.redis = _client(url, REDIS_CONNECTIONS)
        # Heartbeats, the call lease and subscriptions get connections of their own, so a flood
        # of frames waiting for `self.redis` can never make a live worker look dead.
        self.control = _client(url, 8)
        self._deliver = self.redis.register_script(DELIVER)
        self._join = self.redis.register_script(JOIN)
        self._leave = self.redis.register_script(LEAVE)
        self._online = self.redis.register_script(ONLINE)
        self._beat_script = self.control.register_script(BEAT)
        self._beat_lock = threading.RLock()
        self._beaten_at = 0.0  # monotonic time the last good beat was sent
        self._beats = 0
        self._receivers: list[Callable[[Envelope], int]] = []
        self._outbox: deque[tuple[str, str]] = deque()
        self._outbox_ready = threading.Event()
        self._stopped = threading.Event()
        self._beat()
        self._listener = self.listen(self.channel(self.node), self._on_message)
        self._thread = threading.Thread(target=self._run, name="parley-bus", daemon=True)
        self._thread.start()
        threading.Thread(target=self._post_loop, name="parley-post", daemon=True).start()

    # --- names -----------------------------------------------------------------------------

    def key(self, *parts: object) -> str:
        """Return a Redis key (or channel) under this bus's prefix."""
        return ":".join([self.prefix, *map(str, parts)])

    def channel(self, node: str) -> str:
        """Return the pub/sub channel of a node."""
        return self.key("node", node)

    # --- Bus -------------------------------------------------------------------------------

    def attach(self, receiver: Callable[[Envelope], int]) -> None:
        """Register the local hub's receiver."""
        self._receivers.append(receiver)

    def publish(self, envelope: Envelope) -> int:
        """Publish to every node holding the user's sockets; return the nodes reached."""
        payload = _encode(envelope)
        reached = self._deliver(
            keys=[self.key("presence", envelope.user_id)], args=[self.key("node", ""), payload]
        )
        return int(reached)

    def to_node(self, node: str, envelope: Envelope) -> bool:
        """Publish to one node; False when nobody listens there (the node is gone)."""
        payload = _encode(envelope)
        return int(self.redis.publish(self.channel(node), payload)) > 0

    def post(self, node: str, envelope: Envelope) -> None:
        """Publish to one node without waiting: queued frames go out in pipelined batches.

        For the relay hot path, where a round trip per frame would cap throughput; delivery is
        at most once (a frame for a node that just died is lost, like the node's sockets).
        """
        payload = _encode(envelope)
        self._outbox.append((self.channel(node), payload))
        self._outbox_ready.set()

    def _post_loop(self) -> None:
        while not self._stopped.is_set():
            self._outbox_ready.wait(1.0)
            self._outbox_ready.clear()
            while self._outbox:
                pipe = self.redis.pipeline(transaction=False)
                for _ in range(min(len(self._outbox), 1000)):
                    pipe.publish(*self._outbox.popleft())
                try:
                    pipe.execute()
                except redis.RedisError:
                    log.warning("publishing relayed frames failed", exc_info=True)

    def joined(self, user_id: int) -> bool:
        """Record the user's sockets here; True when no other live node has any."""
        keys = [self.key("presence", user_id), self.key("users", self.node)]
        return bool(self._join(keys=keys, args=[self.key("alive", ""), self.node, user_id]))

    def left(self, user_id: int) -> bool:
        """Forget the user's sockets here; True when no other live node has any."""
        keys = [self.key("presence", user_id), self.key("users", self.node)]
        return bool(self._leave(keys=keys, args=[self.key("alive", ""), self.node, user_id]))

    def online_elsewhere(self, user_ids: Collection[int]) -> set[int]:
        """Return which of these users have a socket on another live node."""
        ids = sorted(user_ids)
        if not ids:
            return set()
        flags = self._online(
            keys=[self.key("presence", u) for u in ids], args=[self.key("alive", ""), self.node]
        )
        return {u for u, flag in zip(ids, flags, strict=True) if flag}

    # --- nodes -----------------------------------------------------------------------------

    def alive(self, node: str) -> bool:
        """Tell whether a node's heartbeat is current."""
        return node == self.node or bool(self.control.exists(self.key("alive", node)))

    def listen(self, channel: str, handler: Callable[[str], None]) -> Listener:
        """Subscribe to a channel on a connection of its own; handler gets each payload."""
        return Listener(self.control, channel, handler)

    def close(self) -> None:
        """Stop the heartbeat and listening, and leave the cluster at once (clean shutdown)."""
        self._stopped.set()
        self._listener.close()
        try:
            self.control.delete(self.key("alive", self.node))
            self._reap(self.node)
        except redis.RedisError:
            log.warning("could not clean up node %s in Redis", self.node, exc_info=True)

    def ensure_alive(self) -> None:
        """Beat now if the last beat is too old to vouch for this node (it may have been asleep).

        Cheap when the heartbeat is current (one clock read): the path of every call signal.
        """
        if time.monotonic() - self._beaten_at < self.dead_after / 2:
            return
        with self._beat_lock:
            if time.monotonic() - self._beaten_at < self.dead_after / 2:
                return  # another greenlet beat (and revived) while this one waited
            try:
                self._beat()
            except redis.RedisError:
                log.warning("Redis heartbeat failed", exc_info=True)

    def _beat(self) -> None:
        with self._beat_lock:
            started = time.monotonic()
            keys = [self.key("alive", self.node), self.key("nodes"), self.key("reaping", self.node)]
            ttl = max(1, int(self.dead_after * 1000))
            was = self._beat_script(keys=keys, args=[os.getpid(), ttl, self.node])
            if not was and self._beats:
                log.warning("node %s was taken for dead (asleep past its heartbeat); rejoining",
                            self.node)  # fmt: skip
                for receive in self._receivers:
                    try:
                        receive(Envelope("revived", 0))
                    except Exception:
                        log.exception("rejoining the cluster failed")
            self._beats += 1
            # Only now: a frame that finds the beat fresh must come after the rejoin.
            self._beaten_at = started

    def _run(self) -> None:
        while not self._stopped.wait(self.heartbeat):
            try:
                self._beat()
                self._reap_dead()
            except redis.RedisError:
                log.warning("Redis heartbeat failed", exc_info=True)

    def _reap_dead(self) -> None:
        nodes: set[str] = self.control.smembers(self.key("nodes"))  # type: ignore[assignment]
        for node in nodes:
            if node == self.node or self.control.exists(self.key("alive", node)):
                continue
            # One node cleans up after each dead one.
            if self.control.set(self.key("reaping", node), self.node, nx=True, ex=60):
                log.warning("node %s stopped beating: removing its sockets' presence", node)
                self._reap(node)

    def _reap(self, node: str) -> None:
        users_key = self.key("users", node)
        gone: list[int] = []
        for user in self.redis.smembers(users_key):
            user_id = int(user)
            keys = [self.key("presence", user_id), users_key]
            if self._leave(keys=keys, args=[self.key("alive", ""), node, user_id]):
                gone.append(user_id)
        self.redis.delete(users_key)
        self.redis.srem(self.key("nodes"), node)
        if node == self.node:
            return  # a clean shutdown: each socket's close already announced its user
        for user_id in gone:
            for receive in self._receivers:
                receive(Envelope("gone", user_id))

    def _on_message(self, payload: str) -> None:
        envelope = Envelope(**json.loads(payload))
        for receive in self._receivers:
            try:
                receive(envelope)
            except Exception:
                log.exception("handling a %s envelope failed", envelope.op)


def _encode(envelope: Envelope) -> str:
    return json.dumps(asdict(envelope), separators=(",", ":"))


def _client(url: str, connections: int) -> redis.Redis:
    """A client on a blocking pool: many greenlets at once wait for one of `connections`."""
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=connections, timeout=10, decode_responses=True,
        health_check_interval=30,
    )  # fmt: skip
    return redis.Redis(connection_pool=pool)


class Listener:
    """One channel subscription on its own Redis connection, read by its own thread."""

    def __init__(self, client: redis.Redis, channel: str, handler: Callable[[str], None]) -> None:
        self.channel = channel
        self._handler = handler
        self._pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sub {channel}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except (redis.ConnectionError, redis.TimeoutError, ValueError, AttributeError):
                if self._stopped.is_set():
                    return
                log.warning("lost the Redis subscription to %s; resubscribing", self.channel)
                time.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            try:
                self._handler(message["data"])
            except Exception:
                log.exception("handling a message on %s failed", self.channel)

    def close(self) -> None:
        """Unsubscribe and stop the reader."""
        self._stopped.set()
        try:
            self._pubsub.unsubscribe()
            self._pubsub.close()
        except (redis.RedisError, OSError):
            pass
