"""A token bucket per socket: how fast one client may send before it is throttled, then closed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

Verdict = Literal["ok", "throttled", "abusive"]


class TokenBucket:
    """`rate` messages per second sustained with bursts of `burst`; debt past `burst` is abuse."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.stamp = clock()

    def take(self) -> Verdict:
        """Spend one token; say whether the message may pass, is dropped, or ends the socket."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1
        if self.tokens >= 0:
            return "ok"
        # Dropped messages keep costing, so a client that ignores `rate_limited` sinks to abuse.
        return "abusive" if self.tokens <= -self.burst else "throttled"
