"""A Python participant's SFU link on its own, with an aiortc connection standing in for Janus."""

from __future__ import annotations

import asyncio
from typing import Any

import aioice.ice
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from backend.peer import sfu
from backend.peer.sfu import SfuLink
from backend.signaling.groupframes import SfuDescription
from backend.signaling.protocol import SessionDescription
from harness import aio

CALL = "0f8fad5b-d9cb-469f-a165-70867728950e"


class Sent:
    """Stands in for the socket: keeps what the link sends to Parley."""

    def __init__(self) -> None:
        self.frames: list[Any] = []

    async def send(self, frame: Any) -> None:
        self.frames.append(frame)


def offer_of(pc: RTCPeerConnection) -> SfuDescription:
    sdp = pc.localDescription.sdp
    description = SessionDescription.model_validate({"type": "offer", "sdp": sdp})
    return SfuDescription(call_id=CALL, pc="subscribe", description=description)


def test_a_receiving_connection_that_aiortc_closes_by_itself_starts_the_call_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Consent checks every 0.2 s (not 5 s): six unanswered ones expire it in about a second.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(sfu, "CLOSED_GRACE_S", 0.1)

    async def scenario() -> None:
        janus = RTCPeerConnection()
        janus.addTrack(AudioStreamTrack())
        started_over = asyncio.Event()

        async def failed() -> None:
            started_over.set()

        async def configuration() -> RTCConfiguration:
            return RTCConfiguration(iceServers=[])

        sent = Sent()
        link = SfuLink(sent, CALL, configuration, [], failed)  # type: ignore[arg-type]
        try:
            await janus.setLocalDescription(await janus.createOffer())
            await link.description(offer_of(janus))
            answer = sent.frames[-1].description
            await janus.setRemoteDescription(RTCSessionDescription(answer.sdp, answer.type))
            for _ in range(300):  # up to 30 s: a loaded machine connects slowly
                if link.subscriber and link.subscriber.connectionState == "connected":
                    break
                await asyncio.sleep(0.1)
            assert link.subscriber is not None
            assert link.subscriber.connectionState == "connected"
            # Janus's answers to our consent checks stop coming (a loaded peer reads them too
            # late): aiortc closes the connection by itself, never calling it "failed".
            for transceiver in janus.getTransceivers():
                connection = transceiver.receiver.transport.transport._connection
                connection.request_received = lambda *args, **kwargs: None  # type: ignore[method-assign]
            await asyncio.wait_for(started_over.wait(), 30)
            assert link.subscriber.signalingState == "closed"
            # An offer that comes meanwhile for the closed connection is let go, not an error.
            await link.description(offer_of(janus))
        finally:
            await link.close()
            await janus.close()

    aio.run(scenario())
