"""What each signal does to one live call: the per-call state machine, as pure functions.

Each function checks that the sender may send the signal in the call's state, changes the call
and returns the effects, and the outcome when the signal ends the call (the registry then takes
the call off its book). Signals that need the other calls (an offer: busy, glare) are the
registry's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from .effects import Deliver, Effect, Outcome, RingOffline, Send
from .hub import Connection
from .livecalls import LiveCall
from .protocol import (
    CallAnswer,
    CallAnsweredElsewhere,
    CallAnswerSend,
    CallCancelled,
    CallDescriptionSend,
    CallEnd,
    CallEndSend,
    CallMediaSend,
    CallRejected,
    CallRejectedSend,
    CallResumed,
    CallSignal,
    IceCandidateSend,
    PushCallOver,
    error,
    relayed,
)

log = logging.getLogger("parley.signaling")

# Caller candidates kept while ringing, replayed to a callee socket that opens mid-ring.
MAX_EARLY_CANDIDATES = 64
# A callee whose browser has no WebRTC could never have answered: a failed call, not a declined one.
REJECT_OUTCOME: dict[str, Outcome] = {
    "declined": "declined",
    "busy": "busy",
    "timeout": "missed",
    "unsupported": "failed",
}

# The effects of a signal, and how the call ended if it did.
Step = tuple[list[Effect], Outcome | None]


def step(call: LiveCall, conn: Connection, msg: CallSignal, clock: Callable[[], datetime]) -> Step:
    """Apply one signal of a participant's socket to its call."""
    if isinstance(msg, CallAnswerSend):
        return answer(call, conn, msg, clock()), None
    if isinstance(msg, IceCandidateSend):
        return ice(call, conn, msg), None
    if isinstance(msg, CallDescriptionSend | CallMediaSend):
        return active_signal(call, conn, msg), None
    if isinstance(msg, CallRejectedSend):
        return reject(call, conn, msg.reason)
    if isinstance(msg, CallEndSend):
        return end(call, conn)
    return resume(call, conn), None


def answer(call: LiveCall, conn: Connection, msg: CallAnswerSend, now: datetime) -> list[Effect]:
    """Make the call active with this callee socket; tell the callee's other devices."""
    if conn.user_id != call.callee.id:
        return refuse(conn, msg.type, call.id, "forbidden", "only the callee answers")
    if call.state == "active":
        if call.callee_conn == conn.id:
            return [Send(conn.id, error("forbidden", "already answered", msg.type, call.id))]
        return [Send(conn.id, CallAnsweredElsewhere(call_id=call.id))]
    call.state = "active"
    call.answered_at = now
    call.callee_conn = conn.id
    call.offer_sdp = ""
    call.early_candidates.clear()
    if call.ring_timer is not None:
        call.ring_timer.cancel()
        call.ring_timer = None
    frame = CallAnswer.model_validate({"call_id": call.id, "sdp": msg.sdp, "from": call.callee})
    out: list[Effect] = [*call.send_to(call.caller.id, frame)]
    out.append(Deliver(call.callee.id, CallAnsweredElsewhere(call_id=call.id), exclude=conn.id))
    if call.pushed:
        payload = PushCallOver(type="call_answered_elsewhere", call_id=call.id)
        out.append(RingOffline(call.callee.id, payload))
    return out


def ice(call: LiveCall, conn: Connection, msg: IceCandidateSend) -> list[Effect]:
    """Relay a candidate: to every ringing device of the callee, or to the other socket."""
    sender = conn.user_id
    if call.state == "ringing" and sender == call.callee.id:
        return refuse(conn, msg.type, call.id, "forbidden", "answer the call first")
    if call.conn_of(sender) != conn.id:
        return unbound(conn, msg.type, call)
    frame = relayed(msg, call.user(sender))
    if call.state != "ringing":
        return [*call.send_to(call.other(sender).id, frame)]
    # Trickle to every ringing device; keep a copy for devices that open mid-ring.
    if len(call.early_candidates) < MAX_EARLY_CANDIDATES:
        call.early_candidates.append(msg.candidate)
    return [Deliver(call.callee.id, frame)]


def active_signal(
    call: LiveCall, conn: Connection, msg: CallDescriptionSend | CallMediaSend
) -> list[Effect]:
    """Relay a description or media state to the other participant of an active call."""
    if call.state != "active":
        return refuse(conn, msg.type, call.id, "forbidden", "the call is not active")
    if call.conn_of(conn.user_id) != conn.id:
        return unbound(conn, msg.type, call)
    return [*call.send_to(call.other(conn.user_id).id, relayed(msg, call.user(conn.user_id)))]


def reject(call: LiveCall, conn: Connection, reason: str) -> Step:
    """End a ringing call from the callee's side."""
    kind = "call_rejected"
    if conn.user_id != call.callee.id:
        return refuse(conn, kind, call.id, "forbidden", "only the callee rejects"), None
    if call.state != "ringing":
        return [Send(conn.id, error("forbidden", "the call was answered", kind, call.id))], None
    frame = CallRejected.model_validate({"call_id": call.id, "reason": reason})
    out: list[Effect] = [*call.send_to(call.caller.id, frame)]
    out.append(Deliver(call.callee.id, frame, exclude=conn.id))
    return out, REJECT_OUTCOME[reason]


def end(call: LiveCall, conn: Connection) -> Step:
    """Hang up: cancel or decline a ringing call, end an active one."""
    if call.state == "ringing":
        if conn.user_id == call.callee.id:
            return reject(call, conn, "declined")
        return [Deliver(call.callee.id, CallCancelled(call_id=call.id))], "cancelled"
    frame = CallEnd(call_id=call.id, reason="hangup")
    return [*call.send_to(call.other(conn.user_id).id, frame)], "completed"


def resume(call: LiveCall, conn: Connection) -> list[Effect]:
    """Bind a participant's new socket to the call and send it what it missed."""
    user_id = conn.user_id
    if call.state == "active" or user_id == call.caller.id:
        call.bind(user_id, conn.id)
    call.stop_grace(user_id)
    out: list[Effect] = [
        Send(conn.id, CallResumed(call_id=call.id, polite=user_id == call.callee.id))
    ]
    return out + [Send(conn.id, text) for text in call.backlog.pop(user_id, [])]


def unbound(conn: Connection, kind: str, call: LiveCall) -> list[Effect]:
    """Refuse a signal from a participant's socket that the call does not know."""
    text = "this socket is not bound to the call; send call_resume first"
    return [Send(conn.id, error("forbidden", text, kind, call.id))]


def refuse(conn: Connection, kind: str, call_id: str, reason: str, text: str) -> list[Effect]:
    """Answer a signal that may not be sent with an error, and log it."""
    log.warning("refused %s for call %s from user %s (socket %s): %s",
                kind, call_id, conn.user_id, conn.id, text)  # fmt: skip
    return [Send(conn.id, error(reason, text, kind, call_id))]
