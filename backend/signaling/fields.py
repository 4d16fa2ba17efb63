"""The wire format's building blocks: limits, field types and the small models frames share.

protocol.py builds every frame from these and re-exports them; import them from there.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

# Limits (docs/protocol.md lists them; pwa/js/wire.js carries them to the browser). The frame
# limit (WS_MAX_MESSAGE, 64 KiB) is enforced by the socket; these bound each field so one message
# cannot smuggle more than it needs.
MAX_SDP = 32 * 1024  # characters; real offers are 3-12 KB, renegotiations with more m-lines more
MAX_CANDIDATE = 1024  # characters of an a=candidate line (real ones are under 300)
MAX_SDP_MID = 64
MAX_UFRAG = 256
MAX_TEXT = 4000  # characters (Unicode code points) of one chat message, over the socket or HTTP
MAX_CLIENT_ID = 64
MAX_PING_TOKEN = 64
MAX_ID = 2**53 - 1  # the largest integer a JavaScript number holds exactly
# A call report's numbers: generous for real calls, small enough that a report carries nothing else.
MAX_REPORT_RTT_MS = 60_000
MAX_REPORT_RECONNECTS = 1000
MAX_REPORT_DURATION_S = 7 * 24 * 3600
# What pwa/js/wire.js exports to the browser as LIMITS.
LIMITS = {
    "MAX_SDP": MAX_SDP,
    "MAX_CANDIDATE": MAX_CANDIDATE,
    "MAX_SDP_MID": MAX_SDP_MID,
    "MAX_UFRAG": MAX_UFRAG,
    "MAX_TEXT": MAX_TEXT,
    "MAX_CLIENT_ID": MAX_CLIENT_ID,
    "MAX_PING_TOKEN": MAX_PING_TOKEN,
    "MAX_ID": MAX_ID,
    "MAX_REPORT_RTT_MS": MAX_REPORT_RTT_MS,
    "MAX_REPORT_RECONNECTS": MAX_REPORT_RECONNECTS,
    "MAX_REPORT_DURATION_S": MAX_REPORT_DURATION_S,
}

# Sent in `welcome`. Raise it with every change an older client cannot handle: a client that speaks
# a lower version offers to update instead of talking on (pwa/js/wire.js PROTOCOL_VERSION).
PROTOCOL_VERSION = 1

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
ClientMessageId = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_CLIENT_ID)]
ChatText = Annotated[str, Field(strict=True, min_length=1, max_length=MAX_TEXT)]
PingToken = (
    Annotated[int, Field(strict=True)]
    | Annotated[float, Field(strict=True)]
    | Annotated[str, Field(strict=True, max_length=MAX_PING_TOKEN)]
    | None
)
RejectReason = Literal["declined", "busy", "timeout", "unsupported"]


class Wire(BaseModel):
    """Base of every wire model: unknown keys ignored, `from` filled by name or alias."""

    model_config = ConfigDict(extra="ignore", validate_by_name=True, validate_by_alias=True)


class User(Wire):
    """A user as other users see them."""

    id: int
    username: str


class IceCandidateInit(Wire):
    """RTCIceCandidateInit; an empty `candidate` is the end-of-candidates marker."""

    candidate: Annotated[str, Field(strict=True, max_length=MAX_CANDIDATE)] = ""
    sdpMid: Annotated[str, Field(strict=True, max_length=MAX_SDP_MID)] | None = None
    sdpMLineIndex: Annotated[int, Field(strict=True, ge=0, le=1023)] | None = None
    usernameFragment: Annotated[str, Field(strict=True, max_length=MAX_UFRAG)] | None = None


class SessionDescription(Wire):
    """RTCSessionDescriptionInit as renegotiation sends it (rollbacks stay local)."""

    type: Literal["offer", "answer"]
    sdp: Sdp


_ICE_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.M)


def ice_ufrag(sdp: str) -> str:
    """A description's (first) ICE username fragment, "" when it has none: new on an ICE restart."""
    found = _ICE_UFRAG.search(sdp)
    return found[1] if found else ""


class CallReport(Wire):
    """One side's summary of an ended call, as `call_report` sends it and the call record keeps it.

    docs/protocol.md ("Call report card") says how the browser measures each field.
    """

    path: Literal["direct", "relayed"]  # relayed: a TURN relay at either end of the pair
    transport: Literal["udp", "tcp", "tls"]  # to the first hop: TURN's protocol, or the pair's
    rtt_ms: Annotated[int, Field(strict=True, ge=0, le=MAX_REPORT_RTT_MS)] | None  # median
    loss: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]  # inbound, 0..1
    reconnects: Annotated[int, Field(strict=True, ge=0, le=MAX_REPORT_RECONNECTS)]
    duration_s: Annotated[int, Field(strict=True, ge=0, le=MAX_REPORT_DURATION_S)]


class ProtocolError(Exception):
    """A client frame the server cannot accept; becomes an `error` message on the socket."""

    def __init__(self, reason: str, message: str, ref_type: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.ref_type = ref_type


class ServerMessage(Wire):
    """Base of server messages."""


class OmitsNones(ServerMessage):
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


class CallInfo(Wire):
    """A live call a user is in, as `welcome` lists it so a reconnecting client can resume."""

    call_id: str
    room_id: int
    media: Media
    state: Literal["ringing", "active"]
    role: Literal["caller", "callee"]
    peer: User
    polite: bool
