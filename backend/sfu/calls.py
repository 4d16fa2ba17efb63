"""Group calls through Janus: a room per call, two connections per participant, Parley between.

Each participant sends on one connection (their publisher handle: their offer, Janus's answer)
and receives everyone else on another (their subscriber handle: Janus's offer, their answer).
Janus's events say who publishes; Parley subscribes each participant to each other publisher,
and Janus renegotiates a receiving connection when a publisher comes or goes. Browsers never
talk to Janus: their descriptions and candidates come over /ws and their answers go back there.

Everything one call asks of Janus runs in order in that call's own worker (a greenlet in the
gevent web process), never under the call registry's lock; every request has Janus's time limit.
What it has to tell a participant goes through `send` (the registry delivers it, or keeps it
while their socket is away); a call whose room cannot be made, or whose Janus session is lost
(Janus restarted), is handed to `failed` to be ended.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from backend.signaling.fields import IceCandidateInit, SessionDescription, ice_ufrag
from backend.signaling.groupframes import Pc, SfuDescription, SfuStream

from .janus import Event, Janus, JanusError, Session, plugin_data
from .videoroom import Room

log = logging.getLogger("parley.sfu")

ID_EXISTS = 436  # VideoRoom's JANUS_VIDEOROOM_ERROR_ID_EXISTS: that feed id is in the room
REJOIN_SECONDS = 5.0  # how long a returning participant's join waits for Janus to let go

Send = Callable[[str, int, SfuDescription], None]
Failed = Callable[[str, str], None]


@dataclass
class Seat:
    """One participant's two handles, and the receiving side's negotiation state."""

    user_id: int
    publisher: int = 0
    subscriber: int = 0
    feeds: set[int] = field(default_factory=set)  # the publishers they receive (or asked for)
    offering: bool = False  # Janus's offer for their receiving connection awaits their answer
    later: set[int] = field(default_factory=set)  # publishers to add once they have answered
    ufrag: str = ""  # the ICE username fragment of their last offer to send
    restart: bool = False  # restart ICE on their receiving connection once they have answered
    streams: list[SfuStream] = field(default_factory=list)  # what their receiving m-lines carry


class SfuCall:
    """One group call's room and seats, and the worker that talks to Janus for it."""

    def __init__(self, owner: SfuCalls, call_id: str) -> None:
        self.owner = owner
        self.id = call_id
        self.session: Session | None = None
        self.room: Room | None = None
        self.seats: dict[int, Seat] = {}
        self.closed = False
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name=f"sfu-{call_id}", daemon=True)
        self._worker.start()

    def put(self, task: Callable[[], None]) -> None:
        """Run task in this call's worker, after everything put before it."""
        if not self.closed:
            self._tasks.put(task)

    def stop(self) -> None:
        self.closed = True
        self._tasks.put(None)

    def join(self, timeout: float) -> None:
        self._worker.join(timeout)

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except JanusError as exc:
                log.warning("sfu call %s: janus refused: %s", self.id, exc)
            except Exception:
                log.exception("sfu call %s", self.id)

    # --- the tasks (in the worker) -----------------------------------------------------------

    def open(self) -> None:
        try:
            self.session = self.owner.janus.session(on_lost=self._lost)
            self.room = Room(self.session, self.owner.admin_key, self.owner.max_size)
            self.room.create()
        except JanusError as exc:
            log.warning("sfu call %s: no room on janus: %s", self.id, exc)
            self._give_up("sfu_unavailable")

    def publish(self, user_id: int, offer: SessionDescription) -> None:
        room, seat = self.room, self._seat(user_id)
        if room is None:
            return
        jsep = offer.model_dump()
        ufrag, restarted = ice_ufrag(offer.sdp), False
        if seat.publisher:  # a renegotiation (camera on, ICE restart): configure again
            answer = self._session().message(seat.publisher, {"request": "configure"}, jsep)
            restarted = bool(seat.ufrag) and ufrag != seat.ufrag
        else:
            seat.publisher = room.attach(lambda event: self.put(lambda: self._heard(seat, event)))
            answer = self._join(room, seat.publisher, user_id, jsep)
        seat.ufrag = ufrag
        self._tell(seat, "publish", answer)
        if restarted:  # their network changed: their receiving connection restarts ICE too
            self._restart(seat)
        log.debug(
            "sfu call %s: user %s publishes; present: %s", self.id, user_id, _publishers(answer)
        )
        self._subscribe(seat, _publishers(answer))

    def answered(self, user_id: int, answer: SessionDescription) -> None:
        seat = self.seats.get(user_id)
        if seat is None or not seat.subscriber:
            return
        self._session().message(seat.subscriber, {"request": "start"}, answer.model_dump())
        seat.offering = False
        if seat.restart:
            self._restart(seat)
        if seat.later:
            later, seat.later = sorted(seat.later), set()
            self._subscribe(seat, later)

    def candidate(self, user_id: int, pc: Pc, candidate: IceCandidateInit | None) -> None:
        seat = self.seats.get(user_id)
        handle = (seat.publisher if pc == "publish" else seat.subscriber) if seat else 0
        if handle:
            value = None if candidate is None or not candidate.candidate else candidate.model_dump()
            self._session().trickle(handle, value)

    def leave(self, user_id: int) -> None:
        """Detach their handles: their connections close, the others stop receiving them."""
        seat = self.seats.pop(user_id, None)
        if seat is None or self.session is None:
            return
        for handle in (seat.subscriber, seat.publisher):
            if handle:
                self.session.detach(handle)
        for other in self.seats.values():
            other.feeds.discard(user_id)
            other.later.discard(user_id)

    def close(self) -> None:
        if self.room is not None:
            try:
                self.room.destroy()
            except JanusError as exc:
                log.info("sfu call %s: destroying its room: %s", self.id, exc)
        if self.session is not None:
            self.session.destroy()
        self.stop()

    # --- helpers (in the worker) -------------------------------------------------------------

    def _session(self) -> Session:
        if self.session is None:
            raise JanusError("no janus session")
        return self.session

    def _join(self, room: Room, handle: int, user_id: int, jsep: dict[str, Any]) -> Event:
        """Join the room as publisher `user_id`, even if Janus still holds their last handle.

        A participant who comes back (a reload, a new socket) left a moment ago: Parley detached
        their old handle, but Janus may let go of its feed a little later, and until then it
        refuses the same feed id (`ID_EXISTS`, seen once in a full test run). Put the stale feed
        out and try again for a few seconds.
        """
        deadline = time.monotonic() + REJOIN_SECONDS
        while True:
            try:
                return room.publish(handle, user_id, jsep)
            except JanusError as exc:
                if exc.code != ID_EXISTS or time.monotonic() > deadline:
                    raise
                log.info(
                    "sfu call %s: user %s is still in the room; putting it out", self.id, user_id
                )
            try:
                room.kick(user_id)
            except JanusError as exc:  # already gone on its own
                log.debug("sfu call %s: kicking user %s: %s", self.id, user_id, exc)
            time.sleep(0.2)

    def _seat(self, user_id: int) -> Seat:
        return self.seats.setdefault(user_id, Seat(user_id))

    def _heard(self, seat: Seat, event: Event) -> None:
        """An event on a participant's handle that no request waits for."""
        if self.seats.get(seat.user_id) is not seat:
            return
        data = plugin_data(event)
        if event.get("jsep") and data.get("videoroom") in ("attached", "updated"):
            self._tell(seat, "subscribe", event)  # Janus renegotiates (a publisher left)
        elif data.get("publishers"):
            self._subscribe(seat, _publishers(event))

    def _subscribe(self, seat: Seat, feeds: list[int]) -> None:
        """Have the participant receive these publishers (once they answered Janus's last offer)."""
        new = [f for f in feeds if f != seat.user_id and f not in seat.feeds and f in self.seats]
        if not new or self.room is None:
            return
        # One publisher per offer: aiortc, given an offer with several video m-lines at once,
        # gets media on the first only (measured: 0 packets on the others); added one by one,
        # every m-line carries. A late joiner's connection fills up in one round trip each.
        new, rest = new[:1], new[1:]
        seat.later.update(rest)
        if seat.offering:
            seat.later.update(new)
            return
        first = not seat.subscriber
        if first:
            seat.subscriber = self.room.attach(
                lambda event: self.put(lambda: self._heard(seat, event))
            )
        seat.feeds.update(new)
        offer = self.room.subscribe(seat.subscriber, new, first)
        self._tell(seat, "subscribe", offer)

    def _restart(self, seat: Seat) -> None:
        """Have Janus offer their receiving connection new ICE credentials (an ICE restart); after
        their answer to an offer still out, since Janus would hold this one back unannounced."""
        seat.restart = seat.offering
        if seat.subscriber and not seat.offering:
            restart = {"request": "configure", "restart": True}
            self._tell(seat, "subscribe", self._session().message(seat.subscriber, restart))

    def _tell(self, seat: Seat, pc: Pc, event: Event) -> None:
        jsep = event.get("jsep")
        if not isinstance(jsep, dict):
            raise JanusError(f"janus sent no description for {pc}")
        data = plugin_data(event)
        if pc == "subscribe":
            seat.offering = True
            # A restart's offer names no streams: the m-lines carry what they carried.
            if "streams" in data:
                seat.streams = _streams(data)
        frame = SfuDescription(
            call_id=self.id,
            pc=pc,
            description=SessionDescription.model_validate(
                {"type": jsep.get("type"), "sdp": jsep.get("sdp")}
            ),
            streams=seat.streams if pc == "subscribe" else [],
        )
        self.owner.send(self.id, seat.user_id, frame)

    def _lost(self, why: str) -> None:
        log.warning("sfu call %s: janus session lost (%s)", self.id, why)
        self._give_up("sfu_restarted")

    def _give_up(self, reason: str) -> None:
        if not self.closed:
            self.stop()
            self.owner.failed(self.id, reason)


class SfuCalls:
    """The SFU side of every group call that goes through Janus."""

    def __init__(
        self, janus: Janus, admin_key: str, max_size: int, send: Send, failed: Failed
    ) -> None:
        self.janus = janus
        self.admin_key = admin_key
        self.max_size = max_size
        self.send = send
        self.failed = failed
        self._calls: dict[str, SfuCall] = {}
        self._lock = threading.Lock()

    def open(self, call_id: str) -> None:
        """Make the call's room (in its worker)."""
        with self._lock:
            if call_id in self._calls:
                return
            call = self._calls[call_id] = SfuCall(self, call_id)
        call.put(call.open)

    def description(self, call_id: str, user_id: int, pc: Pc, desc: SessionDescription) -> None:
        """A participant's offer to send (`publish`) or answer to receive (`subscribe`)."""
        call = self._calls.get(call_id)
        if call is not None and pc == "publish" and desc.type == "offer":
            call.put(lambda: call.publish(user_id, desc))
        elif call is not None and pc == "subscribe" and desc.type == "answer":
            call.put(lambda: call.answered(user_id, desc))

    def candidate(
        self, call_id: str, user_id: int, pc: Pc, candidate: IceCandidateInit | None
    ) -> None:
        call = self._calls.get(call_id)
        if call is not None:
            call.put(lambda: call.candidate(user_id, pc, candidate))

    def leave(self, call_id: str, user_id: int) -> None:
        """A participant left, or came back on new connections (their old ones go)."""
        call = self._calls.get(call_id)
        if call is not None:
            call.put(lambda: call.leave(user_id))

    def close(self, call_id: str) -> None:
        """The call ended: destroy its room and session."""
        with self._lock:
            call = self._calls.pop(call_id, None)
        if call is not None:
            call.put(call.close)

    def close_all(self, wait: float = 5) -> None:
        """Close every call's room (at shutdown), waiting up to `wait` seconds for Janus."""
        calls = list(self._calls.values())
        for call in calls:
            self.close(call.id)
        deadline = time.monotonic() + wait
        for call in calls:
            call.join(max(0.0, deadline - time.monotonic()))


def _publishers(event: Event) -> list[int]:
    found = plugin_data(event).get("publishers")
    return [int(p["id"]) for p in found or [] if isinstance(p, dict) and "id" in p]


def _streams(data: dict[str, Any]) -> list[SfuStream]:
    out = []
    for stream in data.get("streams") or []:
        kind, feed = stream.get("type"), stream.get("feed_id")
        if kind in ("audio", "video") and feed and stream.get("active", True):
            out.append(SfuStream(mid=str(stream.get("mid")), user_id=int(feed), kind=kind))
    return out
