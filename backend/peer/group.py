"""Join a room's group call from Python: one peer connection per remote participant (a mesh).

Each pair is a `PeerCall` negotiated exactly as a 1:1 call (perfect negotiation, queued
candidates, restart by replacement), with every description addressed `to` the one participant
it is for. The newcomer offers to everyone present; the others answer the offers they get. In
each pair the participant with the larger user id is polite.

aiortc cannot restart ICE: it answers a restart offer with its old credentials and the other side's
new checks never succeed. So a browser's ICE restart (its path went down) is met with an offer from
a new connection (`restart`), which the browser takes in place of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection

from backend.signaling.fields import ice_ufrag
from backend.signaling.groupframes import (
    GroupCallJoined,
    GroupCallJoinSend,
    GroupCallLeaveSend,
    GroupCallRing,
    GroupCallStartSend,
    GroupCallState,
    SfuDescription,
)
from backend.signaling.protocol import (
    CallDescription,
    CallDescriptionSend,
    CallEnd,
    CallMedia,
    CallMediaSend,
    CallResumeSend,
    Error,
    IceCandidate,
    IceCandidateInit,
    Media,
    SessionDescription,
    User,
    Welcome,
)

from .client import ParleyClient, ServerFrame
from .media import VIDEO_SIZE, generated_tracks
from .peer import Peer, PeerCall, sends_video
from .sfu import SfuLink

log = logging.getLogger("parley.peer")

LEFT_GRACE_S = 2.0  # how long a connection closed by the other side waits for news of them
# A new connection of ours not up this long after its offer is offered again (the offer or its
# answer can be lost while the server restarts), as the browser's REOFFER_AFTER_MS.
RENEW_AGAIN_S = 20.0


def ice_restarted(pair: PeerCall, offer_sdp: str) -> bool:
    """Whether an offer on the pair's connection restarts ICE (new credentials)."""
    old, new = ice_ufrag(pair.remote_sdp), ice_ufrag(offer_sdp)
    return bool(old and new and old != new)


@dataclass
class GroupCall:
    """This peer's place in one group call: a pair per remote participant, and who has left."""

    id: str
    room_id: int
    media: Media
    started: bool = False  # this peer asked to start it (the server may have joined a live one)
    pairs: dict[int, PeerCall] = field(default_factory=dict)
    # Stats of the pairs that ended (the participant left), taken before their connection closed.
    gone: dict[str, dict[str, Any]] = field(default_factory=dict)
    joined: asyncio.Event = field(default_factory=asyncio.Event)
    joined_at: float = 0.0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: str = ""
    sfu: SfuLink | None = None  # the call goes through Janus: two connections, not pairs
    users: dict[int, User] = field(default_factory=dict)  # everyone we heard of in the call

    async def stats(self) -> dict[str, Any]:
        """Per remote participant (by username): frames and bytes received and sent per kind."""
        live = {pair.peer.username: await pair.stats() for pair in list(self.pairs.values())}
        if self.sfu is not None:
            live.update(await self.sfu.stats(self.users))
        return {
            "call_id": self.id,
            "room_id": self.room_id,
            "media": self.media,
            "started": self.started,
            "joined": self.joined.is_set(),
            "seconds": time.monotonic() - self.joined_at if self.joined_at else 0.0,
            "end_reason": self.end_reason,
            "participants": {**self.gone, **live},
        }


class GroupPeer(Peer):
    """One account in group calls: finds, starts or joins a room's call and keeps its mesh."""

    def __init__(
        self, client: ParleyClient, media: Media = "video", size: tuple[int, int] = VIDEO_SIZE
    ) -> None:
        super().__init__(client, tracks=self._local_tracks, answer=lambda offer: False)
        # One tone and one picture, fanned out to every pair as a camera would be.
        self.sources = generated_tracks(media, size)
        self.me: User | None = None
        self.live: dict[int, str] = {}  # room id -> the id of its live call, as last heard
        self.group_call: GroupCall | None = None
        self.changed = asyncio.Event()
        self.closing: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()  # closed by us

    # --- intents ---------------------------------------------------------------------------

    async def live_call(self, room_id: int, seconds: float) -> str | None:
        """Wait up to `seconds` for a live call in the room; return its id, None if none came."""
        deadline = time.monotonic() + seconds
        while room_id not in self.live:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return None
        return self.live[room_id]

    async def join(self, room_id: int, call_id: str, media: Media) -> GroupCall:
        """Join the room's live call `call_id`; the server answers with who is in it."""
        self.group_call = GroupCall(call_id, room_id, media)
        await self.client.send(GroupCallJoinSend(type="group_call_join", call_id=call_id))
        return self.group_call

    async def start(self, room_id: int, media: Media) -> GroupCall:
        """Start a call in the room (the server joins us to the live one if there is one)."""
        self.group_call = GroupCall(str(uuid.uuid4()), room_id, media, started=True)
        start = GroupCallStartSend(
            type="group_call_start", call_id=self.group_call.id, room_id=room_id, media=media
        )
        await self.client.send(start)
        return self.group_call

    async def leave(self) -> None:
        """Leave the call and close every pair's connection."""
        call = self.group_call
        if call is None or call.ended.is_set():
            return
        await self.client.send(GroupCallLeaveSend(type="group_call_leave", call_id=call.id))
        await self._end(call, "left")

    async def close(self) -> None:
        """Leave the group call, if in one, and stop our tone and picture."""
        await self.leave()
        for track in self.sources:
            track.stop()

    async def hang_up(self, call: PeerCall) -> None:
        """Replace a pair's failed connection: the impolite side offers a new one (restart)."""
        group = self.group_call
        if group is None or group.ended.is_set() or group.pairs.get(call.peer.id) is not call:
            return
        if call.polite:
            return  # the other side's restart offer replaces our connection (_replace)
        log.info("group call %s: new connection with %s", group.id, call.peer.username)
        await self._renew(call)

    async def _renew(self, pair: PeerCall) -> None:
        """Offer from a new connection, as a restart: the other side replaces its own with it."""
        old = pair.pc
        self.closing.add(old)
        self._stop_senders(old)
        await old.close()
        pair.pending.clear()  # candidates of the old connection
        pair.pc = self._connect(pair, RTCPeerConnection(await self._configuration()))
        for track in self.tracks(pair):
            pair.pc.addTrack(track)
        pair.renewing = True
        await self._offer(pair)
        pair.tasks.append(asyncio.ensure_future(self._renew_if_down(pair, pair.pc)))

    async def _renew_if_down(self, pair: PeerCall, pc: RTCPeerConnection) -> None:
        await asyncio.sleep(RENEW_AGAIN_S)
        group = self.group_call
        if group is None or group.ended.is_set() or group.pairs.get(pair.peer.id) is not pair:
            return
        if pair.pc is pc and pc.connectionState != "connected":
            log.info("group call %s: no path to %s yet: again", group.id, pair.peer.username)
            await self._renew(pair)

    # --- what the server says ---------------------------------------------------------------

    async def handle(self, message: ServerFrame) -> None:
        """Act on one frame from the socket."""
        match message:
            case Welcome():
                self.me = message.user
                calls = message.group_calls
                self.live = {s.room_id: s.call_id for s in calls if s.state != "ended"}
                await self._resume(message)
                self.changed.set()
            case GroupCallState():
                self._heard(message)
                await self._state(message)
            case GroupCallRing():
                self.live.setdefault(message.room_id, message.call_id)
                self.changed.set()
            case GroupCallJoined():
                await self._joined(message)
            case Error(ref_type="group_call_join" | "group_call_start"):
                # A refused join ("full") may name the live call rather than the id we sent.
                if self.group_call is not None and not self.group_call.joined.is_set():
                    log.warning("group call refused: %s (%s)", message.reason, message.message)
                    await self._end(self.group_call, message.reason)
            case _:
                call = self.group_call
                if call is not None and getattr(message, "call_id", None) == call.id:
                    await self._signal(call, message)

    async def _signal(self, call: GroupCall, message: ServerFrame) -> None:
        """Route a frame of our call to the pair of the participant it came from."""
        match message:
            case CallDescription():
                await self._description_from(call, message)
            case IceCandidate():
                pair = call.pairs.get(message.from_.id)
                if pair is not None:
                    pair.pending.append(message.candidate or IceCandidateInit())
                    await self._flush(pair)
            case CallMedia():
                pair = call.pairs.get(message.from_.id)
                if pair is not None:
                    pair.remote_media = {"audio": message.audio, "video": message.video}
            case SfuDescription():
                if call.sfu is not None:
                    await call.sfu.description(message)
            case CallEnd():
                await self._end(call, message.reason)
            case Error():
                log.info("group call %s: %s (%s)", call.id, message.reason, message.message)

    async def _joined(self, joined: GroupCallJoined) -> None:
        """We are in: offer to every participant we have no connection with yet."""
        call = self.group_call
        if call is None or call.room_id != joined.room_id or call.ended.is_set():
            return
        self._in(call, joined.call_id)
        call.users.update({user.id: user for user in joined.participants})
        if joined.topology == "sfu":  # through Janus: (new) connections out and in
            if call.sfu is not None:
                await call.sfu.close()
            tracks = [self.relay.subscribe(t, buffered=False) for t in self.sources]
            call.sfu = SfuLink(
                self.client, call.id, self._configuration, tracks, lambda: self._start_over(call)
            )
            await call.sfu.publish()
            return
        for user in joined.participants:
            if self.me is not None and user.id != self.me.id and user.id not in call.pairs:
                pair = await self._pair(call, user)
                for track in self.tracks(pair):
                    pair.pc.addTrack(track)
                await self._offer(pair)

    async def _description_from(self, call: GroupCall, message: CallDescription) -> None:
        sender, description = message.from_, message.description
        pair = call.pairs.get(sender.id)
        if pair is None:
            if description.type != "offer":
                return  # an answer for a pair we already dropped
            pair = await self._pair(call, sender)
            await self._answer_offer(pair, description.sdp)
            await self._send_description(pair)
        elif message.restart or (
            description.type == "offer" and pair.pc.signalingState == "closed"
        ):
            # A new connection of theirs, or an ICE restart reaching one of ours that closed by
            # itself (we may be the polite side, waiting): answer it from a new connection. Both
            # offered new connections at once: the polite side's gives way, as in the browser.
            if not (message.restart and pair.renewing and not pair.polite):
                await self._replace(pair, description)
        elif description.type == "offer" and pair.renewing:
            return  # for the connection we replaced: they take our restart offer instead
        elif description.type == "offer" and ice_restarted(pair, description.sdp):
            log.info("group call %s: %s restarts ICE: a new connection", call.id, sender.username)
            await self._renew(pair)
        else:
            await self._description(pair, description)
            if description.type == "answer" and pair.pc.remoteDescription is not None:
                pair.renewing = False

    async def _state(self, state: GroupCallState) -> None:
        """Note that we are in; drop the pairs of participants who left; end with the call."""
        call = self.group_call
        if call is None or call.ended.is_set() or call.room_id != state.room_id:
            return
        present = {user.id for user in state.participants}
        if call.started and not call.joined.is_set() and self.me and self.me.id in present:
            self._in(call, state.call_id)  # the starter is in at once
        if state.call_id != call.id:
            return
        if state.state == "ended":
            await self._end(call, "ended")
            return
        call.users.update({user.id: user for user in state.participants})
        for user_id, pair in list(call.pairs.items()):
            if user_id not in present:
                await self._drop(pair, "left")

    async def _resume(self, welcome: Welcome) -> None:
        """After a reconnect, take our place in the call back, or end it if it is gone."""
        call = self.group_call
        if call is None or not call.joined.is_set() or call.ended.is_set():
            return
        live = next((s for s in welcome.group_calls if s.call_id == call.id), None)
        if live is None or live.state == "ended":
            await self._end(call, "disconnected")
        else:
            await self.client.send(CallResumeSend(type="call_resume", call_id=call.id))

    async def _start_over(self, call: GroupCall) -> None:
        """Start the call over on new connections (Parley answers with group_call_joined)."""
        if not call.ended.is_set():
            await self.client.send(CallResumeSend(type="call_resume", call_id=call.id))

    # --- helpers -----------------------------------------------------------------------------

    def _heard(self, state: GroupCallState) -> None:
        if state.state == "ended":
            self.live.pop(state.room_id, None)
        else:
            self.live[state.room_id] = state.call_id
        self.changed.set()

    @staticmethod
    def _in(call: GroupCall, call_id: str) -> None:
        """Mark the call joined under the server's id (a start may have joined a live call)."""
        call.id = call_id
        if not call.joined.is_set():
            call.joined_at = time.monotonic()
            call.joined.set()
            log.info("joined group call %s", call_id)

    def _local_tracks(self, pair: PeerCall) -> list[MediaStreamTrack]:
        """A copy of our tone and picture for one pair; a slow encoder skips frames, not lags."""
        return [self.relay.subscribe(track, buffered=False) for track in self.sources]

    async def _pair(self, call: GroupCall, user: User) -> PeerCall:
        """A connection with one participant; the larger user id is polite."""
        polite = self.me is not None and self.me.id > user.id
        pc = RTCPeerConnection(await self._configuration())
        pair = PeerCall(call.id, call.room_id, user, call.media, pc, polite)
        call.pairs[user.id] = pair
        self._connect(pair, pair.pc)
        return pair

    async def _send_description(self, call: PeerCall) -> None:
        """Send the local description to the one participant of this pair."""
        local = call.pc.localDescription
        description = SessionDescription.model_validate({"type": local.type, "sdp": local.sdp})
        # An offer from a new connection replaces the other side's connection.
        restart = call.renewing and local.type == "offer"
        await self.client.send(
            CallDescriptionSend(
                type="call_description",
                call_id=call.id,
                to=call.peer.id,
                description=description,
                restart=restart,
            )
        )

    def _connect(self, call: PeerCall, pc: RTCPeerConnection) -> RTCPeerConnection:
        """Wire a pair's connection as a 1:1 call's, and replace it should it close by itself."""
        super()._connect(call, pc)

        @pc.on("connectionstatechange")
        async def _on_closed() -> None:
            # aiortc closes a connection itself when its DTLS or ICE gives out (consent lost).
            if pc.connectionState == "closed" and call.pc is pc and pc not in self.closing:
                # A participant who leaves closes theirs too, just before the server says so.
                await asyncio.sleep(LEFT_GRACE_S)
                if call.pc is pc:
                    await self.hang_up(call)

        return pc

    async def _replace(self, call: PeerCall, description: SessionDescription) -> None:
        """Answer the other side's new connection from a new one of ours (theirs was lost)."""
        log.info("group call %s: %s offers a new connection", call.id, call.peer.username)
        self.closing.add(call.pc)
        call.renewing = False  # theirs wins: we answer it
        await super()._replace(call, description)

    async def _send_media(self, call: PeerCall) -> None:
        """Tell every participant what we send (call_media without `to` reaches them all)."""
        media = CallMediaSend(
            type="call_media", call_id=call.id, audio=True, video=sends_video(call.pc)
        )
        await self.client.send(media)

    async def _drop(self, pair: PeerCall, reason: str) -> None:
        call = self.group_call
        if call is not None and call.pairs.get(pair.peer.id) is pair:
            del call.pairs[pair.peer.id]
            pair.end_reason = reason
            call.gone[pair.peer.username] = await pair.stats()
            log.info("group call %s: %s gone (%s)", call.id, pair.peer.username, reason)
        await self._finish(pair, reason)

    async def _report(self, call: PeerCall) -> None:
        """Send nothing: a group call's pairs have no record of their own to report on."""

    async def _end(self, call: GroupCall, reason: str) -> None:
        if call.ended.is_set():
            return
        for pair in list(call.pairs.values()):
            await self._drop(pair, reason)
        if call.sfu is not None:
            call.gone.update(await call.sfu.stats(call.users))
            await call.sfu.close()
        call.end_reason = reason
        call.ended.set()
        log.info("group call %s over for us (%s)", call.id, reason)
