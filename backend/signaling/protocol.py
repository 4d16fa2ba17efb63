"""Every message on the signalling socket, both directions, as validated pydantic models.

`parse(text)` turns a client frame into a ClientMessage or raises ProtocolError; `dump(msg)`
serialises a server message (a model or a plain dict) to the text of one frame. Clients never set
`from`: the field does not exist on client models, so a forged one is dropped with the other
unknown keys, and the server fills `from` on everything it forwards.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)

# Limits (docs/protocol.md lists them). The frame limit (WS_MAX_MESSAGE, 64 KiB) is enforced by the
# socket; these bound each field so one message cannot smuggle more than it needs.
MAX_SDP = 32 * 1024  # characters; real offers are 3-12 KB, renegotiations with more m-lines more
MAX_CANDIDATE = 1024  # characters of an a=candidate line (real ones are under 300)
MAX_SDP_MID = 64
MAX_UFRAG = 256
MAX_TEXT = 4000
MAX_CLIENT_ID = 64
MAX_PING_TOKEN = 64
MAX_ID = 2**53 - 1  # the largest integer a JavaScript number holds exactly

# Sent in `welcome`. Raise it with every change an older client cannot handle: a client that speaks
# a lower version offers to update instead of talking on (pwa/js/protocol.js PROTOCOL_VERSION).
PROTOCOL_VERSION = 1

_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _call_id(value: str) -> str:
    """Accept a UUID in its 8-4-4-4-12 text form, in either case, and return it lower-cased."""
    lowered = value.lower()
    if not UUID_RE.fullmatch(lowered):
        raise ValueError("must be a UUID like 0f8fad5b-d9cb-469f-a165-70867728950e")
    return lowered


CallId = Annotated[str, Field(strict=True, max_length=36), AfterValidator(_call_id)]
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
Media = Literal["audio", "video"]
Sdp = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_SDP)]
PingToken = (
    Annotated[int, Field(strict=True)]
    | Annotated[float, Field(strict=True)]
    | Annotated[str, Field(strict=True, max_length=MAX_PING_TOKEN)]
    | None
)


class ProtocolError(Exception):
    """A client frame the server cannot accept; becomes an `error` message on the socket."""

    def __init__(self, reason: str, message: str, ref_type: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.ref_type = ref_type


class _Wire(BaseModel):
    """Base of every wire model: unknown keys ignored, `from` filled by name or alias."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, validate_by_alias=True)


class User(_Wire):
    """A user as other users see them."""

    id: int
    username: str


class IceCandidateInit(_Wire):
    """RTCIceCandidateInit; an empty `candidate` is the end-of-candidates marker."""

    candidate: Annotated[str, Field(strict=True, max_length=MAX_CANDIDATE)] = ""
    sdpMid: Annotated[str, Field(strict=True, max_length=MAX_SDP_MID)] | None = None
    sdpMLineIndex: Annotated[int, Field(strict=True, ge=0, le=1023)] | None = None
    usernameFragment: Annotated[str, Field(strict=True, max_length=MAX_UFRAG)] | None = None


class SessionDescription(_Wire):
    """RTCSessionDescriptionInit as renegotiation sends it (rollbacks stay local)."""

    type: Literal["offer", "answer"]
    sdp: Sdp


# --- client -> server --------------------------------------------------------------------


class Ping(_Wire):
    type: Literal["ping"]
    t: PingToken = None


class ChatSend(_Wire):
    type: Literal["chat_message"]
    room_id: Id
    client_id: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_CLIENT_ID)]
    text: Annotated[str, Field(strict=True, min_length=1, max_length=MAX_TEXT)]


class CallOfferSend(_Wire):
    type: Literal["call_offer"]
    call_id: CallId
    room_id: Id
    to: Id
    media: Media
    sdp: Sdp


class CallAnswerSend(_Wire):
    type: Literal["call_answer"]
    call_id: CallId
    sdp: Sdp


class IceCandidateSend(_Wire):
    type: Literal["ice_candidate"]
    call_id: CallId
    candidate: IceCandidateInit | None


class CallDescriptionSend(_Wire):
    type: Literal["call_description"]
    call_id: CallId
    description: SessionDescription
    # An offer from a new peer connection (the page reloaded): the other side replaces its own.
    restart: Annotated[bool, Field(strict=True)] = False


class CallMediaSend(_Wire):
    """What this side sends now: microphone on (`audio`) and camera on (`video`)."""

    type: Literal["call_media"]
    call_id: CallId
    audio: Annotated[bool, Field(strict=True)]
    video: Annotated[bool, Field(strict=True)]


class CallRejectedSend(_Wire):
    type: Literal["call_rejected"]
    call_id: CallId
    # "unsupported": the callee's browser cannot take calls (no WebRTC); the app says so itself.
    reason: Literal["declined", "busy", "timeout", "unsupported"] = "declined"


class CallEndSend(_Wire):
    type: Literal["call_end"]
    call_id: CallId


class CallResumeSend(_Wire):
    type: Literal["call_resume"]
    call_id: CallId


ClientMessage = Annotated[
    Ping
    | ChatSend
    | CallOfferSend
    | CallAnswerSend
    | IceCandidateSend
    | CallDescriptionSend
    | CallMediaSend
    | CallRejectedSend
    | CallEndSend
    | CallResumeSend,
    Field(discriminator="type"),
]
CallMessage = (
    CallOfferSend
    | CallAnswerSend
    | IceCandidateSend
    | CallDescriptionSend
    | CallMediaSend
    | CallRejectedSend
    | CallEndSend
    | CallResumeSend
)
# Signals relayed unchanged (plus `from`) between the two participants of an active call.
RelaySend = IceCandidateSend | CallDescriptionSend | CallMediaSend
CLIENT_TYPES = frozenset(
    {
        "ping",
        "chat_message",
        "call_offer",
        "call_answer",
        "ice_candidate",
        "call_description",
        "call_media",
        "call_rejected",
        "call_end",
        "call_resume",
    }
)
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


class ServerMessage(_Wire):
    """Base of server messages."""


class _OmitsNones(ServerMessage):
    """A server message whose fields named in OMIT_IF_NONE are left out instead of null.

    A separate base, not ServerMessage itself: the Python serialiser hook doubles the cost of
    serialising (about 2.4 against 1.1 us for an ice_candidate), and only two messages need it.
    """

    OMIT_IF_NONE: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_nones(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in self.OMIT_IF_NONE:
            if data.get(key, 0) is None:
                del data[key]
        return data


class CallInfo(_Wire):
    """A live call a user is in, as `welcome` lists it so a reconnecting client can resume."""

    call_id: str
    room_id: int
    media: Media
    state: Literal["ringing", "active"]
    role: Literal["caller", "callee"]
    peer: User
    polite: bool


class Welcome(ServerMessage):
    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    user: User
    online: list[int]
    calls: list[CallInfo]


class Pong(_OmitsNones):
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


class CallOffer(ServerMessage):
    type: Literal["call_offer"] = "call_offer"
    call_id: str
    room_id: int
    from_: User = Field(alias="from")
    media: Media
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
    reason: Literal["declined", "busy", "timeout", "unsupported"]


class CallCancelled(ServerMessage):
    type: Literal["call_cancelled"] = "call_cancelled"
    call_id: str


class CallEnd(ServerMessage):
    type: Literal["call_end"] = "call_end"
    call_id: str
    reason: Literal["hangup", "disconnected", "gone"]


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


class Error(_OmitsNones):
    OMIT_IF_NONE = frozenset({"ref_type", "call_id"})
    type: Literal["error"] = "error"
    reason: Literal[
        "bad_json",
        "bad_message",
        "unknown_type",
        "not_found",
        "forbidden",
        "busy",
        "rate_limited",
        "internal",
    ]
    message: str
    ref_type: str | None = None
    call_id: str | None = None


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
