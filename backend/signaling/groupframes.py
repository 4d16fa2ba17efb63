"""The group-call frames on the signalling socket (a mesh of up to GROUP_CALL_MAX people).

protocol.py puts the client frames in its unions and re-exports the server frames, and wirejs.py
writes them all to pwa/js/wire.js; docs/protocol.md ("Group calls") says what each one does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .fields import CallId, Id, Media, ServerMessage, User, Wire

GroupState = Literal["ringing", "active", "ended"]

# --- client -> server --------------------------------------------------------------------


class GroupCallStartSend(Wire):
    """Start a call in a group room (or join the one already live there)."""

    type: Literal["group_call_start"]
    call_id: CallId
    room_id: Id
    media: Media


class GroupCallJoinSend(Wire):
    """Join a live group call of one of your groups: answer its ring, or **Join call** later."""

    type: Literal["group_call_join"]
    call_id: CallId


class GroupCallLeaveSend(Wire):
    """Leave a group call; from a member not in it, decline its ring on every device."""

    type: Literal["group_call_leave"]
    call_id: CallId


# --- server -> client --------------------------------------------------------------------


class GroupCallState(ServerMessage):
    """A group call as every member of its room sees it; `welcome` lists the live ones."""

    type: Literal["group_call_state"] = "group_call_state"
    call_id: str
    room_id: int
    media: Media
    state: GroupState
    started_by: User
    participants: list[User]


class GroupCallRing(ServerMessage):
    """Ring a member's devices: `from` started the call, `participants` are in it now."""

    type: Literal["group_call_ring"] = "group_call_ring"
    call_id: str
    room_id: int
    from_: User = Field(alias="from")
    media: Media
    participants: list[User]


class GroupCallJoined(ServerMessage):
    """You are in: offer to each of `participants` (the others already in the call)."""

    type: Literal["group_call_joined"] = "group_call_joined"
    call_id: str
    room_id: int
    media: Media
    participants: list[User]
