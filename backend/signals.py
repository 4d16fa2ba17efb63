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
    doc="A message was stored through the HTTP API. a, b: the room's members; message: its dict.",
)
receipt_moved = _signals.signal(
    "receipt-moved",
    doc="How far the others in a room got changed. user_id: who to tell; receipt: the receipt.",
)
room_created = _signals.signal(
    "room-created", doc="Two people now share a room. a, b: the room's members."
)
signed_out = _signals.signal(
    "signed-out", doc="A session signed out. user_id, sid: the user and the session."
)


def emit(signal: Signal, **data: Any) -> None:
    """Send `signal` from the current app with `data`."""
    signal.send(current_app._get_current_object(), **data)  # type: ignore[attr-defined]
