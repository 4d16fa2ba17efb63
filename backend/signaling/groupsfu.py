"""The group calls' side of the SFU: which calls go through Janus, and their `sfu_` signals.

GroupCalls (groupcalls.py) takes this in: it decides a call's topology when the call starts,
relays a participant's `sfu_description` and `sfu_candidate` to backend/sfu (which talks to
Janus in the call's own worker), and takes back what Janus has for a participant, or a call
Janus lost, under the registry's lock like every other change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .effects import Effect, Send
from .groupbook import GroupCall
from .groupframes import SfuCandidateSend, SfuDescription, SfuDescriptionSend, Topology
from .hub import Connection
from .protocol import CallEnd, error
from .transitions import refuse

if TYPE_CHECKING:
    from backend.sfu.calls import SfuCalls

    from .groupcalls import GroupCalls

GroupCallsMode = Literal["auto", "mesh", "sfu"]


class SfuSide:
    """What GroupCalls does for calls that go through Janus (GroupCalls.sfu)."""

    def __init__(self, groups: GroupCalls) -> None:
        self.groups = groups
        self.calls: SfuCalls | None = None
        self.mode: GroupCallsMode = "auto"
        self.max_size = 16

    def use(self, calls: SfuCalls, mode: GroupCallsMode, max_size: int) -> None:
        """Send group calls through Janus: all of them (`sfu`), or groups too big for a mesh."""
        self.calls, self.mode, self.max_size = calls, mode, max_size

    def close(self) -> None:
        """Close every room (at shutdown): the next server makes new ones on resume."""
        if self.calls is not None:
            self.calls.close_all()

    def topology(self, members: int) -> Topology:
        """Pick a new call's topology: the SFU for a group that could outgrow the mesh."""
        if self.calls is None or self.mode == "mesh":
            return "mesh"
        return "sfu" if self.mode == "sfu" or members > self.groups.max_size else "mesh"

    def open(self, call: GroupCall) -> None:
        """Make a new call's room, if it goes through Janus."""
        if call.topology == "sfu" and self.calls is not None:
            self.calls.open(call.id)

    def limit(self, call: GroupCall) -> int:
        return self.max_size if call.topology == "sfu" else self.groups.max_size

    def signal(
        self,
        call: GroupCall,
        conn: Connection,
        msg: SfuDescriptionSend | SfuCandidateSend,
    ) -> list[Effect]:
        """Hand a participant's description or candidate to the call's SFU worker."""
        if refused := call.unbound(conn, msg.type):
            return refused
        if call.topology != "sfu" or self.calls is None:
            return refuse(conn, msg.type, call.id, "forbidden", "this call is a mesh")
        if isinstance(msg, SfuDescriptionSend):
            wanted = "offer" if msg.pc == "publish" else "answer"
            if msg.description.type != wanted:
                text = f"{msg.pc}: send an {wanted}"
                return [Send(conn.id, error("bad_message", text, msg.type, call.id))]
            self.calls.description(call.id, conn.user_id, msg.pc, msg.description)
        else:
            self.calls.candidate(call.id, conn.user_id, msg.pc, msg.candidate)
        return []

    def left(self, call: GroupCall, user_id: int) -> None:
        """A participant left the call or came back on new connections: drop their old ones."""
        if call.topology == "sfu" and self.calls is not None:
            self.calls.leave(call.id, user_id)
            person = call.participants.get(user_id)
            if person is not None:  # descriptions kept for connections that are gone
                person.backlog = [t for t in person.backlog if '"sfu_description"' not in t]

    def restored(self, call: GroupCall) -> None:
        """A call taken over from another owner: a new room, which everyone rejoins on resume."""
        if call.topology == "sfu" and self.calls is not None:
            self.calls.open(call.id)

    def ended(self, call: GroupCall) -> None:
        if call.topology == "sfu" and self.calls is not None:
            self.calls.close(call.id)

    # --- what the SFU side says (from a call's worker, without the lock) -----------------------

    def send(self, call_id: str, user_id: int, frame: SfuDescription) -> None:
        """Deliver Janus's description to the participant (or keep it while they are away)."""
        with self.groups.reg._lock:
            call = self.groups.live.get(call_id)
            if call is None or user_id not in call.participants:
                return
            out = call.send_to(user_id, frame)
        self.groups.reg._perform(list(out))

    def failed(self, call_id: str, reason: str) -> None:
        """End a call whose room Janus could not make or has lost; everyone in it is told why."""
        with self.groups.reg._lock:
            call = self.groups.live.get(call_id)
            if call is None:
                return
            end = CallEnd.model_validate({"call_id": call_id, "reason": reason})
            out: list[Effect] = [s for uid in call.participants for s in call.send_to(uid, end)]
            call.participants.clear()
            out += self.groups._end(call, "failed")
        self.groups.reg._settle(out)
