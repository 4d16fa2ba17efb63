"""A Python participant's side of a group call through the SFU: one connection out, one in.

The sending connection carries our tone and picture: we offer it (`sfu_description`, pc
`publish`) and Parley brings back Janus's answer. The receiving connection is Janus's: Parley
brings its offer (pc `subscribe`, with `streams` naming whose audio or video each m-line
carries) and takes our answer, again whenever someone comes or goes. aiortc puts its candidates
in its descriptions, so this side trickles none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from backend.signaling.groupframes import Pc, SfuDescription, SfuDescriptionSend
from backend.signaling.protocol import SessionDescription, User

from .client import ParleyClient

log = logging.getLogger("parley.peer")

CLOSED_GRACE_S = 2.0  # how long a connection that closed by itself waits for news of the call


class SfuLink:
    """Our two connections in one SFU call, and what we received from each participant."""

    def __init__(
        self,
        client: ParleyClient,
        call_id: str,
        configuration: Callable[[], Awaitable[RTCConfiguration]],
        tracks: list[MediaStreamTrack],
        failed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.call_id = call_id
        self.configuration = configuration
        self.tracks = tracks
        # A connection failed (aiortc cannot restart ICE): the call starts over (call_resume).
        self.failed = failed
        self.publisher: RTCPeerConnection | None = None
        self.subscriber: RTCPeerConnection | None = None
        self.streams: dict[str, tuple[int, str]] = {}  # mid -> (user id, kind)
        self.frames: dict[int, dict[str, int]] = {}  # user id -> frames received per kind
        self.tasks: list[asyncio.Task[Any]] = []
        self.closed = False

    async def publish(self) -> None:
        """Offer our tone and picture to the call."""
        pc = self.publisher = RTCPeerConnection(await self.configuration())
        self._watch(pc)
        for track in self.tracks:
            pc.addTrack(track)
        await pc.setLocalDescription(await pc.createOffer())
        await self._send("publish", pc)

    async def description(self, frame: SfuDescription) -> None:
        """Take Janus's answer to what we send, or its offer of what we receive."""
        sdp, kind = frame.description.sdp, frame.description.type
        if self.closed:
            return  # a description for connections this peer already closed
        if frame.pc == "publish":
            if self.publisher is not None and kind == "answer":
                await self.publisher.setRemoteDescription(RTCSessionDescription(sdp, kind))
            return
        if kind != "offer" or self.closed:
            return
        log.info(
            "sfu call %s: receiving %s",
            self.call_id,
            " ".join(f"{s.mid}={s.user_id}/{s.kind}" for s in frame.streams),
        )
        for stream in frame.streams:
            self.streams[stream.mid] = (stream.user_id, stream.kind)
            self.frames.setdefault(stream.user_id, {"audio": 0, "video": 0})
        pc = self.subscriber
        if pc is None:
            pc = self.subscriber = RTCPeerConnection(await self.configuration())
            self._watch(pc)
            pc.on("track", self._on_track)
        elif pc.signalingState == "closed":
            return  # it closed by itself: the call starts over on new connections (_watch)
        await pc.setRemoteDescription(RTCSessionDescription(sdp, kind))
        await pc.setLocalDescription(await pc.createAnswer())
        await self._send("subscribe", pc)

    async def stats(self, users: dict[int, User]) -> dict[str, dict[str, Any]]:
        """Per remote participant (by username): frames, packets and bytes received per kind."""
        out: dict[str, dict[str, Any]] = {}
        for user_id, frames in self.frames.items():
            user = users.get(user_id)
            name = user.username if user is not None else str(user_id)
            out[name] = {
                "call_id": self.call_id,
                "peer": name,
                "topology": "sfu",
                "frames_received": dict(frames),
                "packets_received": {"audio": 0, "video": 0},
                "bytes_received": {"audio": 0, "video": 0},
                "connection_state": self.subscriber.connectionState if self.subscriber else "new",
            }
        if self.subscriber is None:
            return out
        for transceiver in self.subscriber.getTransceivers():
            found = self.streams.get(str(transceiver.mid))
            if found is None:
                continue
            user_id, kind = found
            user = users.get(user_id)
            entry = out.get(user.username if user is not None else str(user_id))
            if entry is None:
                continue
            with contextlib.suppress(Exception):
                for stat in (await transceiver.receiver.getStats()).values():
                    if stat.type == "inbound-rtp":
                        entry["packets_received"][kind] += stat.packetsReceived
                    elif stat.type == "remote-outbound-rtp":
                        entry["bytes_received"][kind] += stat.bytesSent
        return out

    async def close(self) -> None:
        """Close both connections and stop reading what they brought."""
        self.closed = True
        for task in self.tasks:
            task.cancel()
        for pc in (self.publisher, self.subscriber):
            if pc is not None:
                await pc.close()

    # --- helpers -----------------------------------------------------------------------------

    def _watch(self, pc: RTCPeerConnection) -> None:
        async def changed() -> None:
            state = pc.connectionState
            if state not in ("failed", "closed") or self.closed:
                return
            if state == "closed":
                # aiortc closes a connection by itself, without passing through "failed", when
                # its ICE consent expires (a loaded peer reads Janus's consent answers too
                # late) or Janus hangs up; Janus hangs up when the call ends or we are removed,
                # which Parley tells us about at once, so wait a moment for that news.
                await asyncio.sleep(CLOSED_GRACE_S)
            if not self.closed and self.failed is not None:
                log.info("sfu call %s: a connection %s; starting over", self.call_id, state)
                failed, self.failed = self.failed, None  # once per link
                await failed()

        pc.on("connectionstatechange", changed)

    def _on_track(self, track: MediaStreamTrack) -> None:
        pc = self.subscriber
        mid = next(
            (str(t.mid) for t in (pc.getTransceivers() if pc else []) if t.receiver.track is track),
            "",
        )
        self.tasks.append(asyncio.ensure_future(self._count(mid, track)))

    async def _count(self, mid: str, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                found = self.streams.get(mid)
                if found is not None:
                    user_id, kind = found
                    self.frames.setdefault(user_id, {"audio": 0, "video": 0})[kind] += 1

    async def _send(self, pc_name: Pc, pc: RTCPeerConnection) -> None:
        local = pc.localDescription
        description = SessionDescription.model_validate({"type": local.type, "sdp": local.sdp})
        frame = SfuDescriptionSend(
            type="sfu_description", call_id=self.call_id, pc=pc_name, description=description
        )
        await self.client.send(frame)
