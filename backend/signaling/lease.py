"""The cluster's call leader lease: one node at a time leads, and every write it makes is fenced.

One node at a time holds the lease `<prefix>:leader` (renewed every third of the lease, lost
after `lease` seconds without a renewal). A leader can stall past its lease (a GC pause, a
stopped VM, SIGSTOP) and wake while another node leads. So every acquisition of the lease takes
a new epoch (`<prefix>:leader-epoch`), the lease's value is the token `<node>:<epoch>`, and every
write of call state runs in a Redis script that first checks the token (FENCE): a write that
finds another epoch fails, and its leader steps down at once.
"""

from __future__ import annotations

import time

import redis

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
# Every fenced script starts by checking that the lease still holds this leader's token (node
# and epoch): a leader that slept through its lease must not write. KEYS[1]: lease; ARGV[1]: token.
FENCE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
"""
# Renew the lease. KEYS: lease; ARGV: token, ttl ms.
RENEW = FENCE + "return redis.call('PEXPIRE', KEYS[1], ARGV[2])"
RELEASE = FENCE + "return redis.call('DEL', KEYS[1])"


class Lease:
    """This node's hold on the leader lease: take it, renew it, trust it for a while, let it go."""

    def __init__(self, control: redis.Redis, lease_key: str, epoch_key: str, node: str,
                 seconds: float = LEASE) -> None:  # fmt: skip
        self.key = lease_key
        self.node = node
        self.seconds = seconds
        self.epoch = 0
        self.token = ""  # the lease's value while this node leads: "<node>:<epoch>"
        self._epoch_key = epoch_key
        self._trusted_until = 0.0  # monotonic time up to which the lease is surely ours
        self._acquire = control.register_script(ACQUIRE)
        self._renew = control.register_script(RENEW)
        self._release = control.register_script(RELEASE)

    @property
    def _ttl(self) -> int:
        return int(self.seconds * 1000)

    def acquire(self) -> bool:
        """Take the lease if it is free, with a new epoch."""
        started = time.monotonic()
        epoch = int(self._acquire(keys=[self.key, self._epoch_key], args=[self.node, self._ttl]))
        if not epoch:
            return False
        self.epoch = epoch
        self.token = f"{self.node}:{epoch}"
        self._trusted_until = started + self.seconds * TRUST
        return True

    def renew(self) -> bool:
        """Renew the lease; False when another leader holds it now."""
        started = time.monotonic()
        if self._renew(keys=[self.key], args=[self.token, self._ttl]) != 1:
            return False
        self._trusted_until = started + self.seconds * TRUST
        return True

    def trusted(self) -> bool:
        """Tell whether the last renewal is recent enough to act without renewing first."""
        return time.monotonic() < self._trusted_until

    def release(self) -> None:
        """Let the lease go now (fenced: only if it is still ours)."""
        self._release(keys=[self.key], args=[self.token])
