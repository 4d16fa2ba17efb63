"""Group calls in a mesh: who may start, join, signal and leave, and when a call ends.

A part of the call registry (registry.py), under its lock and with its hub, store, scheduler and
effects, so busy checks see direct and group calls alike and whatever owns the registry (one
process with its hand-over file, or the cluster's leader) owns the group calls too. Each signal
names the one participant it is for (`to`); both must be in the call. A call rings every member
of its group room who is in no other call, is active from the second participant on, and ends
when fewer than two remain, or when the ring timeout passes with nobody but its starter in it.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .effects import Deliver, Effect, Outcome, RingOffline, Send
from .groupbook import GroupCall, dump_group_calls, load_group_calls
from .groupframes import (
    GroupCallJoinSend,
    GroupCallLeaveSend,
    GroupCallStartSend,
    GroupCallState,
    SfuCandidateSend,
    SfuDescriptionSend,
)
from .groupsfu import SfuSide
from .hub import Connection
from .livecalls import MAX_ENDED
from .protocol import (
    GROUP_SEND_TYPES,
    CallAnsweredElsewhere,
    CallCancelled,
    CallEnd,
    CallEndSend,
    CallMediaSend,
    CallMessage,
    CallRejected,
    CallRejectedSend,
    CallResumeSend,
    CallTimeout,
    PushCallOffer,
    PushCallOver,
    RelaySend,
    User,
    error,
    relayed,
)
from .transitions import refuse

if TYPE_CHECKING:
    from .registry import CallRegistry

log = logging.getLogger("parley.signaling")


class GroupCalls:
    """The live group calls of one CallRegistry, changed under its lock."""

    def __init__(self, registry: CallRegistry, max_size: int = 4) -> None:
        self.reg = registry
        self.max_size = max_size
        self.sfu = SfuSide(self)  # calls through Janus, once GROUP_CALLS and JANUS_URL say so
        self.live: dict[str, GroupCall] = {}
        # Ended call ids and who was in them: a resume gets "gone", and no id is used twice.
        self._ended: OrderedDict[str, frozenset[int]] = OrderedDict()

    # --- queries (the registry's lock held) ------------------------------------------------

    def owns(self, message: CallMessage) -> bool:
        """Tell whether a signal is about a group call (a group frame, or a group call's id)."""
        if message.type in GROUP_SEND_TYPES:
            return True
        # Two dict lookups, atomic as they are: no lock on every relayed candidate.
        return message.call_id in self.live or message.call_id in self._ended

    def used(self, call_id: str) -> bool:
        """Tell whether a group call has (or had) this id."""
        return call_id in self.live or call_id in self._ended

    def busy(self, user_id: int) -> bool:
        """Tell whether the user is in a group call."""
        return any(user_id in call.participants for call in self.live.values())

    def states_for(self, user_id: int) -> list[GroupCallState]:
        """Return the live calls in the user's groups, as `welcome` lists them."""
        with self.reg._lock:
            return [call.status() for call in self.live.values() if user_id in call.members]

    # --- signals ---------------------------------------------------------------------------

    def handle(self, conn: Connection, msg: CallMessage) -> list[Effect]:
        """Act on one signal about a group call."""
        if isinstance(msg, GroupCallStartSend):
            return self._start(conn, msg)
        # Looked up before the lock: a join needs the joiner as others see them.
        user = self.reg.store.user(conn.user_id) if isinstance(msg, GroupCallJoinSend) else None
        with self.reg._lock:
            call = self.live.get(msg.call_id)
            if call is None or conn.user_id not in call.members:
                gone = self._ended.get(msg.call_id, frozenset())
                if isinstance(msg, CallResumeSend) and conn.user_id in gone:
                    return [Send(conn.id, CallEnd(call_id=msg.call_id, reason="gone"))]
                return refuse(conn, msg.type, msg.call_id, "not_found", "no such call")
            if isinstance(msg, GroupCallJoinSend):
                return self._join(call, conn, user)
            if isinstance(msg, GroupCallLeaveSend | CallEndSend | CallRejectedSend):
                return self._leave(call, conn)
            if isinstance(msg, CallResumeSend):
                return self._resume(call, conn)
            if isinstance(msg, RelaySend):
                return self._signal(call, conn, msg)
            if isinstance(msg, SfuDescriptionSend | SfuCandidateSend):
                return self.sfu.signal(call, conn, msg)
            return refuse(conn, msg.type, call.id, "forbidden", "not a signal of a group call")

    def _start(self, conn: Connection, msg: GroupCallStartSend) -> list[Effect]:
        # Database first, outside the lock; the state checks below happen under it.
        members = self.reg.store.group_members(msg.room_id)
        if members is None or conn.user_id not in members:
            return refuse(conn, msg.type, msg.call_id, "not_found", "no such group")
        user = self.reg.store.user(conn.user_id)
        with self.reg._lock:
            existing = next((c for c in self.live.values() if c.room_id == msg.room_id), None)
            if existing is not None:
                return self._join(existing, conn, user)  # one call per room: join it
            if self.reg._calls.used(msg.call_id) or self.used(msg.call_id):
                return refuse(conn, msg.type, msg.call_id, "forbidden", "call_id already used")
            if user is None:
                return refuse(conn, msg.type, msg.call_id, "not_found", "no such user")
            if self._busy(user.id):
                return [
                    Send(conn.id, error("busy", "you are already in a call", msg.type, msg.call_id))
                ]
            now = self.reg.clock()
            call = GroupCall(msg.call_id, msg.room_id, msg.media, user, now, list(members))
            call.topology = self.sfu.topology(len(members))
            self.sfu.open(call)
            call.join(user, conn.id, now)
            self.live[call.id] = call
            call.ring_timer = self.reg.scheduler.call_later(
                self.reg.ring_timeout, self._ring_callback(call.id)
            )
            out: list[Effect] = [Send(conn.id, call.joined_frame(user.id))]
            for member in members:
                if member == user.id or self._busy(member):
                    continue  # someone in another call is not rung; they still see this one
                call.rung.add(member)
                if self.reg.hub.is_online(member):
                    out.append(Deliver(member, call.ring()))
                else:
                    call.pushed.add(member)
                    out.append(RingOffline(member, self._push_offer(call)))
            return out + self._states(call)  # after the rings: a rung device shows who calls first

    def _join(self, call: GroupCall, conn: Connection, user: User | None) -> list[Effect]:
        kind, uid = "group_call_join", conn.user_id
        person = call.participants.get(uid)
        if person is not None:
            if person.conn is None:  # back from a dropped socket: the same as a resume
                return self._resume(call, conn)
            text = "you are in this call already" + (
                "" if person.conn == conn.id else " on another device"
            )
            return refuse(conn, kind, call.id, "forbidden", text)
        if user is None:
            return refuse(conn, kind, call.id, "not_found", "no such user")
        if self._busy(uid):
            return [Send(conn.id, error("busy", "you are already in a call", kind, call.id))]
        if len(call.participants) >= self.sfu.limit(call):
            return [Send(conn.id, error("full", "this call is full", kind, call.id))]
        call.join(user, conn.id, self.reg.clock())
        out: list[Effect] = [
            Send(conn.id, call.joined_frame(uid)),
            Deliver(uid, CallAnsweredElsewhere(call_id=call.id), exclude=conn.id),
        ]
        if uid in call.pushed:
            call.pushed.discard(uid)
            out.append(
                RingOffline(uid, PushCallOver(type="call_answered_elsewhere", call_id=call.id))
            )
        return out + self._states(call)

    def _leave(self, call: GroupCall, conn: Connection) -> list[Effect]:
        uid = conn.user_id
        if uid in call.participants:
            call.participants.pop(uid).stop_grace()
            self.sfu.left(call, uid)
            return self._settled(call, "hangup")
        if uid not in call.rung:
            return []  # declined already, on this device or another
        # A member declines: their other devices stop ringing.
        out = self._unring(
            call, uid, CallRejected(call_id=call.id, reason="declined"), exclude=conn.id
        )
        if call.state == "ringing" and not call.rung:
            return out + self._end(call, "declined")  # everyone rung said no
        return out

    def _resume(self, call: GroupCall, conn: Connection) -> list[Effect]:
        person = call.participants.get(conn.user_id)
        if person is None:
            return refuse(conn, "call_resume", call.id, "not_found", "you are not in this call")
        person.conn, person.lost = conn.id, None
        person.stop_grace()
        self.sfu.left(call, conn.user_id)  # SFU: it comes back on new connections
        backlog, person.backlog = person.backlog, []
        return [
            Send(conn.id, call.joined_frame(conn.user_id)),
            *(Send(conn.id, t) for t in backlog),
        ]

    def _signal(self, call: GroupCall, conn: Connection, msg: RelaySend) -> list[Effect]:
        if refused := call.unbound(conn, msg.type):
            return refused
        frame = relayed(msg, call.participants[conn.user_id].user)
        if msg.to is None and isinstance(msg, CallMediaSend):
            return [
                s
                for uid in call.participants
                if uid != conn.user_id
                for s in call.send_to(uid, frame)
            ]
        if msg.to is None:
            text = "to: name the participant this signal is for"
            return [Send(conn.id, error("bad_message", text, msg.type, call.id))]
        if msg.to == conn.user_id or msg.to not in call.participants:
            return refuse(conn, msg.type, call.id, "not_found", "no such participant in the call")
        return list(call.send_to(msg.to, frame))

    # --- members and sockets (the registry's lock held, but for members_changed) -----------

    def members_changed(self, room_id: int, members: list[int], removed: list[int]) -> None:
        """Follow a group's membership: drop who left from its live call, show it to who came."""
        with self.reg._lock:
            out = self._members_changed(room_id, members, removed)
        self.reg._changed()  # OwnerLost goes up: the event goes to the owner
        self.reg._perform(out)

    def _members_changed(
        self, room_id: int, members: list[int], removed: list[int]
    ) -> list[Effect]:
        out: list[Effect] = []
        for call in [c for c in self.live.values() if c.room_id == room_id]:
            if not removed and set(members) == set(call.members):
                continue  # renamed: the call is the same
            call.members = list(members)
            gone = CallEnd(call_id=call.id, reason="removed")
            left = False
            for uid in removed:
                if uid in call.participants:
                    call.participants.pop(uid).stop_grace()
                    self.sfu.left(call, uid)
                    out.append(Deliver(uid, gone))
                    left = True
                elif uid in call.rung:
                    out += self._unring(call, uid, gone)
            out += self._settled(call, "hangup") if left else self._states(call)
        return out

    def socket_opened(self, conn: Connection) -> list[Effect]:
        """Ring a socket that opened while its user's devices ring."""
        return [Send(conn.id, c.ring()) for c in self.live.values() if conn.user_id in c.rung]

    def socket_closed(self, conn: Connection, lost: bool) -> None:
        """Unbind a closed socket from its group calls and start their grace periods."""
        for call in self.live.values():
            person = call.participants.get(conn.user_id)
            if person is None or person.conn != conn.id:
                continue
            person.conn = None
            if lost:
                person.lost = conn.id
            if person.grace is None:
                person.grace = self._grace(call.id, conn.user_id)

    def socket_revived(self, conn: Connection) -> list[Effect]:
        """Bind a socket again whose node woke up, and send it its backlog."""
        out: list[Effect] = []
        for call in self.live.values():
            person = call.participants.get(conn.user_id)
            if person is not None and person.lost == conn.id and person.conn is None:
                person.conn, person.lost = conn.id, None
                person.stop_grace()
                out += [Send(conn.id, text) for text in person.backlog]
                person.backlog = []
        return out

    def bound_sockets(self) -> list[tuple[str, int]]:
        """Return (socket id, user id) of every socket bound to a group call."""
        return [
            (p.conn, uid) for c in self.live.values() for uid, p in c.participants.items() if p.conn
        ]

    # --- handing over ----------------------------------------------------------------------

    def snapshot(self, ringing: bool) -> list[dict[str, Any]]:
        """Describe the live group calls (active ones only, unless `ringing`)."""
        return dump_group_calls(c for c in self.live.values() if ringing or c.state == "active")

    def restore(self, items: list[dict[str, Any]], alive: Callable[[str], bool]) -> None:
        """Take over group calls from a snapshot (see CallRegistry.restore)."""
        for saved in load_group_calls(items):
            if saved.id in self.live:
                continue
            call = self.live[saved.id] = saved.live()
            self.sfu.restored(call)
            if call.state == "ringing":
                call.ring_timer = self.reg.scheduler.call_later(
                    self.reg.ring_timeout, self._ring_callback(call.id)
                )
            for was in saved.participants:
                person = call.participants[was.user.id]
                if was.conn and alive(was.conn):
                    person.conn = was.conn
                    continue
                person.lost = was.conn or was.lost
                person.grace = self._grace(call.id, was.user.id)

    def reset(self) -> None:
        """Cancel every timer and forget every live group call."""
        self.close()
        self.live.clear()

    def close(self) -> None:
        """Cancel every timer."""
        for call in self.live.values():
            call.cancel_timers()

    # --- timers ----------------------------------------------------------------------------

    def _ring_callback(self, call_id: str) -> Callable[[], None]:
        return lambda: self._ring_over(call_id)

    def _grace(self, call_id: str, user_id: int) -> Any:
        over = self.reg.grace_period
        return self.reg.scheduler.call_later(over, lambda: self._grace_over(call_id, user_id))

    def _ring_over(self, call_id: str) -> None:
        with self.reg._lock:
            call = self.live.get(call_id)
            if call is None:
                return
            call.ring_timer = None
            timeout = CallTimeout(call_id=call.id)
            out: list[Effect]
            if call.state == "ringing":  # nobody answered
                out = [s for uid in call.participants for s in call.send_to(uid, timeout)]
                out += self._end(call, "missed")
            else:  # the call goes on; who did not answer can still join
                out = [e for uid in sorted(call.rung) for e in self._unring(call, uid, timeout)]
        self.reg._settle(out)

    def _grace_over(self, call_id: str, user_id: int) -> None:
        with self.reg._lock:
            call = self.live.get(call_id)
            person = call.participants.get(user_id) if call is not None else None
            if call is None or person is None or person.conn is not None:
                return
            log.info("group call %s: user %s had no socket for the grace period", call_id, user_id)
            del call.participants[user_id]
            self.sfu.left(call, user_id)
            out = self._settled(call, "disconnected")
        self.reg._settle(out)

    # --- helpers (the registry's lock held) ------------------------------------------------

    def _busy(self, user_id: int) -> bool:
        return self.reg._calls.busy(user_id) or self.busy(user_id)

    def _settled(self, call: GroupCall, reason: str) -> list[Effect]:
        """End the call if too few remain in it, else tell the members who is in it now."""
        if call.state == "ringing" and not call.participants:
            return self._end(call, "cancelled")  # the starter left before anyone came
        if call.state == "active" and len(call.participants) < 2:
            last = CallEnd.model_validate({"call_id": call.id, "reason": reason})
            out = [s for uid in call.participants for s in call.send_to(uid, last)]
            return out + self._end(call, "completed")
        return self._states(call)

    def _end(self, call: GroupCall, outcome: Outcome) -> list[Effect]:
        """Take the call off the book: stop the ringing, tell the members, keep the record."""
        over: Any = CallTimeout if outcome == "missed" else CallCancelled
        out: list[Effect] = []
        for uid in sorted(call.rung):
            out += self._unring(call, uid, over(call_id=call.id))
        self.live.pop(call.id, None)
        call.cancel_timers()
        self.sfu.ended(call)
        self._ended[call.id] = frozenset([*call.joined, *call.participants])
        while len(self._ended) > MAX_ENDED:
            self._ended.popitem(last=False)
        out += [Deliver(uid, call.status("ended")) for uid in call.members]
        return [*out, call.record(outcome, self.reg.clock())]

    def _unring(
        self, call: GroupCall, uid: int, frame: Any, exclude: str | None = None
    ) -> list[Effect]:
        """Stop a member's devices ringing (with `frame`), by Web Push too where it rang them."""
        call.rung.discard(uid)
        out: list[Effect] = [Deliver(uid, frame, exclude=exclude)]
        if uid in call.pushed:
            call.pushed.discard(uid)
            kind = (
                frame.type if frame.type in ("call_timeout", "call_rejected") else "call_cancelled"
            )
            out.append(
                RingOffline(uid, PushCallOver.model_validate({"type": kind, "call_id": call.id}))
            )
        return out

    def _states(self, call: GroupCall) -> list[Effect]:
        status = call.status()
        return [Deliver(uid, status) for uid in call.members]

    def _push_offer(self, call: GroupCall) -> PushCallOffer:
        ring = {"call_id": call.id, "room_id": call.room_id, "from": call.started_by}
        return PushCallOffer.model_validate({**ring, "media": call.media, "group": True})
