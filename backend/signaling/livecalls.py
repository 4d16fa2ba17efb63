"""The live calls: one call's state (LiveCall) and the book of calls by id and participant."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from .effects import CallRecord, Outcome, Send
from .protocol import CallInfo, CallOffer, IceCandidateInit, User, dump
from .timers import Cancellable

State = Literal["ringing", "active"]

# Frames kept for a participant whose socket dropped, flushed when it resumes.
MAX_BACKLOG = 200
# Ended call ids remembered, so a resume gets "gone" and an id cannot be reused.
MAX_ENDED = 10_000


class CallStore(Protocol):
    """What the registry needs from the database."""

    def shared_room(self, room_id: int, a: int, b: int) -> bool:
        """Tell whether room_id is the room of users a and b."""

    def user(self, user_id: int) -> User | None:
        """Return a user as others see them, or None."""

    def group_members(self, room_id: int) -> list[int] | None:
        """Return the members of a group room, or None when room_id is no group."""

    def record(self, record: CallRecord) -> dict[str, Any] | None:
        """Store the call and its `kind: "call"` timeline message; return the message's dict."""


@dataclass
class LiveCall:
    """A call that is ringing or active."""

    id: str
    room_id: int
    media: Literal["audio", "video"]
    caller: User
    callee: User
    started_at: datetime
    caller_conn: str | None
    state: State = "ringing"
    callee_conn: str | None = None
    answered_at: datetime | None = None
    offer_sdp: str = ""
    early_candidates: list[IceCandidateInit | None] = field(default_factory=list)
    ringing_sent: bool = False
    pushed: bool = False  # the callee's devices were rung by Web Push
    ring_timer: Cancellable | None = None
    grace: dict[int, Cancellable] = field(default_factory=dict)
    backlog: dict[int, list[str]] = field(default_factory=dict)
    # The socket each participant had when its node was taken for dead, bound again if it wakes.
    lost: dict[int, str] = field(default_factory=dict)

    def has(self, user_id: int) -> bool:
        """Tell whether user_id is one of the two participants."""
        return user_id in (self.caller.id, self.callee.id)

    def user(self, user_id: int) -> User:
        """Return the participant user_id (as the other one sees them)."""
        return self.caller if user_id == self.caller.id else self.callee

    def other(self, user_id: int) -> User:
        """Return the participant who is not user_id."""
        return self.callee if user_id == self.caller.id else self.caller

    def conn_of(self, user_id: int) -> str | None:
        """Return the socket id bound to the call for this participant."""
        return self.caller_conn if user_id == self.caller.id else self.callee_conn

    def bind(self, user_id: int, conn_id: str | None) -> None:
        """Bind (or with None, unbind) this participant's socket."""
        self.lost.pop(user_id, None)
        if user_id == self.caller.id:
            self.caller_conn = conn_id
        else:
            self.callee_conn = conn_id

    def send_to(self, user_id: int, frame: BaseModel) -> list[Send]:
        """Send to the participant's bound socket, or keep it until the participant resumes."""
        conn_id = self.conn_of(user_id)
        if conn_id is not None:
            return [Send(conn_id, frame)]
        backlog = self.backlog.setdefault(user_id, [])
        if len(backlog) < MAX_BACKLOG:
            backlog.append(dump(frame))
        return []

    def stop_grace(self, user_id: int) -> None:
        """Call off the participant's grace period, if one runs."""
        timer = self.grace.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    def cancel_timers(self) -> None:
        """Call off the ring timeout and every grace period."""
        if self.ring_timer is not None:
            self.ring_timer.cancel()
        for timer in self.grace.values():
            timer.cancel()

    def info_for(self, user_id: int) -> CallInfo:
        """Describe the call from user_id's side."""
        callee = user_id == self.callee.id
        return CallInfo(
            call_id=self.id,
            room_id=self.room_id,
            media=self.media,
            state=self.state,
            role="callee" if callee else "caller",
            peer=self.other(user_id),
            polite=callee,
        )

    def offer_frame(self) -> CallOffer:
        """Return the `call_offer` the callee's sockets get."""
        return CallOffer.model_validate(
            {
                "call_id": self.id,
                "room_id": self.room_id,
                "from": self.caller,
                "media": self.media,
                "sdp": self.offer_sdp,
            }
        )

    def record(self, outcome: Outcome, ended_at: datetime) -> CallRecord:
        """Return how the call went, ending at ended_at."""
        return CallRecord(
            self.id,
            self.room_id,
            self.caller.id,
            self.callee.id,
            self.media,
            outcome,
            self.started_at,
            self.answered_at,
            ended_at,
        )


class CallBook:
    """The live calls by id and by participant, and the ids of calls that ended lately."""

    def __init__(self) -> None:
        self.live: dict[str, LiveCall] = {}
        self._of_user: dict[int, set[str]] = {}
        self._ended: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def get(self, call_id: str) -> LiveCall | None:
        """Return the live call with this id."""
        return self.live.get(call_id)

    def of(self, user_id: int) -> list[LiveCall]:
        """Return the user's live calls, by id."""
        return [self.live[i] for i in sorted(self._of_user.get(user_id, ()))]

    def busy(self, user_id: int) -> bool:
        """Tell whether the user has a live call."""
        return bool(self._of_user.get(user_id))

    def used(self, call_id: str) -> bool:
        """Tell whether this call id is live or ended lately (ids are never reused)."""
        return call_id in self.live or call_id in self._ended

    def ended_with(self, call_id: str) -> tuple[int, int] | None:
        """Return (caller, callee) of a call that ended lately."""
        return self._ended.get(call_id)

    def add(self, call: LiveCall) -> None:
        """Book a live call under its id and both participants."""
        self.live[call.id] = call
        for user_id in (call.caller.id, call.callee.id):
            self._of_user.setdefault(user_id, set()).add(call.id)

    def remove(self, call: LiveCall) -> None:
        """Take an ended call off the book and remember its id."""
        self.live.pop(call.id, None)
        for user_id in (call.caller.id, call.callee.id):
            ids = self._of_user.get(user_id)
            if ids is not None:
                ids.discard(call.id)
                if not ids:
                    del self._of_user[user_id]
        self.remember_ended(call.id, call.caller.id, call.callee.id)

    def remember_ended(self, call_id: str, caller_id: int, callee_id: int) -> None:
        """Remember an ended call's id and participants (the oldest are forgotten)."""
        self._ended[call_id] = (caller_id, callee_id)
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)

    def glare(self, caller_id: int, to: int, room_id: int) -> LiveCall | None:
        """Return the call `to` is ringing at caller_id in this room, if any."""
        for call in self.of(caller_id):
            if (
                call.state == "ringing"
                and call.caller.id == to
                and call.callee.id == caller_id
                and call.room_id == room_id
            ):
                return call
        return None

    def clear(self) -> None:
        """Forget every live call (the ended ids stay)."""
        self.live.clear()
        self._of_user.clear()
