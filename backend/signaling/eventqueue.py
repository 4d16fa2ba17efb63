"""The cluster's reliable queue of call events, from every node to the call leader.

Every node that does not lead forwards its sockets' call events to the list
`<prefix>:calls-queue` (a list, not a pub/sub channel: what is pushed while no node leads waits
for the next leader; events older than `FORWARD_PATIENCE` seconds are dropped). The leader
moves them in order to `<prefix>:calls-inflight:<epoch>` while it applies them (Redis's
reliable-queue pattern), so those a dying leader had taken are applied by the next one (at
least once: a candidate may arrive twice, which WebRTC ignores). Each epoch has its own
in-flight list, so a stale leader can never acknowledge or requeue the events its successor
took; taking and acknowledging are fenced by the lease (lease.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from .lease import FENCE
from .redisbus import RedisBus
from .registry import OwnerLost

log = logging.getLogger("parley.signaling")

FORWARD_PATIENCE = 10.0  # seconds a forwarded event waits for a leader before it is dropped
BATCH = 200  # events the leader takes from the queue at a time

# Acknowledge applied events. KEYS: lease, in-flight; ARGV: token, how many.
ACK = FENCE + "redis.call('LTRIM', KEYS[2], ARGV[2], -1) return 1"
# Put an in-flight list back at the head of the queue, in order. KEYS: queue, in-flight.
REQUEUE = """
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'RIGHT', 'LEFT') do n = n + 1 end
return n
"""
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
GIVE_BACK = "redis.call('LTRIM', KEYS[2], ARGV[1], -1)" + REQUEUE


class EventQueue:
    """Call events on their way to the leader: pushed by any node, applied in order by one."""

    def __init__(self, bus: RedisBus, lease_key: str) -> None:
        self.bus = bus
        self.key = bus.key("calls-queue")
        self.inflight_key = bus.key("calls-inflight", 0)  # per epoch: set when leading
        self._lease_key = lease_key
        self._control = bus.control  # the lease, the queue and the snapshot: never starved
        self._ack = self._control.register_script(ACK)
        self._take = self._control.register_script(TAKE)
        self._requeue = self._control.register_script(REQUEUE)
        self._give_back = self._control.register_script(GIVE_BACK)

    def push(self, event: dict[str, Any]) -> None:
        """Forward an event to whichever node leads now or next."""
        event.setdefault("t", time.time())
        try:
            self.bus.redis.rpush(self.key, json.dumps(event, separators=(",", ":")))
        except redis.RedisError:
            log.exception("could not forward a %s event to the call leader", event["e"])

    def take_over(self, epoch: int) -> int:
        """Use this epoch's in-flight list; requeue what the last leader had taken, return how many.

        (A stale leader that wakes and takes more puts that back itself: TAKE.)
        """
        self.inflight_key = self.bus.key("calls-inflight", epoch)
        previous = self.bus.key("calls-inflight", epoch - 1)
        return int(self._requeue(keys=[self.key, previous]))

    def consume(
        self,
        stop: threading.Event,
        token: str,
        leading: Callable[[], bool],
        apply: Callable[[dict[str, Any]], None],
        lost: Callable[[], None],
    ) -> None:
        """The leader's loop: apply forwarded events in the order they were queued.

        `leading` is asked before each event; `apply` raises OwnerLost when the lease moved
        mid-batch, and `lost` is called when a fenced write finds another leader.
        """
        inflight = self.inflight_key
        keys = [self._lease_key, self.key, inflight]
        while not stop.is_set() and leading():
            try:
                first = self._control.blmove(self.key, inflight, 1, "LEFT", "RIGHT")
                if first is None:
                    continue
                more = self._take(keys=keys, args=[token, BATCH - 1])
            except redis.RedisError:
                log.warning("reading forwarded call events failed", exc_info=True)
                stop.wait(0.5)
                continue
            if more == -1:  # another leader took over: what was taken is back in the queue
                lost()
                return
            batch = [first, *more]
            applied = 0
            for payload in batch:
                if not leading():
                    break
                event = json.loads(payload)
                try:
                    if time.time() - float(event.get("t", 0)) > FORWARD_PATIENCE:
                        log.error("dropped a stale %s event (no leader for a while)", event["e"])
                    else:
                        apply(event)
                except OwnerLost:
                    break
                except Exception:
                    log.exception("applying a forwarded %s event failed", event["e"])
                applied += 1
            try:
                if applied < len(batch):
                    # The lease moved mid-batch: the rest is the next leader's, in order.
                    self._give_back(keys=[self.key, inflight], args=[applied])
                    return
                if self._ack(keys=[self._lease_key, inflight], args=[token, applied]) < 0:
                    lost()
                    return
            except redis.RedisError:
                log.warning("could not clear applied call events", exc_info=True)
