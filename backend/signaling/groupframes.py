"""The group-call frames on the signalling socket: a mesh of up to GROUP_CALL_MAX people, or,
through Janus, an SFU call of up to SFU_CALL_MAX (the `sfu_` frames).

protocol.py puts the client frames in its unions and re-exports the server frames, and wirejs.py
writes them all to pwa/js/wire.js; docs/protocol.md ("Group calls") says what each one does.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .fields import (
    CallId,
    IceCandidateInit,
    Id,
    Media,
    ServerMessage,
    SessionDescription,
    User,
    Wire,
)

GroupState = Literal["ringing", "active", "ended"]
Topology = Literal["mesh", "sfu"]
Pc = Literal["publish", "subscribe"]  # an SFU participant's two connections

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


class SfuDescriptionSend(Wire):
    """SFU call: the offer of your sending connection, or your answer to the receiving one's."""

    type: Literal["sfu_description"]
    call_id: CallId
    pc: Pc
    description: SessionDescription


class SfuCandidateSend(Wire):
    """SFU call: an ICE candidate of one of your two connections (null: no more)."""

    type: Literal["sfu_candidate"]
    call_id: CallId
    pc: Pc
    candidate: IceCandidateInit | None


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
    """You are in. Mesh: offer to each of `participants`. SFU: offer your sending connection."""

    type: Literal["group_call_joined"] = "group_call_joined"
    call_id: str
    room_id: int
    media: Media
    participants: list[User]
    topology: Topology = "mesh"


class SfuStream(Wire):
    """Which participant's audio or video a receiving connection's `mid` carries."""

    mid: str
    user_id: int
    kind: Media


class SfuDescription(ServerMessage):
    """SFU call: the answer for your sending connection, or an offer for your receiving one."""

    type: Literal["sfu_description"] = "sfu_description"
    call_id: str
    pc: Pc
    description: SessionDescription
    streams: list[SfuStream] = []  # receiving: what each m-line carries
