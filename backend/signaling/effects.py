"""What a change of call state does once the registry's lock is released, as typed values.

The registry decides under its lock and returns these; it performs them after the lock is
released (CallRegistry._perform), so a slow socket or database never holds up other calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from .protocol import PushPayload

Outcome = Literal["completed", "missed", "declined", "cancelled", "busy", "failed"]


@dataclass(frozen=True)
class Send:
    """Send a frame to one socket (by id, on any node)."""

    conn_id: str
    frame: BaseModel | str


@dataclass(frozen=True)
class Deliver:
    """Send a frame to every socket of a user, but `exclude`."""

    user_id: int
    frame: BaseModel | str
    exclude: str | None = None


@dataclass(frozen=True)
class RingOffline:
    """Send a Web Push about a call to the user's devices (ring, or close the notification)."""

    user_id: int
    payload: PushPayload


@dataclass(frozen=True)
class CallRecord:
    """Record how one call went, for the room's history."""

    call_id: str
    room_id: int
    caller_id: int  # a group call's starter
    callee_id: int | None  # None for a group call
    media: str
    outcome: Outcome
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    participants: list[dict[str, Any]] | None = None  # a group call's people who ever joined
    members: tuple[int, ...] = ()  # a group call's room members, who all get the record


Effect = Send | Deliver | RingOffline | CallRecord
