"""Rooms and messages as operations, shared by the HTTP API and the signalling socket."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from .extensions import db
from .models import Message, Room, User, utcnow
from .signaling.protocol import MAX_CLIENT_ID, MAX_ID, MAX_TEXT


class NewMessage(BaseModel):
    """A chat message as a client submits it."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    client_id: str = Field(min_length=1, max_length=MAX_CLIENT_ID)
    text: str = Field(min_length=1, max_length=MAX_TEXT)


class ChatError(Exception):
    """A refusal with an HTTP-like status and a message a user can act on."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def validate_new_message(payload: Any) -> NewMessage:
    """Parse {client_id, text} or raise ChatError(400)."""
    try:
        message = NewMessage.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise ChatError(400, f"{field}: {first['msg']}") from None
    if not message.text.strip():
        raise ChatError(400, "text: must not be blank")
    if "\x00" in message.text:  # PostgreSQL's text cannot hold it: bad input, not a DB error
        raise ChatError(400, "text: must not contain NUL (\\u0000)")
    return message


def pair(a: int, b: int) -> tuple[int, int]:
    """Order two user ids the way rooms store them."""
    return (a, b) if a < b else (b, a)


def room_for(user_id: int, room_id: int) -> Room:
    """Return the room if user_id is in it; otherwise ChatError(404), as if it did not exist."""
    # An id no column can hold names no room (and PostgreSQL would refuse the query).
    room = db.session.get(Room, room_id) if 0 < room_id <= MAX_ID else None
    if room is None or not room.has_member(user_id):
        raise ChatError(404, "room not found")
    return room


def open_room(user: User, peer_username: str) -> tuple[Room, bool]:
    """Return the room between user and peer, creating it once; the bool says it was created."""
    name = peer_username.strip().lower()
    peer = db.session.scalar(select(User).where(User.username == name))
    if peer is None:
        raise ChatError(404, f"no user called {name!r}")
    if peer.id == user.id:
        raise ChatError(400, "you cannot open a chat with yourself")
    a, b = pair(user.id, peer.id)
    existing = db.session.scalar(select(Room).where(Room.user_a_id == a, Room.user_b_id == b))
    if existing is not None:
        return existing, False
    room = Room(user_a_id=a, user_b_id=b)
    db.session.add(room)
    try:
        db.session.commit()
    except IntegrityError:
        # Both people opened the chat at the same moment: the other insert won.
        db.session.rollback()
        won = db.session.scalar(select(Room).where(Room.user_a_id == a, Room.user_b_id == b))
        assert won is not None
        return won, False
    return room, True


def post_message(
    user_id: int, room: Room, new: NewMessage, sender: User | None = None
) -> tuple[Message, bool]:
    """Store a text message once per (sender, client_id); the bool says it is new.

    The insert goes first and the unique constraint catches a resend: a resend is rare (an
    outbox retried after a reconnect), and a lookup before every insert cost a statement each.
    `sender`, when the caller holds it, names the sender without a query.
    """
    message = Message(room_id=room.id, sender_id=user_id, text=new.text, client_id=new.client_id)
    if sender is not None:
        message.sender = sender
    db.session.add(message)
    try:
        db.session.flush()
        # Both after the insert, so the room is written once, at the commit.
        room.last_activity_at = utcnow()
        room.mark_read(user_id, message.id)
        db.session.commit()
    except IntegrityError:
        # A resend, or the same client_id raced in on another socket or request.
        db.session.rollback()
        stored = db.session.scalar(
            select(Message).where(Message.sender_id == user_id, Message.client_id == new.client_id)
        )
        if stored is None:
            raise
        if stored.room_id != room.id:
            raise ChatError(409, "client_id already used in another room") from None
        return stored, False
    return message, True


def room_with_sender(user_id: int, room_id: int) -> tuple[Room, User]:
    """Return the room like room_for, and user_id's row, in one statement.

    A stored message's public form names its sender: loaded here, that costs no query of its own.
    """
    member = or_(Room.user_a_id == User.id, Room.user_b_id == User.id)
    query = select(Room, User).where(Room.id == room_id, User.id == user_id, member)
    row = db.session.execute(query).first() if 0 < room_id <= MAX_ID else None
    if row is None:
        raise ChatError(404, "room not found")
    return row[0], row[1]


def peer_id_of(room: Room, user_id: int) -> int:
    """Return the id of the other person of a direct room, without loading them."""
    return room.user_b_id if user_id == room.user_a_id else room.user_a_id


def mark_delivered(room: Room, user_id: int, message_id: int) -> bool:
    """Record that messages up to message_id reached a device of user_id; True if that is news.

    One conditional UPDATE, so two devices fetching at once can only move the marker forward.
    """
    mine = user_id == room.user_a_id
    delivered = Room.delivered_a_id if mine else Room.delivered_b_id
    read = Room.read_a_id if mine else Room.read_b_id
    result = db.session.execute(
        update(Room)
        .where(Room.id == room.id, delivered < message_id, read < message_id)
        .values({delivered: message_id})
        .execution_options(synchronize_session=False)
    )
    moved = bool(getattr(result, "rowcount", 0))
    if moved:
        # What the UPDATE wrote, without reading the room back (the receipt needs it).
        set_committed_value(room, "delivered_a_id" if mine else "delivered_b_id", message_id)
    db.session.commit()
    return moved


def receipt(room: Room, user_id: int) -> dict[str, Any]:
    """Return how far the others in the room got, as user_id sees it (the `receipt` frame).

    A message of user_id's at or below `delivered_id` reached the others, at or below `read_id`
    they read it. In a direct room these are the peer's markers; a room with more people would
    give the lowest marker among them, so "read" stays "read by everyone".
    """
    peer = peer_id_of(room, user_id)
    return {
        "room_id": room.id,
        "delivered_id": room.delivered_id_of(peer),
        "read_id": room.read_id_of(peer),
    }


def history(room: Room, before: int | None, limit: int) -> list[Message]:
    """Return up to limit messages older than `before` (or the newest), oldest first."""
    query = select(Message).where(Message.room_id == room.id)
    if before is not None:
        query = query.where(Message.id < before)
    rows = db.session.scalars(query.order_by(Message.id.desc()).limit(limit)).all()
    return list(reversed(rows))


def messages_after(room: Room, after_id: int, limit: int) -> list[Message]:
    """Return up to limit messages newer than after_id, oldest first (a client catching up)."""
    query = select(Message).where(Message.room_id == room.id, Message.id > after_id)
    return list(db.session.scalars(query.order_by(Message.id).limit(limit)).all())


def rooms_of(user_id: int) -> list[Room]:
    """Return the user's rooms, newest activity first."""
    query = (
        select(Room)
        .where((Room.user_a_id == user_id) | (Room.user_b_id == user_id))
        .order_by(Room.last_activity_at.desc(), Room.id.desc())
    )
    return list(db.session.scalars(query).all())


def peer_ids_of(user_id: int) -> set[int]:
    """Return the ids of everyone who shares a room with user_id."""
    return {room.peer_of(user_id).id for room in rooms_of(user_id)}


def room_summary(room: Room, user_id: int) -> dict[str, Any]:
    """Return a room as the room list shows it: peer, last message, unread count."""
    last = db.session.scalar(
        select(Message).where(Message.room_id == room.id).order_by(Message.id.desc()).limit(1)
    )
    unread = db.session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.room_id == room.id,
            Message.sender_id != user_id,
            Message.id > room.read_id_of(user_id),
        )
    )
    return {
        "id": room.id,
        "peer": room.peer_of(user_id).to_public(),
        "last_message": last.to_public() if last is not None else None,
        "unread": unread or 0,
        "last_activity_at": room.last_activity_at.isoformat(timespec="milliseconds") + "Z",
    }
