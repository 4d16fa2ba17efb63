"""Place and answer Parley calls from Python with aiortc, over the same protocol as a browser."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from backend.signaling.protocol import (
    CallAnswer,
    CallAnswerSend,
    CallBusy,
    CallCancelled,
    CallDescription,
    CallDescriptionSend,
    CallEnd,
    CallEndSend,
    CallMedia,
    CallMediaSend,
    CallOffer,
    CallOfferSend,
    CallRejected,
    CallRejectedSend,
    CallResumed,
    CallResumeSend,
    CallTimeout,
    Error,
    IceCandidate,
    IceCandidateInit,
    Media,
    SessionDescription,
    User,
    Welcome,
)

from .client import ParleyClient, ServerFrame
from .media import PatternTrack, generated_tracks
from .report import ReportCard
from .securitycode import SecurityCode, security_code

log = logging.getLogger("parley.peer")


@dataclass
class PeerCall:
    """One call of this peer, as caller or callee, with its perfect-negotiation state."""

    id: str
    room_id: int
    peer: User
    media: Media
    pc: RTCPeerConnection
    # The server says which side gives way when offers collide (call_offer, call_answer, resumed).
    polite: bool
    making_offer: bool = False
    ignore_offer: bool = False
    renewing: bool = False  # our offer from a new connection (a restart) awaits its answer
    # Set once the call is over and its connection closed; `finishing` from the moment it ends.
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    finishing: bool = False
    end_reason: str = ""
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    # Remote candidates wait here until the remote description is set: added before it, they fail
    # and are lost, and a relay-only call then never connects.
    pending: list[IceCandidateInit] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # The other side's microphone and camera, from its call_media.
    remote_media: dict[str, bool] = field(default_factory=lambda: {"audio": True, "video": True})
    # The other side's last description as received: aiortc's remoteDescription is re-serialised.
    remote_sdp: str = ""
    card: ReportCard = field(default_factory=ReportCard)  # sent as call_report at the end

    @property
    def security_code(self) -> SecurityCode | None:
        """Return the code both sides show, from the descriptions as exchanged; None before."""
        local = self.pc.localDescription
        if local is None or not self.remote_sdp:
            return None
        return security_code(local.sdp, self.remote_sdp)

    async def stats(self) -> dict[str, Any]:
        """Frames received per kind, and RTP packets and bytes per kind from getStats."""
        packets = {"audio": 0, "video": 0}
        received = {"audio": 0, "video": 0}
        sent = {"audio": 0, "video": 0}
        with contextlib.suppress(Exception):  # a closed connection has no transports to ask
            for stat in (await self.pc.getStats()).values():
                if stat.type == "inbound-rtp":  # aiortc counts packets, not bytes
                    packets[stat.kind] += stat.packetsReceived
                elif stat.type == "remote-outbound-rtp":  # bytes as the sender's RTCP reports them
                    received[stat.kind] += stat.bytesSent
                elif stat.type == "outbound-rtp":
                    sent[stat.kind] += stat.bytesSent
        code = self.security_code
        return {
            "call_id": self.id,
            "peer": self.peer.username,
            "media": self.media,
            "frames_received": dict(self.received),
            "packets_received": packets,
            "bytes_received": received,
            "bytes_sent": sent,
            "remote_media": dict(self.remote_media),
            "connection_state": self.pc.connectionState,
            "end_reason": self.end_reason,
            "security_code": code.to_json() if code else None,
        }


# The tracks to send on a call's (new) peer connection.
TrackFactory = Callable[[PeerCall], list[MediaStreamTrack]]
# Given a relayed copy of each remote track as it arrives (before this side's answer is made, so
# it may add tracks to call.pc); may return a coroutine that reads it for the life of the call.
RemoteTrackHook = Callable[[PeerCall, MediaStreamTrack], Awaitable[None] | None]


def generated(call: PeerCall) -> list[MediaStreamTrack]:
    """Return a tone, plus moving stripes for video calls."""
    return generated_tracks(call.media)


def sends_video(pc: RTCPeerConnection) -> bool:
    """Whether the connection has a video track to send."""
    return any(s.track is not None and s.track.kind == "video" for s in pc.getSenders())


class Peer:
    """Calls of one signed-in account: places, answers, ends, and keeps the stats."""

    def __init__(
        self,
        client: ParleyClient,
        *,
        tracks: TrackFactory = generated,
        answer: Callable[[CallOffer], bool] | None = None,
        on_remote_track: RemoteTrackHook | None = None,
        on_call: Callable[[PeerCall], None] | None = None,
        many: bool = False,
    ) -> None:
        self.client = client
        self.many = many  # answer calls while in others (the echo bot); else reply busy
        self.tracks = tracks
        self.should_answer = answer
        self.on_remote_track = on_remote_track
        self.on_call = on_call
        self.relay = MediaRelay()  # every remote track feeds the frame counter and the hook
        self.calls: dict[str, PeerCall] = {}
        self.finished: list[PeerCall] = []

    # --- intents ---------------------------------------------------------------------------

    async def call(self, username: str, media: Media = "video") -> PeerCall:
        """Open the room with `username` and call them."""
        room = await self.client.api("POST", "/api/rooms", {"username": username})
        peer = User.model_validate(room["peer"])
        call = await self._new_call(str(uuid.uuid4()), room["id"], peer, media, polite=False)
        for track in self.tracks(call):
            call.pc.addTrack(track)
        call.making_offer = True
        try:
            await call.pc.setLocalDescription(await call.pc.createOffer())
            offer = CallOfferSend(
                type="call_offer",
                call_id=call.id,
                room_id=call.room_id,
                to=peer.id,
                media=call.media,
                sdp=call.pc.localDescription.sdp,
            )
            await self.client.send(offer)
        finally:
            call.making_offer = False
        return call

    async def camera_on(self, call: PeerCall) -> None:
        """Start sending moving stripes (Camera on in a voice call): renegotiate, then say so."""
        if sends_video(call.pc):
            return
        call.pc.addTrack(PatternTrack())  # takes over a receive-only video transceiver if any
        await self._offer(call)
        await self._send_media(call)

    async def hang_up(self, call: PeerCall) -> None:
        """End a call from this side."""
        await self.client.send(CallEndSend(type="call_end", call_id=call.id))
        await self._finish(call, "hangup")

    async def close(self) -> None:
        """Hang up every call and close every peer connection."""
        for call in list(self.calls.values()):
            await self.hang_up(call)

    # --- what the server says ---------------------------------------------------------------

    async def handle(self, message: ServerFrame) -> None:
        """Act on one frame from the socket."""
        if isinstance(message, CallOffer):
            await self._incoming(message)
            return
        if isinstance(message, Welcome):
            await self._resume(message)
            return
        call = self.calls.get(getattr(message, "call_id", None) or "")
        if call is None:
            return
        match message:
            case CallAnswer():
                call.polite = message.polite
                await self._set_remote(call, "answer", message.sdp)
            case IceCandidate():
                call.pending.append(message.candidate or IceCandidateInit())
                await self._flush(call)
            case CallDescription(restart=True):
                await self._replace(call, message.description)
            case CallDescription():
                await self._description(call, message.description)
            case CallMedia():
                call.remote_media = {"audio": message.audio, "video": message.video}
            case CallResumed():
                call.polite = message.polite
            case CallEnd() | CallRejected():
                await self._finish(call, message.reason)
            case CallCancelled() | CallTimeout() | CallBusy():
                await self._finish(call, message.type)
            case Error(ref_type="call_offer"):
                await self._finish(call, "error")

    async def _incoming(self, offer: CallOffer) -> None:
        busy = bool(self.calls) and not self.many
        if busy or (self.should_answer is not None and not self.should_answer(offer)):
            await self.client.send(
                CallRejectedSend(
                    type="call_rejected",
                    call_id=offer.call_id,
                    reason="busy" if busy else "declined",
                )
            )
            return
        call = await self._new_call(
            offer.call_id, offer.room_id, offer.from_, offer.media, polite=offer.polite
        )
        await self._answer_offer(call, offer.sdp)
        answer = CallAnswerSend(
            type="call_answer", call_id=call.id, sdp=call.pc.localDescription.sdp
        )
        await self.client.send(answer)

    async def _description(self, call: PeerCall, description: SessionDescription) -> None:
        """Apply a renegotiation (perfect negotiation, as pwa/js/peer.js does it)."""
        pc = call.pc
        collision = description.type == "offer" and (
            call.making_offer or pc.signalingState != "stable"
        )
        call.ignore_offer = not call.polite and collision
        if call.ignore_offer:
            return  # the impolite side keeps its own offer; the other side answers it
        try:
            await self._set_remote(call, description.type, description.sdp)
            if description.type == "offer" and call.pc is pc:
                await pc.setLocalDescription(await pc.createAnswer())
                await self._send_description(call)
                # The offer may have brought video that this side now sends too (the echo bot).
                await self._send_media(call)
        except Exception as exc:  # aiortc cannot roll back a colliding offer of its own
            log.warning("renegotiation of call %s failed: %s", call.id, exc)

    async def _replace(self, call: PeerCall, description: SessionDescription) -> None:
        """Answer the other side's new peer connection (it reloaded) from a new one of ours."""
        if description.type != "offer":
            return
        old = call.pc
        # The old connection's relayed tracks end by themselves once its tracks stop.
        self._stop_senders(old)
        await old.close()
        call.pending.clear()  # candidates of the old connection
        call.pc = self._connect(call, RTCPeerConnection(await self._configuration()))
        await self._answer_offer(call, description.sdp)
        await self._send_description(call)

    async def _resume(self, welcome: Welcome) -> None:
        live = {c.call_id for c in welcome.calls}
        for call in list(self.calls.values()):
            if call.id in live:
                await self.client.send(CallResumeSend(type="call_resume", call_id=call.id))
            else:
                await self._finish(call, "disconnected")

    # --- helpers -----------------------------------------------------------------------------

    async def _new_call(
        self, call_id: str, room_id: int, peer: User, media: Media, polite: bool
    ) -> PeerCall:
        pc = RTCPeerConnection(await self._configuration())
        call = PeerCall(call_id, room_id, peer, media, pc, polite=polite)
        self.calls[call_id] = call
        self._connect(call, pc)
        if self.on_call is not None:
            self.on_call(call)
        return call

    def _connect(self, call: PeerCall, pc: RTCPeerConnection) -> RTCPeerConnection:
        """Wire a peer connection's events to the call."""

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            # Always read the track (aiortc queues decoded frames until someone does).
            count = self._count(call, self.relay.subscribe(track))
            call.tasks.append(asyncio.ensure_future(count))
            if self.on_remote_track is not None:
                reader = self.on_remote_track(call, self.relay.subscribe(track))
                if reader is not None:
                    call.tasks.append(asyncio.ensure_future(reader))

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState == "connected":
                call.answered.set()
                if call.card.connected(pc):  # the first connection: sample for the whole call
                    call.tasks.append(asyncio.ensure_future(call.card.watch(lambda: call.pc)))
                code = call.security_code
                log.info("call %s security code: %s", call.id, code.text if code else "none")
                await self._send_media(call)
            elif pc.connectionState == "failed" and not call.finishing and call.pc is pc:
                await self.hang_up(call)

        return pc

    async def _answer_offer(self, call: PeerCall, sdp: str) -> None:
        """Set the other side's offer, add this side's tracks and set the answer as local."""
        await self._set_remote(call, "offer", sdp)
        for track in self.tracks(call):
            call.pc.addTrack(track)
        await call.pc.setLocalDescription(await call.pc.createAnswer())

    async def _set_remote(self, call: PeerCall, kind: str, sdp: str) -> None:
        """Set the other side's description, keep it for the security code, apply candidates."""
        await call.pc.setRemoteDescription(RTCSessionDescription(sdp, kind))
        call.remote_sdp = sdp
        await self._flush(call)

    async def _send_description(self, call: PeerCall) -> None:
        """Send the local description (an answer, or a later offer) as `call_description`."""
        local = call.pc.localDescription
        description = SessionDescription.model_validate({"type": local.type, "sdp": local.sdp})
        await self.client.send(
            CallDescriptionSend(type="call_description", call_id=call.id, description=description)
        )

    async def _offer(self, call: PeerCall) -> None:
        """Renegotiate: send a new offer as `call_description` (perfect negotiation)."""
        call.making_offer = True
        try:
            await call.pc.setLocalDescription(await call.pc.createOffer())
            await self._send_description(call)
        finally:
            call.making_offer = False

    async def _send_media(self, call: PeerCall) -> None:
        """Tell the other side what this peer sends: always sound, pictures while it sends video."""
        media = CallMediaSend(
            type="call_media", call_id=call.id, audio=True, video=sends_video(call.pc)
        )
        await self.client.send(media)

    async def _configuration(self) -> RTCConfiguration:
        try:
            body = await self.client.api("GET", "/api/ice-servers")
        except Exception:
            return RTCConfiguration()
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in body.get("iceServers", [])
        ]
        policy = (
            RTCIceTransportPolicy.RELAY
            if body.get("iceTransportPolicy") == "relay"
            else RTCIceTransportPolicy.ALL
        )
        return RTCConfiguration(iceServers=servers, iceTransportPolicy=policy)

    @staticmethod
    async def _count(call: PeerCall, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                call.received[track.kind] += 1
                if call.received[track.kind] == 1:
                    log.info("call %s: first %s from %s", call.id, track.kind, call.peer.username)

    async def _flush(self, call: PeerCall) -> None:
        if call.pc.remoteDescription is None:
            return
        while call.pending:
            init = call.pending.pop(0)
            line = init.candidate
            if not line:
                continue  # end of candidates
            try:
                candidate = candidate_from_sdp(line.split(":", 1)[1] if ":" in line else line)
                candidate.sdpMid = init.sdpMid
                candidate.sdpMLineIndex = init.sdpMLineIndex
                await call.pc.addIceCandidate(candidate)
            except Exception as exc:  # one bad candidate must not end the call
                if not call.ignore_offer:
                    log.debug("candidate refused: %s", exc)

    @staticmethod
    def _stop_senders(pc: RTCPeerConnection) -> None:
        for sender in pc.getSenders():
            if sender.track is not None:
                sender.track.stop()

    async def _finish(self, call: PeerCall, reason: str) -> None:
        if call.finishing:
            return
        call.finishing = True
        call.end_reason = reason
        self.calls.pop(call.id, None)
        self.finished.append(call)
        for task in call.tasks:
            task.cancel()
        try:
            await call.card.sample(call.pc)  # before close, which forgets the path
            self._stop_senders(call.pc)
            await call.pc.close()
        finally:
            call.ended.set()  # only now: whoever waits for the end finds the connection closed
        await self._report(call)

    async def _report(self, call: PeerCall) -> None:
        """Send the call's report card, after call_end: the server matches it to the record."""
        if (report := call.card.summary(call.id)) is not None:
            await self.client.send(report)
