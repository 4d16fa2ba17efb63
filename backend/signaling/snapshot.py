"""The live calls as JSON, for the next owner of the calls to take them over (one model).

Written by a cluster leader to Redis before each change of call state goes out, and by a lone
server to its instance folder when it restarts; read by the node or process that takes over.
The JSON names are the LiveCall field names, as every earlier version wrote them, so a
snapshot written before this module existed restores too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from .livecalls import LiveCall, State
from .protocol import IceCandidateInit, User


class CallSnapshot(BaseModel):
    """One live call as its next owner needs it: no timers, no backlog."""

    id: str
    room_id: int
    media: Literal["audio", "video"]
    state: State = "active"
    caller: User
    callee: User
    started_at: datetime
    answered_at: datetime | None = None
    caller_conn: str | None = None
    callee_conn: str | None = None
    offer_sdp: str = ""
    early_candidates: list[IceCandidateInit | None] = []
    ringing_sent: bool = False
    pushed: bool = False
    lost: dict[int, str] = {}  # user id -> socket id of a node taken for dead

    def live(self) -> LiveCall:
        """Return the call with no socket bound and no timer running."""
        fields = dict(self)
        del fields["caller_conn"], fields["callee_conn"], fields["lost"]
        return LiveCall(caller_conn=None, **fields)


_CALLS = TypeAdapter(list[CallSnapshot])


def dump_calls(calls: Iterable[LiveCall]) -> list[dict[str, Any]]:
    """Describe live calls as JSON-ready dicts."""
    return _CALLS.dump_python(
        _CALLS.validate_python(list(calls), from_attributes=True), mode="json"
    )


def load_calls(items: list[dict[str, Any]]) -> list[CallSnapshot]:
    """Read calls described by dump_calls (or by any earlier version)."""
    return _CALLS.validate_python(items)
