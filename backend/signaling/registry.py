"""The call registry: every live call (ringing -> active -> ended) with one owner. No Flask here.

The registry decides who may signal what, routes call signals between the two participants of a
call (and only them), runs the ring timeout and the reconnect grace period on an injected
Scheduler, and records how each call ended through an injected CallStore. State changes happen
under one lock; what they send and record is collected and done after the lock is released, so a
slow socket or database never holds up other calls.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from .hub import Connection, Hub
from .protocol import (
    CallAnswer,
    CallAnsweredElsewhere,
    CallAnswerSend,
    CallBusy,
    CallCancelled,
    CallDescriptionSend,
    CallEnd,
    CallEndSend,
    CallInfo,
    CallMediaSend,
    CallMerged,
    CallMessage,
    CallOffer,
    CallOfferSend,
    CallRejected,
    CallRejectedSend,
    CallResumed,
    CallResumeSend,
    CallRinging,
    CallTimeout,
    ChatDeliver,
    IceCandidateInit,
    IceCandidateSend,
    RelaySend,
    User,
    dump,
    error,
    ice_candidate,
    relayed,
)

log = logging.getLogger("parley.signaling")

Outcome = Literal["completed", "missed", "declined", "cancelled", "busy", "failed"]
State = Literal["ringing", "active"]

# Caller candidates kept while ringing, replayed to a callee socket that opens mid-ring.
MAX_EARLY_CANDIDATES = 64
# Frames kept for a participant whose socket dropped, flushed when it resumes.
MAX_BACKLOG = 200
# Ended call ids remembered, so a resume gets "gone" and an id cannot be reused.
MAX_ENDED = 10_000

PUSH_CLOSE: dict[str, str] = {"cancelled": "call_cancelled", "missed": "call_timeout"}
# A callee whose browser has no WebRTC could never have answered: a failed call, not a declined one.
REJECT_OUTCOME: dict[str, Outcome] = {
    "declined": "declined",
    "busy": "busy",
    "timeout": "missed",
    "unsupported": "failed",
}


def utcnow() -> datetime:
    """Return the current time as naive UTC (what the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


class OwnerLost(Exception):
    """The registry's owner no longer owns the calls: a change must not take effect."""


class Cancellable(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None:
        """Stop the callback from running if it has not run yet."""


class Scheduler(Protocol):
    """Runs a function once after a delay."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        """Run fn after delay seconds; return a handle that cancels it."""


class ThreadScheduler:
    """A Scheduler on threading.Timer: real threads in tests, greenlets under gunicorn's gevent."""

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        """Run fn after delay seconds in a daemon timer; exceptions are logged."""

        def run() -> None:
            try:
                fn()
            except Exception:
                log.exception("scheduled call callback failed")

        timer = threading.Timer(delay, run)
        timer.daemon = True
        timer.start()
        return timer


@dataclass(frozen=True)
class CallRecord:
    """How one call went, for the room's history."""

    call_id: str
    room_id: int
    caller_id: int
    callee_id: int
    media: str
    outcome: Outcome
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime


class CallStore(Protocol):
    """What the registry needs from the database."""

    def shared_room(self, room_id: int, a: int, b: int) -> bool:
        """Tell whether room_id is the room of users a and b."""

    def user(self, user_id: int) -> User | None:
        """Return a user as others see them, or None."""

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


class _Out:
    """What a state change sends and records, done after the registry lock is released."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Any, Any, Any]] = []

    def conn(self, conn_id: str, message: BaseModel | str) -> None:
        self.actions.append(("conn", conn_id, message, None))

    def user(self, user_id: int, message: BaseModel | str, exclude: str | None = None) -> None:
        self.actions.append(("user", user_id, message, exclude))

    def record(self, record: CallRecord) -> None:
        self.actions.append(("record", record, None, None))

    def ring_offline(self, user_id: int, payload: dict[str, Any]) -> None:
        self.actions.append(("push", user_id, payload, None))


class CallRegistry:
    """The one owner of live calls; every call signal goes through handle()."""

    def __init__(
        self,
        hub: Hub,
        store: CallStore,
        scheduler: Scheduler,
        *,
        ring_timeout: float = 30,
        grace_period: float = 15,
        clock: Callable[[], datetime] = utcnow,
        ring_offline: Callable[[int, dict[str, Any]], None] | None = None,
        takes_many: Callable[[int], bool] = lambda user_id: False,
    ) -> None:
        self.hub = hub
        self.store = store
        self.scheduler = scheduler
        self.ring_timeout = ring_timeout
        self.grace_period = grace_period
        self.clock = clock
        self._ring_offline = ring_offline
        # Accounts that may be in several calls at once (the echo-test bot); everyone else is busy.
        self._takes_many = takes_many
        self._lock = threading.RLock()
        self._live: dict[str, LiveCall] = {}
        self._of_user: dict[int, set[str]] = {}
        self._ended: OrderedDict[str, tuple[int, int]] = OrderedDict()
        # Called after a change of call state and before its effects are sent, so an owner that
        # persists the calls (cluster.LeaderCalls) never lets a peer see a state it lost. It raises
        # OwnerLost when the calls are no longer this registry's: the change then has no effect.
        self.on_change: Callable[[], None] | None = None

    # --- queries ---------------------------------------------------------------------------

    def get(self, call_id: str) -> LiveCall | None:
        """Return the live call with this id."""
        with self._lock:
            return self._live.get(call_id)

    def in_call(self, user_id: int) -> bool:
        """Tell whether the user has a ringing or active call."""
        with self._lock:
            return bool(self._of_user.get(user_id))

    def calls_of(self, user_id: int) -> list[CallInfo]:
        """Return the user's live calls as `welcome` lists them."""
        with self._lock:
            ids = sorted(self._of_user.get(user_id, ()))
            return [self._live[i].info_for(user_id) for i in ids]

    # --- sockets ---------------------------------------------------------------------------

    def socket_opened(self, conn: Connection) -> None:
        """Ring a callee socket that opened mid-ring: replay the offer and caller candidates."""
        out = _Out()
        with self._lock:
            for call_id in sorted(self._of_user.get(conn.user_id, ())):
                call = self._live[call_id]
                if call.state != "ringing" or conn.user_id != call.callee.id:
                    continue
                out.conn(conn.id, self._offer_frame(call))
                for candidate in call.early_candidates:
                    out.conn(conn.id, ice_candidate(call.id, candidate, call.caller))
                if not call.ringing_sent and call.caller_conn is not None:
                    call.ringing_sent = True
                    out.conn(call.caller_conn, CallRinging(call_id=call.id))
        self._flush(out)

    def socket_closed(self, conn: Connection, *, lost: bool = False) -> None:
        """Unbind a closed socket from its calls and start their grace periods.

        `lost`: the socket went with a node taken for dead, which may wake up (socket_revived).
        """
        with self._lock:
            for call_id in list(self._of_user.get(conn.user_id, ())):
                call = self._live[call_id]
                if call.conn_of(conn.user_id) != conn.id:
                    continue
                call.bind(conn.user_id, None)
                if lost:
                    call.lost[conn.user_id] = conn.id
                if conn.user_id not in call.grace:
                    call.grace[conn.user_id] = self.scheduler.call_later(
                        self.grace_period, self._grace_callback(call_id, conn.user_id)
                    )

    def socket_revived(self, conn: Connection) -> None:
        """Bind a socket again whose node was taken for dead and woke up, and send it its backlog.

        What the socket sent meanwhile comes after this, so it is relayed, not refused.
        """
        out = _Out()
        with self._lock:
            for call_id in sorted(self._of_user.get(conn.user_id, ())):
                call = self._live[call_id]
                if call.lost.get(conn.user_id) != conn.id or call.conn_of(conn.user_id):
                    continue
                call.bind(conn.user_id, conn.id)
                timer = call.grace.pop(conn.user_id, None)
                if timer is not None:
                    timer.cancel()
                for text in call.backlog.pop(conn.user_id, []):
                    out.conn(conn.id, text)
        self._changed()
        self._flush(out)

    # --- signals ---------------------------------------------------------------------------

    def handle(self, conn: Connection, message: CallMessage) -> None:
        """Act on one call signal from a socket."""
        out = _Out()
        if isinstance(message, CallOfferSend):
            self._offer(conn, message, out)
        else:
            with self._lock:
                if isinstance(message, CallResumeSend) and message.call_id not in self._live:
                    self._resume_unknown(conn, message, out)
                else:
                    call = self._call_for(conn, message.type, message.call_id, out)
                    if call is not None:
                        self._dispatch(conn, call, message, out)
        if not isinstance(message, RelaySend):
            self._changed()  # OwnerLost goes up: the caller hands the signal to the owner
        self._flush(out)

    def _dispatch(self, conn: Connection, call: LiveCall, message: CallMessage, out: _Out) -> None:
        if isinstance(message, CallAnswerSend):
            self._answer(conn, call, message, out)
        elif isinstance(message, IceCandidateSend):
            self._ice(conn, call, message, out)
        elif isinstance(message, CallDescriptionSend | CallMediaSend):
            self._active_signal(conn, call, message, out)
        elif isinstance(message, CallRejectedSend):
            self._reject(conn, call, message.reason, out)
        elif isinstance(message, CallEndSend):
            self._end(conn, call, out)
        elif isinstance(message, CallResumeSend):
            self._resume(conn, call, out)

    def _offer(self, conn: Connection, msg: CallOfferSend, out: _Out) -> None:
        caller_id = conn.user_id
        # Database checks first, outside the lock; the state checks below happen under it.
        if msg.to == caller_id or not self.store.shared_room(msg.room_id, caller_id, msg.to):
            self._refuse(
                conn, msg.type, msg.call_id, "not_found", "no such room with that user", out
            )
            return
        caller, callee = self.store.user(caller_id), self.store.user(msg.to)
        if caller is None or callee is None:
            self._refuse(conn, msg.type, msg.call_id, "not_found", "no such user", out)
            return
        with self._lock:
            if msg.call_id in self._live or msg.call_id in self._ended:
                self._refuse(conn, msg.type, msg.call_id, "forbidden", "call_id already used", out)
                return
            existing = self._glare(caller_id, msg.to, msg.room_id)
            if existing is not None:
                # Both called each other: keep the call that rang first, drop this offer.
                out.conn(conn.id, CallMerged(call_id=msg.call_id, into=existing.id))
                return
            if self._of_user.get(caller_id):
                out.conn(conn.id, error("busy", "you are already in a call", msg.type, msg.call_id))
                return
            now = self.clock()
            if self._of_user.get(msg.to) and not self._takes_many(msg.to):
                out.conn(conn.id, CallBusy(call_id=msg.call_id))
                out.record(
                    CallRecord(
                        msg.call_id,
                        msg.room_id,
                        caller_id,
                        msg.to,
                        msg.media,
                        "busy",
                        now,
                        None,
                        now,
                    )
                )
                self._remember_ended(msg.call_id, caller_id, msg.to)
                return
            call = LiveCall(
                id=msg.call_id,
                room_id=msg.room_id,
                media=msg.media,
                caller=caller,
                callee=callee,
                started_at=now,
                caller_conn=conn.id,
                offer_sdp=msg.sdp,
            )
            self._live[call.id] = call
            self._of_user.setdefault(caller_id, set()).add(call.id)
            self._of_user.setdefault(msg.to, set()).add(call.id)
            call.ring_timer = self.scheduler.call_later(
                self.ring_timeout, lambda: self._ring_over(call.id)
            )
            # Ringing goes first so the caller never sees it after the answer.
            if self.hub.is_online(msg.to):
                call.ringing_sent = True
                out.conn(conn.id, CallRinging(call_id=call.id))
            else:
                call.pushed = True
                out.ring_offline(
                    msg.to,
                    {
                        "type": "call_offer",
                        "call_id": call.id,
                        "room_id": call.room_id,
                        "from": caller.model_dump(),
                        "media": call.media,
                    },
                )
            out.user(msg.to, self._offer_frame(call))

    def _answer(self, conn: Connection, call: LiveCall, msg: CallAnswerSend, out: _Out) -> None:
        if conn.user_id != call.callee.id:
            self._refuse(conn, msg.type, call.id, "forbidden", "only the callee answers", out)
            return
        if call.state == "active":
            if call.callee_conn == conn.id:
                out.conn(conn.id, error("forbidden", "already answered", msg.type, call.id))
            else:
                out.conn(conn.id, CallAnsweredElsewhere(call_id=call.id))
            return
        call.state = "active"
        call.answered_at = self.clock()
        call.callee_conn = conn.id
        call.offer_sdp = ""
        call.early_candidates.clear()
        if call.ring_timer is not None:
            call.ring_timer.cancel()
            call.ring_timer = None
        self._to_participant(
            call,
            call.caller.id,
            CallAnswer.model_validate({"call_id": call.id, "sdp": msg.sdp, "from": call.callee}),
            out,
        )
        out.user(call.callee.id, CallAnsweredElsewhere(call_id=call.id), exclude=conn.id)
        if call.pushed:
            payload = {"type": "call_answered_elsewhere", "call_id": call.id}
            out.ring_offline(call.callee.id, payload)

    def _ice(self, conn: Connection, call: LiveCall, msg: IceCandidateSend, out: _Out) -> None:
        sender = conn.user_id
        if call.state == "ringing" and sender == call.callee.id:
            self._refuse(conn, msg.type, call.id, "forbidden", "answer the call first", out)
            return
        if call.conn_of(sender) != conn.id:
            self._unbound(conn, msg.type, call, out)
            return
        me = call.caller if sender == call.caller.id else call.callee
        frame = relayed(msg, me)
        if call.state == "ringing":
            # Trickle to every ringing device; keep a copy for devices that open mid-ring.
            if len(call.early_candidates) < MAX_EARLY_CANDIDATES:
                call.early_candidates.append(msg.candidate)
            out.user(call.callee.id, frame)
        else:
            self._to_participant(call, call.other(sender).id, frame, out)

    def _active_signal(
        self, conn: Connection, call: LiveCall, msg: CallDescriptionSend | CallMediaSend, out: _Out
    ) -> None:
        """Relay a description or media state to the other participant of an active call."""
        if call.state != "active":
            self._refuse(conn, msg.type, call.id, "forbidden", "the call is not active", out)
            return
        if call.conn_of(conn.user_id) != conn.id:
            self._unbound(conn, msg.type, call, out)
            return
        sender = call.caller if conn.user_id == call.caller.id else call.callee
        self._to_participant(call, call.other(conn.user_id).id, relayed(msg, sender), out)

    def _reject(self, conn: Connection, call: LiveCall, reason: str, out: _Out) -> None:
        if conn.user_id != call.callee.id:
            self._refuse(
                conn, "call_rejected", call.id, "forbidden", "only the callee rejects", out
            )
            return
        if call.state != "ringing":
            out.conn(conn.id, error("forbidden", "the call was answered", "call_rejected", call.id))
            return
        frame = CallRejected.model_validate({"call_id": call.id, "reason": reason})
        self._to_participant(call, call.caller.id, frame, out)
        out.user(call.callee.id, frame, exclude=conn.id)
        self._finish(call, REJECT_OUTCOME[reason], out)

    def _end(self, conn: Connection, call: LiveCall, out: _Out) -> None:
        if call.state == "ringing":
            if conn.user_id == call.callee.id:
                self._reject(conn, call, "declined", out)
                return
            out.user(call.callee.id, CallCancelled(call_id=call.id))
            self._finish(call, "cancelled", out)
            return
        other = call.other(conn.user_id).id
        self._to_participant(call, other, CallEnd(call_id=call.id, reason="hangup"), out)
        self._finish(call, "completed", out)

    def _resume(self, conn: Connection, call: LiveCall, out: _Out) -> None:
        user_id = conn.user_id
        if call.state == "active" or user_id == call.caller.id:
            call.bind(user_id, conn.id)
        timer = call.grace.pop(user_id, None)
        if timer is not None:
            timer.cancel()
        out.conn(conn.id, CallResumed(call_id=call.id, polite=user_id == call.callee.id))
        for text in call.backlog.pop(user_id, []):
            out.conn(conn.id, text)

    # --- timers ----------------------------------------------------------------------------

    def _grace_callback(self, call_id: str, user_id: int) -> Callable[[], None]:
        return lambda: self._grace_over(call_id, user_id)

    def _ring_callback(self, call_id: str) -> Callable[[], None]:
        return lambda: self._ring_over(call_id)

    def _ring_over(self, call_id: str) -> None:
        out = _Out()
        with self._lock:
            call = self._live.get(call_id)
            if call is None or call.state != "ringing":
                return
            call.ring_timer = None
            frame = CallTimeout(call_id=call.id)
            self._to_participant(call, call.caller.id, frame, out)
            out.user(call.callee.id, frame)
            self._finish(call, "missed", out)
        self._settle(out)

    def _grace_over(self, call_id: str, user_id: int) -> None:
        out = _Out()
        with self._lock:
            call = self._live.get(call_id)
            if call is None:
                return
            call.grace.pop(user_id, None)
            if call.conn_of(user_id) is not None:
                return
            log.info("call %s: user %s had no socket for the grace period", call.id, user_id)
            if call.state == "ringing":
                out.user(call.callee.id, CallCancelled(call_id=call.id))
                self._finish(call, "cancelled", out)
            else:
                frame = CallEnd(call_id=call.id, reason="disconnected")
                self._to_participant(call, call.other(user_id).id, frame, out)
                self._finish(call, "completed", out)
        self._settle(out)

    def snapshot(self, *, ringing: bool = False) -> list[dict[str, Any]]:
        """Describe the live calls, so another registry can take them over (restore).

        Active calls only, unless `ringing`; the sockets bound to each call are included.
        """
        with self._lock:
            return [
                {
                    "id": call.id,
                    "room_id": call.room_id,
                    "media": call.media,
                    "state": call.state,
                    "caller": call.caller.model_dump(),
                    "callee": call.callee.model_dump(),
                    "started_at": call.started_at.isoformat(),
                    "answered_at": call.answered_at.isoformat() if call.answered_at else None,
                    "caller_conn": call.caller_conn,
                    "callee_conn": call.callee_conn,
                    "offer_sdp": call.offer_sdp,
                    "early_candidates": [
                        None if c is None else c.model_dump(exclude_none=True)
                        for c in call.early_candidates
                    ],
                    "ringing_sent": call.ringing_sent,
                    "pushed": call.pushed,
                    "lost": {str(user_id): conn_id for user_id, conn_id in call.lost.items()},
                }
                for call in self._live.values()
                if ringing or call.state == "active"
            ]

    def restore(
        self, calls: list[dict[str, Any]], alive: Callable[[str], bool] = lambda conn_id: False
    ) -> None:
        """Take over calls from a snapshot.

        A socket the snapshot names stays bound when `alive(socket id)` says it is still open
        (another worker took over the registry; the sockets stayed); every other participant has
        the grace period to resume. A ringing call rings for a full ring timeout again.
        """
        with self._lock:
            for item in calls:
                if item["id"] in self._live:
                    continue
                state: State = "ringing" if item.get("state") == "ringing" else "active"
                call = LiveCall(
                    id=item["id"],
                    room_id=item["room_id"],
                    media=item["media"],
                    caller=User.model_validate(item["caller"]),
                    callee=User.model_validate(item["callee"]),
                    started_at=datetime.fromisoformat(item["started_at"]),
                    caller_conn=None,
                    state=state,
                    answered_at=(
                        datetime.fromisoformat(item["answered_at"]) if item["answered_at"] else None
                    ),
                    offer_sdp=item.get("offer_sdp", ""),
                    early_candidates=[
                        None if c is None else IceCandidateInit.model_validate(c)
                        for c in item.get("early_candidates", [])
                    ],
                    ringing_sent=bool(item.get("ringing_sent")),
                    pushed=bool(item.get("pushed")),
                )
                self._live[call.id] = call
                if state == "ringing":
                    call.ring_timer = self.scheduler.call_later(
                        self.ring_timeout, self._ring_callback(call.id)
                    )
                for user_id, key in (
                    (call.caller.id, "caller_conn"),
                    (call.callee.id, "callee_conn"),
                ):
                    self._of_user.setdefault(user_id, set()).add(call.id)
                    conn_id = item.get(key)
                    if conn_id and alive(conn_id):
                        call.bind(user_id, conn_id)
                        continue
                    # A socket of a node taken for dead may still wake up and be bound again.
                    lost = conn_id or item.get("lost", {}).get(str(user_id))
                    if lost:
                        call.lost[user_id] = lost
                    if state == "active" or user_id == call.caller.id:
                        call.grace[user_id] = self.scheduler.call_later(
                            self.grace_period, self._grace_callback(call.id, user_id)
                        )

    def routes(self) -> dict[str, tuple[User, str, User, str]]:
        """Return the active calls with both sockets bound: id -> (caller, socket, callee, socket).

        Between these two sockets candidates and descriptions may be relayed without the registry
        (cluster.LeaderCalls); any other signal, or a relay that finds no socket, comes here.
        """
        with self._lock:
            return {
                call.id: (call.caller, call.caller_conn, call.callee, call.callee_conn)
                for call in self._live.values()
                if call.state == "active" and call.caller_conn and call.callee_conn
            }

    def bound_sockets(self) -> list[tuple[str, int]]:
        """Return (socket id, user id) of every socket bound to a live call."""
        with self._lock:
            return [
                (conn_id, user_id)
                for call in self._live.values()
                for user_id in (call.caller.id, call.callee.id)
                if (conn_id := call.conn_of(user_id)) is not None
            ]

    def reset(self) -> None:
        """Forget every live call and cancel its timers (this registry stops being the owner)."""
        self.close()
        with self._lock:
            self._live.clear()
            self._of_user.clear()

    def close(self) -> None:
        """Cancel every timer (app shutdown, tests)."""
        with self._lock:
            for call in self._live.values():
                if call.ring_timer is not None:
                    call.ring_timer.cancel()
                for timer in call.grace.values():
                    timer.cancel()

    # --- helpers (called with the lock held) -----------------------------------------------

    def _call_for(self, conn: Connection, kind: str, call_id: str, out: _Out) -> LiveCall | None:
        call = self._live.get(call_id)
        if call is None:
            if kind != "call_resume":
                self._refuse(conn, kind, call_id, "not_found", "no such call", out)
            return None
        if not call.has(conn.user_id):
            self._refuse(conn, kind, call_id, "not_found", "no such call", out)
            return None
        return call

    def _resume_unknown(self, conn: Connection, msg: CallResumeSend, out: _Out) -> None:
        """Answer a resume of a call that is not live: gone if it was yours, else refused."""
        ended = self._ended.get(msg.call_id)
        if ended is not None and conn.user_id not in ended:
            self._refuse(conn, msg.type, msg.call_id, "not_found", "no such call", out)
            return
        out.conn(conn.id, CallEnd(call_id=msg.call_id, reason="gone"))

    def _glare(self, caller_id: int, to: int, room_id: int) -> LiveCall | None:
        for call_id in self._of_user.get(caller_id, ()):
            call = self._live[call_id]
            if (
                call.state == "ringing"
                and call.caller.id == to
                and call.callee.id == caller_id
                and call.room_id == room_id
            ):
                return call
        return None

    def _to_participant(self, call: LiveCall, user_id: int, frame: BaseModel, out: _Out) -> None:
        """Send to the participant's bound socket, or keep it until the participant resumes."""
        conn_id = call.conn_of(user_id)
        if conn_id is not None:
            out.conn(conn_id, frame)
            return
        backlog = call.backlog.setdefault(user_id, [])
        if len(backlog) < MAX_BACKLOG:
            backlog.append(dump(frame))

    def _finish(self, call: LiveCall, outcome: Outcome, out: _Out) -> None:
        if call.pushed and call.state == "ringing":
            # Close the incoming-call notification on the devices that were rung by push.
            kind = PUSH_CLOSE.get(outcome, "call_rejected")
            out.ring_offline(call.callee.id, {"type": kind, "call_id": call.id})
        self._live.pop(call.id, None)
        for user_id in (call.caller.id, call.callee.id):
            ids = self._of_user.get(user_id)
            if ids is not None:
                ids.discard(call.id)
                if not ids:
                    del self._of_user[user_id]
        if call.ring_timer is not None:
            call.ring_timer.cancel()
        for timer in call.grace.values():
            timer.cancel()
        call.grace.clear()
        self._remember_ended(call.id, call.caller.id, call.callee.id)
        out.record(
            CallRecord(
                call.id,
                call.room_id,
                call.caller.id,
                call.callee.id,
                call.media,
                outcome,
                call.started_at,
                call.answered_at,
                self.clock(),
            )
        )

    def _remember_ended(self, call_id: str, caller_id: int, callee_id: int) -> None:
        self._ended[call_id] = (caller_id, callee_id)
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)

    def _offer_frame(self, call: LiveCall) -> CallOffer:
        return CallOffer.model_validate(
            {
                "call_id": call.id,
                "room_id": call.room_id,
                "from": call.caller,
                "media": call.media,
                "sdp": call.offer_sdp,
            }
        )

    def _unbound(self, conn: Connection, kind: str, call: LiveCall, out: _Out) -> None:
        out.conn(
            conn.id,
            error(
                "forbidden",
                "this socket is not bound to the call; send call_resume first",
                kind,
                call.id,
            ),
        )

    def _refuse(
        self, conn: Connection, kind: str, call_id: str, reason: str, text: str, out: _Out
    ) -> None:
        log.warning(
            "refused %s for call %s from user %s (socket %s): %s",
            kind,
            call_id,
            conn.user_id,
            conn.id,
            text,
        )
        out.conn(conn.id, error(reason, text, kind, call_id))

    # --- effects (called without the lock) -------------------------------------------------

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except OwnerLost:
                raise
            except Exception:
                log.exception("saving the call state failed")

    def _settle(self, out: _Out) -> None:
        """Save a change a timer made and send its effects, unless the calls changed hands."""
        try:
            self._changed()
        except OwnerLost:
            log.info("a call timer fired after the calls changed hands; the new owner runs it")
            return
        self._flush(out)

    def _flush(self, out: _Out) -> None:
        for kind, a, b, c in out.actions:
            if kind == "conn":
                self.hub.send(a, b)
            elif kind == "user":
                self.hub.deliver(a, b, exclude=c)
            elif kind == "push":
                if self._ring_offline is not None:
                    try:
                        self._ring_offline(a, b)
                    except Exception:
                        log.exception("push for an incoming call failed")
            elif kind == "record":
                self._record(a)

    def _record(self, record: CallRecord) -> None:
        try:
            message = self.store.record(record)
        except Exception:
            log.exception("recording call %s failed", record.call_id)
            return
        if message is None:
            return
        frame = dump(ChatDeliver(message=message))
        self.hub.deliver(record.caller_id, frame)
        self.hub.deliver(record.callee_id, frame)
