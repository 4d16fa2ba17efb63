"""The Python peer's call report card: the path, round trip and loss of a call, as `call_report`.

The same fields as the browser's (pwa/js/stats.js ReportCard). aiortc's getStats has no
candidate pairs, so the path is read from the ICE connection's nominated pair (aioice); the round
trip and loss come from its RTCP statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any, Literal

from aiortc import RTCPeerConnection

from backend.signaling.fields import (
    MAX_REPORT_DURATION_S,
    MAX_REPORT_RECONNECTS,
    MAX_REPORT_RTT_MS,
)
from backend.signaling.protocol import CallReportSend

Path = tuple[Literal["direct", "relayed"], Literal["udp", "tcp", "tls"]]
SAMPLE_EVERY_S = 2.0  # as often as the browser's stats walk


def ice_connection(pc: RTCPeerConnection) -> Any:
    """Return the aioice Connection under the peer connection's (bundled) transport, if any."""
    for transceiver in pc.getTransceivers():
        dtls = transceiver.sender.transport
        if dtls is not None:
            return getattr(dtls.transport, "_connection", None)
    sctp = pc.sctp
    return getattr(sctp.transport.transport, "_connection", None) if sctp else None


def selected_path(pc: RTCPeerConnection) -> Path | None:
    """Direct or relayed, and the transport to the first hop, from the nominated pair; or None."""
    connection = ice_connection(pc)
    nominated = getattr(connection, "_nominated", None)  # aioice keeps it private
    if not nominated:
        return None
    pair = nominated[min(nominated)]
    local, remote = pair.local_candidate, pair.remote_candidate
    relayed = "relay" in (local.type, remote.type)
    if local.type == "relay":  # our own TURN allocation: what reaches the TURN server
        tls = getattr(connection, "turn_ssl", False)
        transport = "tls" if tls else str(getattr(connection, "turn_transport", "udp")).lower()
    else:
        transport = str(local.transport).lower()
    if transport not in ("udp", "tcp", "tls"):
        return None
    return ("relayed" if relayed else "direct"), transport  # type: ignore[return-value]


class ReportCard:
    """Gather one side's report over a call: connections, path, round trips, loss."""

    def __init__(self) -> None:
        self.connected_at: float | None = None
        self.connects = 0
        self.path: Path | None = None
        self.rtts_ms: list[int] = []
        self.lost = 0
        self.received = 0

    def connected(self, pc: RTCPeerConnection) -> bool:
        """Count a (re)connection; the first one starts the duration (and says so: True)."""
        first = self.connected_at is None
        if first:
            self.connected_at = time.monotonic()
        self.connects += 1
        self.path = selected_path(pc) or self.path
        return first

    async def watch(self, pc_of: Callable[[], RTCPeerConnection]) -> None:
        """Sample the call's current connection every SAMPLE_EVERY_S until cancelled."""
        while True:
            await self.sample(pc_of())
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def sample(self, pc: RTCPeerConnection) -> None:
        """Take the path, the latest round trip and the inbound loss from a live connection."""
        self.path = selected_path(pc) or self.path
        with contextlib.suppress(Exception):  # a closing connection has no transports to ask
            lost = received = 0
            for stat in (await pc.getStats()).values():
                if stat.type == "remote-inbound-rtp" and stat.roundTripTime is not None:
                    self.rtts_ms.append(round(stat.roundTripTime * 1000))
                elif stat.type == "inbound-rtp":
                    lost += max(0, stat.packetsLost)
                    received += stat.packetsReceived
            # Counters start again on a new connection (the other side reloaded): keep the most.
            if lost + received >= self.lost + self.received:
                self.lost, self.received = lost, received

    def summary(self, call_id: str) -> CallReportSend | None:
        """The report of the ended call; None if it never connected or its path is unknown."""
        if self.connected_at is None or self.path is None:
            return None
        rtts = [min(rtt, MAX_REPORT_RTT_MS) for rtt in self.rtts_ms]
        total = self.lost + self.received
        return CallReportSend(
            type="call_report",
            call_id=call_id,
            path=self.path[0],
            transport=self.path[1],
            rtt_ms=round(statistics.median(rtts)) if rtts else None,
            loss=round(self.lost / total, 4) if total else 0.0,
            reconnects=min(self.connects - 1, MAX_REPORT_RECONNECTS),
            duration_s=min(round(time.monotonic() - self.connected_at), MAX_REPORT_DURATION_S),
        )
