"""Groups as operations: create one, add a member, rename it, leave it; each says so in the room.

The HTTP side (groups.py) announces the change afterwards; these only write. A change is a
system message in the room ("alice added carol"), sent by whoever made it.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .chat import ChatError
from .extensions import db
from .models import Message, Room, RoomMember, User, utcnow

GROUP_NAME_MAX = 64


def max_members() -> int:
    """Return how many people a group may hold (GROUP_MAX_MEMBERS, the creator included)."""
    return int(current_app.config["GROUP_MAX_MEMBERS"])


def group_name(value: Any) -> str:
    """Return a group name without its outer spaces, or raise ChatError(400)."""
    if not isinstance(value, str) or not value.strip():
        raise ChatError(400, "name: give the group a name")
    name = value.strip()
    if len(name) > GROUP_NAME_MAX:
        raise ChatError(400, f"name: at most {GROUP_NAME_MAX} characters")
    if "\x00" in name:  # PostgreSQL's text cannot hold it
        raise ChatError(400, "name: must not contain NUL (\\u0000)")
    return name


def _user_named(username: str) -> User:
    """Return the user called username, or raise ChatError(400)."""
    name = username.strip().lower()
    user = None if "\x00" in name else db.session.scalar(select(User).where(User.username == name))
    if user is None:
        raise ChatError(400, f"no user called {name!r}")
    return user


def _others(creator: User, usernames: Any) -> list[User]:
    """Return the users a new group's creator named, or raise ChatError(400)."""
    if not isinstance(usernames, list) or not all(isinstance(u, str) for u in usernames):
        raise ChatError(400, "usernames: give a list of usernames")
    names = [name.strip().lower() for name in usernames]
    most = max_members() - 1
    if not names or len(names) > most:
        raise ChatError(400, f"usernames: name 1 to {most} other people")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ChatError(400, f"usernames: {name!r} is named twice")
        seen.add(name)
    if creator.username in seen:
        raise ChatError(400, "usernames: you are in the group already; name the others")
    return [_user_named(name) for name in names]


def announce(room: Room, actor: User, text: str) -> dict[str, Any]:
    """Add a system message by actor to the room (not committed); return it as sent."""
    message = Message(
        room_id=room.id,
        sender_id=actor.id,
        kind="system",
        text=text,
        client_id=f"system:{uuid.uuid4().hex}",
    )
    message.sender = actor
    db.session.add(message)
    db.session.flush()
    room.last_activity_at = utcnow()
    seat = room.member(actor.id)
    if seat is not None:  # the actor saw it happen
        seat.read_id = max(seat.read_id or 0, message.id)
    return message.to_public()


def create_group(creator: User, name: Any, usernames: Any) -> tuple[Room, dict[str, Any]]:
    """Create a group of the creator and the users named; return it and its first message."""
    title = group_name(name)
    others = _others(creator, usernames)
    room = Room(
        kind="group",
        name=title,
        created_by_id=creator.id,
        members=[RoomMember(user_id=creator.id)] + [RoomMember(user_id=u.id) for u in others],
    )
    db.session.add(room)
    db.session.flush()
    message = announce(room, creator, f"{creator.username} created the group")
    db.session.commit()
    return room, message


def _group(room: Room, refusal: str) -> None:
    if not room.is_group:
        raise ChatError(400, refusal)


def add_member(actor: User, room: Room, username: str) -> tuple[User, dict[str, Any]]:
    """Add the user called username to a group; return them and the room's message about it."""
    _group(room, "only a group takes new members: create a group for more people")
    user = _user_named(username)
    if room.has_member(user.id):
        raise ChatError(409, f"{user.username} is in the group already")
    if len(room.members) >= max_members():
        raise ChatError(400, f"the group is full ({max_members()} people)")
    # The newcomer starts at the newest message: what came before is not unread for them, and
    # the others' "read by everyone" ticks stay where they were.
    newest = db.session.scalar(select(func.max(Message.id)).where(Message.room_id == room.id))
    room.members.append(RoomMember(user_id=user.id, read_id=newest or 0, delivered_id=newest or 0))
    try:
        message = announce(room, actor, f"{actor.username} added {user.username}")
        db.session.commit()
    except IntegrityError:  # someone else added them at the same moment
        db.session.rollback()
        raise ChatError(409, f"{user.username} is in the group already") from None
    return user, message


def rename(actor: User, room: Room, name: Any) -> dict[str, Any] | None:
    """Rename a group; return the room's message about it (None when the name is the same)."""
    _group(room, "only a group has a name to change")
    title = group_name(name)
    if title == room.name:
        return None
    room.name = title
    message = announce(room, actor, f"{actor.username} renamed the group to “{title}”")
    db.session.commit()
    return message


def leave(user: User, room: Room) -> dict[str, Any]:
    """Take user out of a group; return the room's message about it."""
    _group(room, "only a group can be left")
    seat = room.member(user.id)
    if seat is not None:
        room.members.remove(seat)
    message = announce(room, user, f"{user.username} left")
    db.session.commit()
    return message
