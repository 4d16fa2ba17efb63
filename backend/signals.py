"""What the HTTP side announces for the live sockets to hear, as blinker signals sent by the app.

Each signal is sent with the app as its sender; the signalling service of that app connects to
its own app only (signaling/service.py), so several apps in one process never hear each other.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace, Signal
from flask import current_app

_signals = Namespace()

message_posted = _signals.signal(
    "message-posted",
    doc="A message was stored through the HTTP API. members: the room's members' ids (after any"
    " change it announces); message: its dict.",
)
receipt_moved = _signals.signal(
    "receipt-moved",
    doc="How far the others in a room got changed. user_id: who to tell; receipt: the receipt.",
)
room_created = _signals.signal(
    "room-created", doc="A direct room was created. members: its two members' ids."
)
members_changed = _signals.signal(
    "members-changed",
    doc="A group was created, or members were added or left, or it was renamed. room_id; members:"
    " the ids in it now; added, removed: the ids that came and went; room: {id, kind, name,"
    " members} as the `room_updated` frame carries it.",
)
signed_out = _signals.signal(
    "signed-out", doc="A session signed out. user_id, sid: the user and the session."
)


def emit(signal: Signal, **data: Any) -> None:
    """Send `signal` from the current app with `data`."""
    signal.send(current_app._get_current_object(), **data)  # type: ignore[attr-defined]
