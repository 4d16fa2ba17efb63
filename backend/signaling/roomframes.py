"""The room frames on the signalling socket: a group's members or name changed, or you left it.

protocol.py re-exports them and wirejs.py writes them to pwa/js/wire.js; docs/protocol.md
("Rooms") says when each is sent.
"""

from __future__ import annotations

from typing import Literal

from .fields import ServerMessage, User, Wire


class RoomInfo(Wire):
    """Who and what a room is (a group's name and members)."""

    id: int
    kind: Literal["direct", "group"]
    name: str | None
    members: list[User]


class RoomUpdated(ServerMessage):
    """A group was created, renamed, or gained or lost members: to everyone in it now."""

    type: Literal["room_updated"] = "room_updated"
    room: RoomInfo


class RoomRemoved(ServerMessage):
    """You left the group: drop it (the room answers 404 from now on)."""

    type: Literal["room_removed"] = "room_removed"
    room_id: int
