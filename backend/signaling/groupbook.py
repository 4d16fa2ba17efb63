"""One live group call's state (GroupCall) and its JSON form for the next owner of the calls.

A group call has participants, not a caller and a callee: each one has the socket bound to the
call, a grace timer while that socket is gone and a backlog of the signals meant for them
meanwhile. The rules (who may start, join, signal, and when the call ends) are groupcalls.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from .effects import CallRecord, Effect, Outcome, Send
from .groupframes import GroupCallJoined, GroupCallRing, GroupCallState, GroupState, Topology
from .hub import Connection
from .livecalls import MAX_BACKLOG
from .protocol import User, dump, error
from .timers import Cancellable
from .transitions import refuse


@dataclass
class Participant:
    """Someone in a group call: the socket bound to it, and what waits while it is gone."""

    user: User
    conn: str | None = None
    grace: Cancellable | None = None
    backlog: list[str] = field(default_factory=list)
    lost: str | None = None  # the socket they had when its node was taken for dead

    def stop_grace(self) -> None:
        """Call off the grace period, if one runs."""
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None


@dataclass
class GroupCall:
    """A group call that is ringing (fewer than two have joined) or active."""

    id: str
    room_id: int
    media: Literal["audio", "video"]
    started_by: User
    started_at: datetime
    members: list[int]  # the room's members, who see the call and may join it
    state: Literal["ringing", "active"] = "ringing"
    answered_at: datetime | None = None  # when a second person joined
    participants: dict[int, Participant] = field(default_factory=dict)
    joined: dict[int, User] = field(default_factory=dict)  # everyone who ever joined, in order
    rung: set[int] = field(default_factory=set)  # members whose devices ring now
    pushed: set[int] = field(default_factory=set)  # members rung by Web Push (no socket)
    ring_timer: Cancellable | None = None
    topology: Topology = "mesh"  # sfu: through Janus (backend/sfu), one room per call

    def join(self, user: User, conn: str | None, now: datetime) -> None:
        """Put user in the call with this socket; two in it make the call active."""
        self.participants[user.id] = Participant(user, conn)
        self.joined.setdefault(user.id, user)
        self.rung.discard(user.id)
        if len(self.participants) >= 2 and self.state == "ringing":
            self.state = "active"
            self.answered_at = now

    def unbound(self, conn: Connection, kind: str) -> list[Effect]:
        """The refusal of a signal (`kind`) from a socket that is not a participant's bound one;
        nothing when it is."""
        person = self.participants.get(conn.user_id)
        if person is None:
            return refuse(conn, kind, self.id, "not_found", "you are not in this call")
        if person.conn != conn.id:
            text = "this socket is not bound to the call; send call_resume first"
            return [Send(conn.id, error("forbidden", text, kind, self.id))]
        return []

    def users(self, but: int | None = None) -> list[User]:
        """Return the participants (in the order they joined), but one."""
        return [p.user for uid, p in self.participants.items() if uid != but]

    def send_to(self, user_id: int, frame: BaseModel) -> list[Send]:
        """Send to the participant's bound socket, or keep it until the participant resumes."""
        person = self.participants[user_id]
        if person.conn is not None:
            return [Send(person.conn, frame)]
        if len(person.backlog) < MAX_BACKLOG:
            person.backlog.append(dump(frame))
        return []

    def status(self, state: GroupState | None = None) -> GroupCallState:
        """Return the `group_call_state` every member's sockets get (nobody is in an ended one)."""
        return GroupCallState(
            call_id=self.id,
            room_id=self.room_id,
            media=self.media,
            state=state or self.state,
            started_by=self.started_by,
            participants=[] if state == "ended" else self.users(),
        )

    def ring(self) -> GroupCallRing:
        """Return the `group_call_ring` a rung member's sockets get."""
        return GroupCallRing.model_validate(
            {
                "call_id": self.id,
                "room_id": self.room_id,
                "from": self.started_by,
                "media": self.media,
                "participants": self.users(),
            }
        )

    def joined_frame(self, user_id: int) -> GroupCallJoined:
        """Return the `group_call_joined` for user_id's socket: the others to offer to."""
        return GroupCallJoined(
            call_id=self.id,
            room_id=self.room_id,
            media=self.media,
            participants=self.users(user_id),
            topology=self.topology,
        )

    def cancel_timers(self) -> None:
        """Call off the ring timeout and every grace period."""
        if self.ring_timer is not None:
            self.ring_timer.cancel()
            self.ring_timer = None
        for person in self.participants.values():
            person.stop_grace()

    def record(self, outcome: Outcome, ended_at: datetime) -> CallRecord:
        """Return how the call went: one record, for everyone in the room."""
        return CallRecord(
            self.id,
            self.room_id,
            self.started_by.id,
            None,
            self.media,
            outcome,
            self.started_at,
            self.answered_at,
            ended_at,
            participants=[user.model_dump() for user in self.joined.values()],
            members=tuple(self.members),
        )


class ParticipantSnapshot(BaseModel):
    """A participant as the next owner needs them."""

    user: User
    conn: str | None = None
    lost: str | None = None


class GroupCallSnapshot(BaseModel):
    """One live group call as its next owner needs it: no timers, no backlog."""

    group: Literal[True] = True  # tells it from a direct call in the same list
    id: str
    room_id: int
    media: Literal["audio", "video"]
    state: Literal["ringing", "active"]
    started_by: User
    started_at: datetime
    answered_at: datetime | None = None
    members: list[int]
    participants: list[ParticipantSnapshot]
    joined: list[User]
    rung: list[int] = []
    pushed: list[int] = []
    topology: Topology = "mesh"

    def live(self) -> GroupCall:
        """Return the call with no socket bound and no timer running."""
        call = GroupCall(
            id=self.id,
            room_id=self.room_id,
            media=self.media,
            started_by=self.started_by,
            started_at=self.started_at,
            members=list(self.members),
            state=self.state,
            answered_at=self.answered_at,
            joined={user.id: user for user in self.joined},
            rung=set(self.rung),
            pushed=set(self.pushed),
            topology=self.topology,
        )
        for saved in self.participants:
            call.participants[saved.user.id] = Participant(saved.user)
        return call


_CALLS = TypeAdapter(list[GroupCallSnapshot])


def dump_group_calls(calls: Iterable[GroupCall]) -> list[dict[str, Any]]:
    """Describe live group calls as JSON-ready dicts."""
    saved = [
        GroupCallSnapshot(
            id=call.id,
            room_id=call.room_id,
            media=call.media,
            state=call.state,
            started_by=call.started_by,
            started_at=call.started_at,
            answered_at=call.answered_at,
            members=call.members,
            participants=[
                ParticipantSnapshot(user=p.user, conn=p.conn, lost=p.lost)
                for p in call.participants.values()
            ],
            joined=list(call.joined.values()),
            rung=sorted(call.rung),
            pushed=sorted(call.pushed),
            topology=call.topology,
        )
        for call in calls
    ]
    return _CALLS.dump_python(saved, mode="json")


def load_group_calls(items: list[dict[str, Any]]) -> list[GroupCallSnapshot]:
    """Read group calls described by dump_group_calls."""
    return _CALLS.validate_python(items)
