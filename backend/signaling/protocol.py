"""Every message on the signalling socket, both directions, as validated pydantic models.

`parse(text)` turns a client frame into a ClientMessage or raises ProtocolError; `dump(msg)`
serialises a server message (a model or a plain dict) to the text of one frame. Clients never set
`from`: the field does not exist on client models, so a forged one is dropped with the other
unknown keys, and the server fills `from` on everything it forwards. Limits, field types and the
small shared models live in fields.py; the browser's copy of all of it is pwa/js/wire.js, written
from these models by wirejs.py (`flask --app backend protocol-js`).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from . import groupframes as group
from .fields import (  # noqa: F401 (importers reach them here)
    LIMITS,
    MAX_CLIENT_ID,
    MAX_ID,
    MAX_TEXT,
    PROTOCOL_VERSION,
    CallId,
    CallInfo,
    CallReport,
    ChatText,
    ClientMessageId,
    IceCandidateInit,
    Id,
    Media,
    OmitsNones,
    PingToken,
    ProtocolError,
    RejectReason,
    Sdp,
    ServerMessage,
    SessionDescription,
    User,
    Wire,
)

# The limits (LIMITS: what pwa/js/wire.js exports) and shared models live in fields.py;
# importers keep reaching them here. The group-call frames live in groupframes.py.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def frame_types(union: Any) -> tuple[str, ...]:
    """Return the `type` tags of a union of frame models (Annotated or bare), in order."""
    members = get_args(get_args(union)[0]) if hasattr(union, "__metadata__") else get_args(union)
    return tuple(
        tag for model in members for tag in get_args(model.model_fields["type"].annotation)
    )


# --- client -> server --------------------------------------------------------------------


class Ping(Wire):
    type: Literal["ping"]
    t: PingToken = None


class ChatSend(Wire):
    type: Literal["chat_message"]
    room_id: Id
    client_id: ClientMessageId
    text: ChatText


class CallOfferSend(Wire):
    type: Literal["call_offer"]
    call_id: CallId
    room_id: Id
    to: Id
    media: Media
    sdp: Sdp


class CallAnswerSend(Wire):
    type: Literal["call_answer"]
    call_id: CallId
    sdp: Sdp


class IceCandidateSend(Wire):
    type: Literal["ice_candidate"]
    call_id: CallId
    candidate: IceCandidateInit | None
    to: Id | None = None  # the participant it is for: required in a group call


class CallDescriptionSend(Wire):
    type: Literal["call_description"]
    call_id: CallId
    description: SessionDescription
    # An offer from a new peer connection (the page reloaded): the other side replaces its own.
    restart: Annotated[bool, Field(strict=True)] = False
    to: Id | None = None  # the participant it is for: required in a group call


class CallMediaSend(Wire):
    """What this side sends now: microphone on (`audio`) and camera on (`video`)."""

    type: Literal["call_media"]
    call_id: CallId
    audio: Annotated[bool, Field(strict=True)]
    video: Annotated[bool, Field(strict=True)]
    to: Id | None = None  # in a group call: one participant; without it, every other one


class CallRejectedSend(Wire):
    type: Literal["call_rejected"]
    call_id: CallId
    # "unsupported": the callee's browser cannot take calls (no WebRTC); the app says so itself.
    reason: RejectReason = "declined"


class CallEndSend(Wire):
    type: Literal["call_end"]
    call_id: CallId


class CallResumeSend(Wire):
    type: Literal["call_resume"]
    call_id: CallId


class CallReportSend(CallReport):
    """Sent once by each participant after the call ended; matched to its record by `call_id`."""

    type: Literal["call_report"]
    call_id: CallId


# Every signal about a call once it exists (all call frames but the offer that creates it).
CallSignal = (
    CallAnswerSend
    | IceCandidateSend
    | CallDescriptionSend
    | CallMediaSend
    | CallRejectedSend
    | CallEndSend
    | CallResumeSend
)
GroupSend = (
    group.GroupCallStartSend
    | group.GroupCallJoinSend
    | group.GroupCallLeaveSend
    | group.SfuDescriptionSend
    | group.SfuCandidateSend
)
CallMessage = CallOfferSend | CallSignal | GroupSend
ClientMessage = Annotated[
    Ping | ChatSend | CallReportSend | CallMessage, Field(discriminator="type")
]
# Signals relayed unchanged (plus `from`) between the two participants of an active call.
RelaySend = IceCandidateSend | CallDescriptionSend | CallMediaSend
CLIENT_TYPES = frozenset(frame_types(ClientMessage))
# By type name: isinstance against a union of models runs ABCMeta's check per class, per frame.
GROUP_SEND_TYPES = frozenset(frame_types(GroupSend))
_client_adapter: TypeAdapter[Any] = TypeAdapter(ClientMessage)


def parse(text: str | bytes) -> ClientMessage:
    """Validate one client frame and return its message, or raise ProtocolError."""
    if isinstance(text, bytes):
        raise ProtocolError("bad_message", "send JSON text frames, not binary ones")
    if not _SURROGATE.search(text):
        # Fast path: pydantic parses and validates in one pass (about twice as fast as json.loads
        # then validate_python, docs/benchmarks.md). Whatever it refuses goes the slow way below,
        # which accepts the same frames and names the precise error.
        try:
            fast: ClientMessage = _client_adapter.validate_json(text)
        except ValidationError:
            pass
        else:
            return fast
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "the frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "send one JSON object per frame")
    if _SURROGATE.search(text):
        # "\ud800"-style escapes decode to lone surrogates, which no UTF-8 frame can carry back.
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("bad_message", "strings must be valid Unicode") from None
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", 'every message needs a string "type"')
    if kind not in CLIENT_TYPES:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}", kind[:40])
    try:
        message: ClientMessage = _client_adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # The discriminator tag is the first element of the location; drop it.
        loc = [str(part) for part in first["loc"][1:]] or ["message"]
        raise ProtocolError("bad_message", f"{'.'.join(loc)}: {first['msg']}", kind) from None
    return message


# --- server -> client --------------------------------------------------------------------


class Welcome(ServerMessage):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    user: User
    online: list[int]
    calls: list[CallInfo]
    group_calls: list[group.GroupCallState] = []  # the live calls in the user's groups


class Pong(OmitsNones):
    OMIT_IF_NONE = frozenset({"t"})
    type: Literal["pong"] = "pong"
    t: PingToken = None


class ChatAck(ServerMessage):
    type: Literal["chat_ack"] = "chat_ack"
    client_id: str
    message: dict[str, Any]
    delivered: bool = False


class ChatDeliver(ServerMessage):
    type: Literal["chat_message"] = "chat_message"
    message: dict[str, Any]


class Receipt(ServerMessage):
    """How far the others in a room got: your messages up to `delivered_id` reached a device of
    theirs, up to `read_id` they read (the lowest among them, once rooms have more people)."""

    type: Literal["receipt"] = "receipt"
    room_id: int
    delivered_id: int
    read_id: int


class Ringing(Wire):
    """What rings a callee, on the socket (CallOffer) and by Web Push (PushCallOffer)."""

    type: Literal["call_offer"] = "call_offer"
    call_id: str
    room_id: int
    from_: User = Field(alias="from")
    media: Media


class CallOffer(Ringing, ServerMessage):
    sdp: str
    polite: bool = True


class CallRinging(ServerMessage):
    type: Literal["call_ringing"] = "call_ringing"
    call_id: str
    polite: bool = False


class CallBusy(ServerMessage):
    type: Literal["call_busy"] = "call_busy"
    call_id: str


class CallMerged(ServerMessage):
    type: Literal["call_merged"] = "call_merged"
    call_id: str
    into: str


class CallAnswer(ServerMessage):
    type: Literal["call_answer"] = "call_answer"
    call_id: str
    sdp: str
    from_: User = Field(alias="from")
    polite: bool = False


class CallAnsweredElsewhere(ServerMessage):
    type: Literal["call_answered_elsewhere"] = "call_answered_elsewhere"
    call_id: str


class IceCandidate(ServerMessage):
    type: Literal["ice_candidate"] = "ice_candidate"
    call_id: str
    candidate: IceCandidateInit | None
    from_: User = Field(alias="from")


class CallDescription(ServerMessage):
    type: Literal["call_description"] = "call_description"
    call_id: str
    description: SessionDescription
    restart: bool = False
    from_: User = Field(alias="from")


class CallMedia(ServerMessage):
    type: Literal["call_media"] = "call_media"
    call_id: str
    audio: bool
    video: bool
    from_: User = Field(alias="from")


class CallRejected(ServerMessage):
    type: Literal["call_rejected"] = "call_rejected"
    call_id: str
    reason: RejectReason


class CallCancelled(ServerMessage):
    type: Literal["call_cancelled"] = "call_cancelled"
    call_id: str


class CallEnd(ServerMessage):
    type: Literal["call_end"] = "call_end"
    call_id: str
    # sfu_unavailable / sfu_restarted: Janus could not make the call's room / lost it.
    reason: Literal["hangup", "disconnected", "gone", "removed", "sfu_unavailable", "sfu_restarted"]


class CallReported(ServerMessage):
    """A participant's report reached the call record: the record's `call` message as it is now."""

    type: Literal["call_report"] = "call_report"
    call_id: str
    message: dict[str, Any]


class CallResumed(ServerMessage):
    type: Literal["call_resumed"] = "call_resumed"
    call_id: str
    polite: bool


class CallTimeout(ServerMessage):
    type: Literal["call_timeout"] = "call_timeout"
    call_id: str


class Presence(ServerMessage):
    type: Literal["presence"] = "presence"
    user_id: int
    online: bool


class Error(OmitsNones):
    OMIT_IF_NONE = frozenset({"ref_type", "call_id"})
    type: Literal["error"] = "error"
    reason: Literal[
        "bad_json",
        "bad_message",
        "unknown_type",
        "not_found",
        "forbidden",
        "busy",
        "full",
        "rate_limited",
        "internal",
    ]
    message: str
    ref_type: str | None = None
    call_id: str | None = None


# --- server -> a device without a socket, by Web Push (pwa/sw.js shows or closes a notice) ---


class PushCallOffer(Ringing):
    """Ring a callee's device that has no open socket: sw.js shows the incoming-call notice."""

    group: bool = False  # a group call (`from` started it)


class PushCallOver(Wire):
    """Close that notification: the call was cancelled, missed, rejected or answered elsewhere."""

    type: Literal["call_cancelled", "call_timeout", "call_rejected", "call_answered_elsewhere"]
    call_id: str


PushPayload = PushCallOffer | PushCallOver


def dump(message: BaseModel | dict[str, Any]) -> str:
    """Serialise a server message (a model, or a dict already in wire form) to frame text."""
    if isinstance(message, BaseModel):
        return message.model_dump_json(by_alias=True)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def relayed(
    message: RelaySend, sender: User | dict[str, Any]
) -> IceCandidate | CallDescription | CallMedia:
    """Build what the peer receives for a relayed signal: the same, `from` the sender.

    The call registry and the cluster's direct relay (cluster.py) both send these.
    """
    if isinstance(message, IceCandidateSend):
        return ice_candidate(message.call_id, message.candidate, sender)
    if isinstance(message, CallMediaSend):
        return CallMedia.model_validate(
            {
                "call_id": message.call_id,
                "audio": message.audio,
                "video": message.video,
                "from": sender,
            }
        )
    return CallDescription.model_validate(
        {
            "call_id": message.call_id,
            "description": message.description,
            "restart": message.restart,
            "from": sender,
        }
    )


def ice_candidate(
    call_id: str, candidate: IceCandidateInit | None, sender: User | dict[str, Any]
) -> IceCandidate:
    """Build an `ice_candidate` for the peer, `from` the sender."""
    return IceCandidate.model_validate({"call_id": call_id, "candidate": candidate, "from": sender})


def error(
    reason: str, message: str, ref_type: str | None = None, call_id: str | None = None
) -> Error:
    """Build an `error` message."""
    return Error.model_validate(
        {"reason": reason, "message": message, "ref_type": ref_type, "call_id": call_id}
    )
