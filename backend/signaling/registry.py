"""The call registry: every live call (ringing -> active -> ended) with one owner. No Flask here.

The registry decides who may signal what, routes call signals between the two participants of a
call (and only them), runs the ring timeout and the reconnect grace period on an injected
Scheduler, and records how each call ended through an injected CallStore. State changes happen
under one lock and return their effects (effects.py), performed after the lock is released, so
a slow socket or database never holds up other calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .effects import CallRecord as CallRecord
from .effects import Deliver, Effect, Outcome, RingOffline, Send
from .groupcalls import GroupCalls
from .hub import Connection, Hub
from .livecalls import CallBook, CallStore, LiveCall
from .protocol import (
    CallBusy,
    CallCancelled,
    CallEnd,
    CallInfo,
    CallMerged,
    CallMessage,
    CallOfferSend,
    CallResumeSend,
    CallRinging,
    CallTimeout,
    ChatDeliver,
    GroupSend,
    PushCallOffer,
    PushCallOver,
    PushPayload,
    RelaySend,
    User,
    dump,
    error,
    ice_candidate,
)
from .snapshot import dump_calls, load_calls
from .timers import Scheduler
from .timers import ThreadScheduler as ThreadScheduler
from .transitions import refuse, step

log = logging.getLogger("parley.signaling")

PUSH_CLOSE: dict[str, str] = {"cancelled": "call_cancelled", "missed": "call_timeout"}


def utcnow() -> datetime:
    """Return the current time as naive UTC (what the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


class OwnerLost(Exception):
    """The registry's owner no longer owns the calls: a change must not take effect."""


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
        ring_offline: Callable[[int, PushPayload], None] | None = None,
        takes_many: Callable[[int], bool] = lambda user_id: False,
        group_max: int = 4,
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
        self._calls = CallBook()
        self.groups = GroupCalls(self, group_max)  # the group calls, under the same lock
        # Called after a change of call state and before its effects are sent, so an owner that
        # persists the calls (cluster.LeaderCalls) never lets a peer see a state it lost. It raises
        # OwnerLost when the calls are no longer this registry's: the change then has no effect.
        self.on_change: Callable[[], None] | None = None

    # --- queries ---------------------------------------------------------------------------

    def get(self, call_id: str) -> LiveCall | None:
        """Return the live call with this id."""
        with self._lock:
            return self._calls.get(call_id)

    def in_call(self, user_id: int) -> bool:
        """Tell whether the user has a ringing or active call."""
        with self._lock:
            return self._calls.busy(user_id) or self.groups.busy(user_id)

    def calls_of(self, user_id: int) -> list[CallInfo]:
        """Return the user's live calls as `welcome` lists them."""
        with self._lock:
            return [call.info_for(user_id) for call in self._calls.of(user_id)]

    # --- sockets ---------------------------------------------------------------------------

    def socket_opened(self, conn: Connection) -> None:
        """Ring a callee socket that opened mid-ring: replay the offer and caller candidates."""
        out: list[Effect] = []
        with self._lock:
            for call in self._calls.of(conn.user_id):
                if call.state != "ringing" or conn.user_id != call.callee.id:
                    continue
                out.append(Send(conn.id, call.offer_frame()))
                for candidate in call.early_candidates:
                    out.append(Send(conn.id, ice_candidate(call.id, candidate, call.caller)))
                if not call.ringing_sent and call.caller_conn is not None:
                    call.ringing_sent = True
                    out.append(Send(call.caller_conn, CallRinging(call_id=call.id)))
            out += self.groups.socket_opened(conn)
        self._perform(out)

    def socket_closed(self, conn: Connection, *, lost: bool = False) -> None:
        """Unbind a closed socket from its calls and start their grace periods.

        `lost`: the socket went with a node taken for dead, which may wake up (socket_revived).
        """
        with self._lock:
            for call in self._calls.of(conn.user_id):
                if call.conn_of(conn.user_id) != conn.id:
                    continue
                call.bind(conn.user_id, None)
                if lost:
                    call.lost[conn.user_id] = conn.id
                if conn.user_id not in call.grace:
                    self._start_grace(call, conn.user_id)
            self.groups.socket_closed(conn, lost)

    def socket_revived(self, conn: Connection) -> None:
        """Bind a socket again whose node was taken for dead and woke up, and send it its backlog.

        What the socket sent meanwhile comes after this, so it is relayed, not refused.
        """
        out: list[Effect] = []
        with self._lock:
            for call in self._calls.of(conn.user_id):
                if call.lost.get(conn.user_id) != conn.id or call.conn_of(conn.user_id):
                    continue
                call.bind(conn.user_id, conn.id)
                call.stop_grace(conn.user_id)
                out += [Send(conn.id, text) for text in call.backlog.pop(conn.user_id, [])]
            out += self.groups.socket_revived(conn)
        self._changed()
        self._perform(out)

    # --- signals ---------------------------------------------------------------------------

    def handle(self, conn: Connection, message: CallMessage) -> None:
        """Act on one call signal from a socket."""
        if self.groups.owns(message):
            out = self.groups.handle(conn, message)
        elif isinstance(message, CallOfferSend):
            out = self._offer(conn, message)
        else:
            with self._lock:
                call = self._calls.get(message.call_id)
                if isinstance(message, CallResumeSend) and call is None:
                    out = self._resume_unknown(conn, message)
                elif call is None or not call.has(conn.user_id) or isinstance(message, GroupSend):
                    out = refuse(conn, message.type, message.call_id, "not_found", "no such call")
                else:
                    out, ended = step(call, conn, message, self.clock)
                    if ended is not None:
                        out += self._finish(call, ended)
        if not isinstance(message, RelaySend):
            self._changed()  # OwnerLost goes up: the caller hands the signal to the owner
        self._perform(out)

    def _offer(self, conn: Connection, msg: CallOfferSend) -> list[Effect]:
        caller_id, kind = conn.user_id, msg.type
        # Database checks first, outside the lock; the state checks below happen under it.
        if msg.to == caller_id or not self.store.shared_room(msg.room_id, caller_id, msg.to):
            return refuse(conn, kind, msg.call_id, "not_found", "no such room with that user")
        caller, callee = self.store.user(caller_id), self.store.user(msg.to)
        if caller is None or callee is None:
            return refuse(conn, kind, msg.call_id, "not_found", "no such user")
        with self._lock:
            if self._calls.used(msg.call_id) or self.groups.used(msg.call_id):
                return refuse(conn, kind, msg.call_id, "forbidden", "call_id already used")
            existing = self._calls.glare(caller_id, msg.to, msg.room_id)
            if existing is not None:
                # Both called each other: keep the call that rang first, drop this offer.
                return [Send(conn.id, CallMerged(call_id=msg.call_id, into=existing.id))]
            if self._calls.busy(caller_id) or self.groups.busy(caller_id):
                return [
                    Send(conn.id, error("busy", "you are already in a call", kind, msg.call_id))
                ]
            now = self.clock()
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
            if self.in_call(msg.to) and not self._takes_many(msg.to):
                self._calls.remember_ended(call.id, caller_id, msg.to)
                return [Send(conn.id, CallBusy(call_id=call.id)), call.record("busy", now)]
            self._calls.add(call)
            call.ring_timer = self.scheduler.call_later(
                self.ring_timeout, self._ring_callback(call.id)
            )
            # Ringing goes first so the caller never sees it after the answer.
            out: list[Effect] = []
            if self.hub.is_online(msg.to):
                call.ringing_sent = True
                out.append(Send(conn.id, CallRinging(call_id=call.id)))
            else:
                call.pushed = True
                push = PushCallOffer.model_validate(
                    {
                        "call_id": call.id,
                        "room_id": call.room_id,
                        "from": caller,
                        "media": call.media,
                    }
                )
                out.append(RingOffline(msg.to, push))
            out.append(Deliver(msg.to, call.offer_frame()))
            return out

    def _resume_unknown(self, conn: Connection, msg: CallResumeSend) -> list[Effect]:
        """Answer a resume of a call that is not live: gone if it was yours, else refused."""
        ended = self._calls.ended_with(msg.call_id)
        if ended is not None and conn.user_id not in ended:
            return refuse(conn, msg.type, msg.call_id, "not_found", "no such call")
        return [Send(conn.id, CallEnd(call_id=msg.call_id, reason="gone"))]

    # --- timers ----------------------------------------------------------------------------

    def _grace_callback(self, call_id: str, user_id: int) -> Callable[[], None]:
        return lambda: self._grace_over(call_id, user_id)

    def _ring_callback(self, call_id: str) -> Callable[[], None]:
        return lambda: self._ring_over(call_id)

    def _start_grace(self, call: LiveCall, user_id: int) -> None:
        timer = self.scheduler.call_later(self.grace_period, self._grace_callback(call.id, user_id))
        call.grace[user_id] = timer

    def _ring_over(self, call_id: str) -> None:
        with self._lock:
            call = self._calls.get(call_id)
            if call is None or call.state != "ringing":
                return
            call.ring_timer = None
            frame = CallTimeout(call_id=call.id)
            out: list[Effect] = [
                *call.send_to(call.caller.id, frame),
                Deliver(call.callee.id, frame),
            ]
            out += self._finish(call, "missed")
        self._settle(out)

    def _grace_over(self, call_id: str, user_id: int) -> None:
        with self._lock:
            call = self._calls.get(call_id)
            if call is None:
                return
            call.grace.pop(user_id, None)
            if call.conn_of(user_id) is not None:
                return
            log.info("call %s: user %s had no socket for the grace period", call.id, user_id)
            if call.state == "ringing":
                out: list[Effect] = [Deliver(call.callee.id, CallCancelled(call_id=call.id))]
                out += self._finish(call, "cancelled")
            else:
                frame = CallEnd(call_id=call.id, reason="disconnected")
                out = [
                    *call.send_to(call.other(user_id).id, frame),
                    *self._finish(call, "completed"),
                ]
        self._settle(out)

    # --- handing the calls over ------------------------------------------------------------

    def snapshot(self, *, ringing: bool = False) -> list[dict[str, Any]]:
        """Describe the live calls, so another registry can take them over (restore).

        Active calls only, unless `ringing`; the sockets bound to each call are included.
        """
        with self._lock:
            calls = self._calls.live.values()
            direct = dump_calls(c for c in calls if ringing or c.state == "active")
            return direct + self.groups.snapshot(ringing)

    def restore(
        self, calls: list[dict[str, Any]], alive: Callable[[str], bool] = lambda conn_id: False
    ) -> None:
        """Take over calls from a snapshot.

        A socket the snapshot names stays bound when `alive(socket id)` says it is still open
        (another worker took over the registry; the sockets stayed); every other participant has
        the grace period to resume. A ringing call rings for a full ring timeout again.
        """
        with self._lock:
            self.groups.restore([c for c in calls if c.get("group")], alive)
            for saved in load_calls([c for c in calls if not c.get("group")]):
                if self._calls.get(saved.id) is not None:
                    continue
                call = saved.live()
                self._calls.add(call)
                if call.state == "ringing":
                    call.ring_timer = self.scheduler.call_later(
                        self.ring_timeout, self._ring_callback(call.id)
                    )
                for user_id, conn_id in (
                    (call.caller.id, saved.caller_conn),
                    (call.callee.id, saved.callee_conn),
                ):
                    if conn_id and alive(conn_id):
                        call.bind(user_id, conn_id)
                        continue
                    # A socket of a node taken for dead may still wake up and be bound again.
                    lost = conn_id or saved.lost.get(user_id)
                    if lost:
                        call.lost[user_id] = lost
                    if call.state == "active" or user_id == call.caller.id:
                        self._start_grace(call, user_id)

    def routes(self) -> dict[str, tuple[User, str, User, str]]:
        """Return the active calls with both sockets bound: id -> (caller, socket, callee, socket).

        Between these two sockets candidates and descriptions may be relayed without the registry
        (cluster.LeaderCalls); any other signal, or a relay that finds no socket, comes here.
        """
        with self._lock:
            return {
                call.id: (call.caller, call.caller_conn, call.callee, call.callee_conn)
                for call in self._calls.live.values()
                if call.state == "active" and call.caller_conn and call.callee_conn
            }

    def bound_sockets(self) -> list[tuple[str, int]]:
        """Return (socket id, user id) of every socket bound to a live call."""
        with self._lock:
            return [
                (conn_id, user_id)
                for call in self._calls.live.values()
                for user_id in (call.caller.id, call.callee.id)
                if (conn_id := call.conn_of(user_id)) is not None
            ] + self.groups.bound_sockets()

    def reset(self) -> None:
        """Forget every live call and cancel its timers (this registry stops being the owner)."""
        self.close()
        with self._lock:
            self._calls.clear()
            self.groups.reset()

    def close(self) -> None:
        """Cancel every timer (app shutdown, tests)."""
        with self._lock:
            for call in self._calls.live.values():
                call.cancel_timers()
            self.groups.close()

    # --- helpers (called with the lock held) -----------------------------------------------

    def _finish(self, call: LiveCall, outcome: Outcome) -> list[Effect]:
        out: list[Effect] = []
        if call.pushed and call.state == "ringing":
            # Close the incoming-call notification on the devices that were rung by push.
            kind = PUSH_CLOSE.get(outcome, "call_rejected")
            closed = PushCallOver.model_validate({"type": kind, "call_id": call.id})
            out.append(RingOffline(call.callee.id, closed))
        self._calls.remove(call)
        call.cancel_timers()
        call.grace.clear()
        return [*out, call.record(outcome, self.clock())]

    # --- effects (called without the lock) -------------------------------------------------

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except OwnerLost:
                raise
            except Exception:
                log.exception("saving the call state failed")

    def _settle(self, out: list[Effect]) -> None:
        """Save a change a timer made and send its effects, unless the calls changed hands."""
        try:
            self._changed()
        except OwnerLost:
            log.info("a call timer fired after the calls changed hands; the new owner runs it")
            return
        self._perform(out)

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self.hub.send(effect.conn_id, effect.frame)
            elif isinstance(effect, Deliver):
                self.hub.deliver(effect.user_id, effect.frame, exclude=effect.exclude)
            elif isinstance(effect, RingOffline):
                self._push(effect)
            else:
                self._record(effect)

    def _push(self, effect: RingOffline) -> None:
        if self._ring_offline is None:
            return
        try:
            self._ring_offline(effect.user_id, effect.payload)
        except Exception:
            log.exception("push for an incoming call failed")

    def _record(self, record: CallRecord) -> None:
        try:
            message = self.store.record(record)
        except Exception:
            log.exception("recording call %s failed", record.call_id)
            return
        if message is None:
            return
        frame = dump(ChatDeliver(message=message))
        for user_id in record.members or (record.caller_id, record.callee_id or 0):
            self.hub.deliver(user_id, frame)
