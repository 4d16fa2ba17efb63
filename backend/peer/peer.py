"""Place and answer Parley calls from Python with aiortc, over the same protocol as a browser."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from aiortc.sdp import candidate_from_sdp

from .client import ParleyClient
from .securitycode import SecurityCode, security_code

log = logging.getLogger("parley.peer")

AUDIO_RATE = 48000
AUDIO_SAMPLES = 960  # 20 ms
VIDEO_SIZE = (320, 240)
VIDEO_RATE = 30


# --- generated media ---------------------------------------------------------------------------


class ToneTrack(MediaStreamTrack):
    """A 400 Hz tone, 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        samples = (
            int(8000 * math.sin(2 * math.pi * 400 * n / AUDIO_RATE)) for n in range(AUDIO_SAMPLES)
        )
        self._pcm = struct.pack(f"<{AUDIO_SAMPLES}h", *samples)
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / AUDIO_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_SAMPLES)
        frame.planes[0].update(self._pcm)
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._pts += AUDIO_SAMPLES
        return frame


class PatternTrack(MediaStreamTrack):
    """Moving diagonal stripes, so a frozen picture is easy to tell from a live one."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        width, height = VIDEO_SIZE
        self._frames: list[bytes] = []
        for shift in range(0, 256, 8):
            rows = (bytes((x + y + shift) & 0xFF for x in range(width)) for y in range(height))
            self._frames.append(b"".join(rows))
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._count / VIDEO_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        width, height = VIDEO_SIZE
        frame = av.VideoFrame(width=width, height=height, format="yuv420p")
        luma = self._frames[self._count % len(self._frames)]
        plane = frame.planes[0]
        view = memoryview(plane)
        for y in range(height):
            view[y * plane.line_size : y * plane.line_size + width] = luma[
                y * width : (y + 1) * width
            ]
        for chroma in frame.planes[1:]:
            memoryview(chroma)[:] = b"\x80" * chroma.buffer_size
        frame.pts = self._count * (90000 // VIDEO_RATE)
        frame.time_base = fractions.Fraction(1, 90000)
        self._count += 1
        return frame


# --- calls -------------------------------------------------------------------------------------


@dataclass
class PeerCall:
    """One call of this peer, as caller or callee."""

    id: str
    room_id: int
    peer: dict[str, Any]
    media: str
    role: str
    pc: RTCPeerConnection
    polite: bool
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str = ""
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    remote_ready: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # The other side's microphone and camera, from its call_media.
    remote_media: dict[str, bool] = field(default_factory=lambda: {"audio": True, "video": True})
    # The other side's last description as received: aiortc's remoteDescription is re-serialised.
    remote_sdp: str = ""

    @property
    def security_code(self) -> SecurityCode | None:
        """Return the code both sides show, from the descriptions as exchanged; None before."""
        local = self.pc.localDescription
        if local is None or not self.remote_sdp:
            return None
        return security_code(local.sdp, self.remote_sdp)

    async def stats(self) -> dict[str, Any]:
        """Frames received per kind and inbound bytes from getStats."""
        bytes_in = {"audio": 0, "video": 0}
        with contextlib.suppress(Exception):
            report = await self.pc.getStats()
            for stat in report.values():
                if stat.type == "inbound-rtp":
                    bytes_in[stat.kind] += stat.bytesReceived
        code = self.security_code
        return {
            "call_id": self.id,
            "peer": self.peer.get("username"),
            "media": self.media,
            "frames_received": dict(self.received),
            "bytes_received": bytes_in,
            "connection_state": self.pc.connectionState,
            "end_reason": self.end_reason,
            "security_code": code.to_json() if code else None,
        }


# Media for a call: given the call, return the tracks to send (may wrap the remote ones later).
TrackFactory = Callable[[PeerCall], list[MediaStreamTrack]]
RemoteTrackHook = Callable[[PeerCall, MediaStreamTrack], Awaitable[None] | None]


def generated_tracks(call: PeerCall) -> list[MediaStreamTrack]:
    """A tone, plus moving stripes for video calls."""
    tracks: list[MediaStreamTrack] = [ToneTrack()]
    if call.media == "video":
        tracks.append(PatternTrack())
    return tracks


class Peer:
    """Calls of one signed-in account: places, answers, ends, and keeps the stats."""

    def __init__(
        self,
        client: ParleyClient,
        *,
        tracks: TrackFactory = generated_tracks,
        answer: Callable[[dict[str, Any]], bool] | None = None,
        on_remote_track: RemoteTrackHook | None = None,
        on_call: Callable[[PeerCall], None] | None = None,
        on_replace: Callable[[PeerCall], None] | None = None,
        many: bool = False,
    ) -> None:
        self.client = client
        self.many = many  # answer calls while in others (the echo bot); else reply busy
        self.tracks = tracks
        self.should_answer = answer
        self.on_remote_track = on_remote_track
        self.on_call = on_call
        self.on_replace = on_replace  # before the tracks of a replaced connection are made
        self.calls: dict[str, PeerCall] = {}
        self.finished: list[PeerCall] = []

    # --- intents ---------------------------------------------------------------------------

    async def call(self, username: str, media: str = "video") -> PeerCall:
        """Open the room with `username` and call them."""
        room = await self.client.api("POST", "/api/rooms", {"username": username})
        call = await self._new_call(
            str(uuid.uuid4()), room["id"], room["peer"], media, role="caller"
        )
        for track in self.tracks(call):
            call.pc.addTrack(track)
        await call.pc.setLocalDescription(await call.pc.createOffer())
        await self.client.send(
            {
                "type": "call_offer",
                "call_id": call.id,
                "room_id": call.room_id,
                "to": call.peer["id"],
                "media": media,
                "sdp": call.pc.localDescription.sdp,
            }
        )
        return call

    async def hang_up(self, call: PeerCall) -> None:
        """End a call from this side."""
        await self.client.send({"type": "call_end", "call_id": call.id})
        await self._finish(call, "hangup")

    async def close(self) -> None:
        """Hang up every call and close every peer connection."""
        for call in list(self.calls.values()):
            await self.hang_up(call)

    # --- what the server says ---------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        """Act on one frame from the socket."""
        kind = message.get("type")
        call = self.calls.get(message.get("call_id", ""))
        if kind == "call_offer":
            await self._incoming(message)
        elif kind == "welcome":
            await self._resume(message)
        elif call is None:
            return
        elif kind == "call_answer":
            await call.pc.setRemoteDescription(RTCSessionDescription(message["sdp"], "answer"))
            call.remote_sdp = message["sdp"]
            await self._remote_ready(call)
        elif kind == "ice_candidate":
            call.pending.append(message.get("candidate") or {})
            if call.remote_ready:
                await self._flush(call)
        elif kind == "call_description" and message.get("restart") is True:
            await self._replace(call, message["description"])
        elif kind == "call_description":
            await self._description(call, message["description"])
        elif kind == "call_media":
            call.remote_media = {
                "audio": message.get("audio") is True,
                "video": message.get("video") is True,
            }
        elif kind in {"call_end", "call_cancelled", "call_timeout", "call_busy", "call_rejected"}:
            await self._finish(call, message.get("reason") or kind)
        elif kind == "error" and message.get("ref_type") == "call_offer":
            await self._finish(call, "error")

    async def _incoming(self, offer: dict[str, Any]) -> None:
        busy = bool(self.calls) and not self.many
        if busy or (self.should_answer is not None and not self.should_answer(offer)):
            reason = "busy" if busy else "declined"
            await self.client.send(
                {"type": "call_rejected", "call_id": offer["call_id"], "reason": reason}
            )
            return
        call = await self._new_call(
            offer["call_id"], offer["room_id"], offer["from"], offer["media"], role="callee"
        )
        await call.pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        call.remote_sdp = offer["sdp"]
        for track in self.tracks(call):
            call.pc.addTrack(track)
        await call.pc.setLocalDescription(await call.pc.createAnswer())
        await self.client.send(
            {"type": "call_answer", "call_id": call.id, "sdp": call.pc.localDescription.sdp}
        )
        await self._remote_ready(call)

    async def _description(self, call: PeerCall, description: dict[str, Any]) -> None:
        if description["type"] == "offer":
            if call.pc.signalingState != "stable" and not call.polite:
                return  # impolite side ignores a colliding offer
            await call.pc.setRemoteDescription(RTCSessionDescription(description["sdp"], "offer"))
            call.remote_sdp = description["sdp"]
            await self._answer(call)
        else:
            await call.pc.setRemoteDescription(RTCSessionDescription(description["sdp"], "answer"))
            call.remote_sdp = description["sdp"]
        await self._flush(call)

    async def _answer(self, call: PeerCall) -> None:
        """Answer the offer just set as the remote description, through `call_description`."""
        await call.pc.setLocalDescription(await call.pc.createAnswer())
        local = call.pc.localDescription
        await self.client.send(
            {
                "type": "call_description",
                "call_id": call.id,
                "description": {"type": local.type, "sdp": local.sdp},
            }
        )

    async def _replace(self, call: PeerCall, description: dict[str, Any]) -> None:
        """Answer the other side's new peer connection (it reloaded) from a new one of ours."""
        if description.get("type") != "offer":
            return
        old = call.pc
        # The old connection's track readers end by themselves once its tracks stop.
        for sender in old.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await old.close()
        call.pending.clear()  # candidates of the old connection
        call.remote_ready = False
        if self.on_replace is not None:
            self.on_replace(call)  # before the new connection's remote tracks arrive
        call.pc = self._connect(call, RTCPeerConnection(await self._configuration()))
        await call.pc.setRemoteDescription(RTCSessionDescription(description["sdp"], "offer"))
        call.remote_sdp = description["sdp"]
        for track in self.tracks(call):
            call.pc.addTrack(track)
        await self._answer(call)
        await self._remote_ready(call)

    async def _resume(self, welcome: dict[str, Any]) -> None:
        live = {c["call_id"] for c in welcome.get("calls", [])}
        for call in list(self.calls.values()):
            if call.id in live:
                await self.client.send({"type": "call_resume", "call_id": call.id})
            else:
                await self._finish(call, "disconnected")

    # --- helpers -----------------------------------------------------------------------------

    async def _new_call(
        self, call_id: str, room_id: int, peer: dict[str, Any], media: str, role: str
    ) -> PeerCall:
        pc = RTCPeerConnection(await self._configuration())
        call = PeerCall(call_id, room_id, peer, media, role, pc, polite=role == "callee")
        self.calls[call_id] = call
        self._connect(call, pc)
        if self.on_call is not None:
            self.on_call(call)
        return call

    def _connect(self, call: PeerCall, pc: RTCPeerConnection) -> RTCPeerConnection:
        """Wire a peer connection's events to the call."""

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            call.tasks.append(asyncio.ensure_future(self._consume(call, track)))

        @pc.on("connectionstatechange")
        async def _on_state() -> None:
            if pc.connectionState == "connected":
                call.answered.set()
                code = call.security_code
                log.info("call %s security code: %s", call.id, code.text if code else "none")
                await self._send_media(call)
            elif pc.connectionState == "failed" and not call.ended.is_set() and call.pc is pc:
                await self.hang_up(call)

        return pc

    async def _send_media(self, call: PeerCall) -> None:
        """Tell the other side what this peer sends: always sound, pictures on video calls."""
        await self.client.send(
            {
                "type": "call_media",
                "call_id": call.id,
                "audio": True,
                "video": call.media == "video",
            }
        )

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

    async def _consume(self, call: PeerCall, track: MediaStreamTrack) -> None:
        hook = self.on_remote_track(call, track) if self.on_remote_track else None
        if hook is not None:
            await hook
            return
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                call.received[track.kind] += 1

    async def _remote_ready(self, call: PeerCall) -> None:
        call.remote_ready = True
        await self._flush(call)

    async def _flush(self, call: PeerCall) -> None:
        while call.pending:
            init = call.pending.pop(0)
            line = init.get("candidate") or ""
            if not line:
                continue
            try:
                candidate = candidate_from_sdp(line.split(":", 1)[1] if ":" in line else line)
                candidate.sdpMid = init.get("sdpMid")
                candidate.sdpMLineIndex = init.get("sdpMLineIndex")
                await call.pc.addIceCandidate(candidate)
            except Exception as exc:  # one bad candidate must not end the call
                log.debug("candidate refused: %s", exc)

    async def _finish(self, call: PeerCall, reason: str) -> None:
        if call.ended.is_set():
            return
        call.end_reason = reason
        call.ended.set()
        self.calls.pop(call.id, None)
        self.finished.append(call)
        for task in call.tasks:
            task.cancel()
        for sender in call.pc.getSenders():
            if sender.track is not None:
                sender.track.stop()
        await call.pc.close()
