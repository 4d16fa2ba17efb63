"""Rooms and messages as operations, shared by the HTTP API and the signalling socket."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from .extensions import db
from .models import Message, Room, RoomMember, User, iso, utcnow
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
    """Order two user ids the way direct rooms store them."""
    return (a, b) if a < b else (b, a)


def members_of(room_id: int) -> list[int]:
    """Return the ids of the room's current members, any kind of room, in id order."""
    query = select(RoomMember.user_id).where(RoomMember.room_id == room_id)
    return list(db.session.scalars(query.order_by(RoomMember.user_id)).all())


def member_ids(room: Room) -> list[int]:
    """Return the room's members: a direct room's pair without a query, a group's from its rows."""
    if not room.is_group:
        return [room.user_a_id or 0, room.user_b_id or 0]
    return [member.user_id for member in room.members]


def room_for(user_id: int, room_id: int) -> Room:
    """Return the room if user_id is a member; otherwise ChatError(404), as if it did not exist."""
    # An id no column can hold names no room (and PostgreSQL would refuse the query).
    if not 0 < room_id <= MAX_ID:
        raise ChatError(404, "room not found")
    query = (
        select(Room)
        .join(RoomMember, RoomMember.room_id == Room.id)
        .where(Room.id == room_id, RoomMember.user_id == user_id)
    )
    room = db.session.scalar(query)
    if room is None:
        raise ChatError(404, "room not found")
    return room


def _find_direct(a: int, b: int) -> Room | None:
    return db.session.scalar(select(Room).where(Room.user_a_id == a, Room.user_b_id == b))


def open_room(user: User, peer_username: str) -> tuple[Room, bool]:
    """Return the direct room of user and peer, creating it once; the bool says it was created."""
    name = peer_username.strip().lower()
    peer = db.session.scalar(select(User).where(User.username == name))
    if peer is None:
        raise ChatError(404, f"no user called {name!r}")
    if peer.id == user.id:
        raise ChatError(400, "you cannot open a chat with yourself")
    a, b = pair(user.id, peer.id)
    existing = _find_direct(a, b)
    if existing is not None:
        return existing, False
    room = Room.direct(a, b)
    db.session.add(room)
    try:
        db.session.commit()
    except IntegrityError:
        # Both people opened the chat at the same moment: the other insert won.
        db.session.rollback()
        won = _find_direct(a, b)
        assert won is not None
        return won, False
    return room, True


def post_message(
    user_id: int,
    room: Room,
    new: NewMessage,
    sender: User | None = None,
    seat: RoomMember | None = None,
) -> tuple[Message, bool]:
    """Store a text message once per (sender, client_id); the bool says it is new.

    The insert goes first and the unique constraint catches a resend: a resend is rare (an
    outbox retried after a reconnect), and a lookup before every insert cost a statement each.
    `sender` and `seat` (the sender's membership), when the caller holds them, save a query each.
    """
    message = Message(room_id=room.id, sender_id=user_id, text=new.text, client_id=new.client_id)
    if sender is not None:
        message.sender = sender
    db.session.add(message)
    try:
        db.session.flush()
        # Both after the insert, so each row is written once, at the commit. Writing a message
        # means its sender read everything before it.
        room.last_activity_at = utcnow()
        seat = seat or db.session.get(RoomMember, (room.id, user_id))
        if seat is not None:
            seat.read_id = max(seat.read_id or 0, message.id)
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


def room_with_sender(user_id: int, room_id: int) -> tuple[Room, User, RoomMember]:
    """Return the room like room_for, user_id's row and membership, in one statement.

    A stored message's public form names its sender, and writing it moves the sender's read
    marker: loaded here, neither costs a query of its own.
    """
    query = (
        select(Room, User, RoomMember)
        .join(RoomMember, RoomMember.room_id == Room.id)
        .join(User, User.id == RoomMember.user_id)
        .where(Room.id == room_id, RoomMember.user_id == user_id)
    )
    row = db.session.execute(query).first() if 0 < room_id <= MAX_ID else None
    if row is None:
        raise ChatError(404, "room not found")
    return row[0], row[1], row[2]


def others_in(room: Room, user_id: int) -> list[int]:
    """Return the ids of the room's members but user_id (a direct room's peer without a query)."""
    return [member for member in member_ids(room) if member != user_id]


Receipts = list[tuple[int, dict[str, Any]]]


def _receipt(room_id: int, seats: list[RoomMember], user_id: int) -> dict[str, Any]:
    """Return how far the others got, from the room's memberships, as user_id sees it."""
    others = [seat for seat in seats if seat.user_id != user_id]
    return {
        "room_id": room_id,
        "delivered_id": min((seat.delivered for seat in others), default=0),
        "read_id": min((seat.read_id or 0 for seat in others), default=0),
    }


def receipt(room: Room, user_id: int) -> dict[str, Any]:
    """Return how far the others in the room got, as user_id sees it (the `receipt` frame).

    A message of user_id's at or below `delivered_id` reached a device of every other member,
    at or below `read_id` every other member read it: the lowest marker among them, so "read"
    stays "read by everyone".
    """
    return _receipt(room.id, list(room.members), user_id)


def _moved(
    room_id: int, seats: list[RoomMember], mover: int, move: Callable[[RoomMember], bool]
) -> Receipts:
    """Apply `move` to mover's seat; return the receipts of the others that it changed.

    Computed before the commit: after it the seats would each be read again.
    """
    mine = next((seat for seat in seats if seat.user_id == mover), None)
    if mine is None:
        return []
    others = [seat.user_id for seat in seats if seat.user_id != mover]
    before = {other: _receipt(room_id, seats, other) for other in others}
    if not move(mine):
        return []
    after = {other: _receipt(room_id, seats, other) for other in others}
    return [(other, after[other]) for other in others if after[other] != before[other]]


def mark_delivered(
    room_id: int, user_ids: list[int], message_id: int, seats: list[RoomMember] | None = None
) -> Receipts:
    """Record that messages up to message_id reached a device of each of user_ids.

    Return the receipts that changed, (whom to tell, receipt). One conditional UPDATE per member
    whose marker is behind, so two devices fetching at once only move it forward, and only one of
    them tells. `seats`: the room's memberships, when the caller loaded them.
    """
    if seats is None:
        seats = list(db.session.scalars(select(RoomMember).where(RoomMember.room_id == room_id)))
    told: dict[int, dict[str, Any]] = {}

    def move(seat: RoomMember) -> bool:
        if seat.delivered >= message_id:
            return False
        result = db.session.execute(
            update(RoomMember)
            .where(
                RoomMember.room_id == room_id,
                RoomMember.user_id == seat.user_id,
                RoomMember.delivered_id < message_id,
                RoomMember.read_id < message_id,
            )
            .values(delivered_id=message_id)
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            return False
        # What the UPDATE wrote, without reading the row back (the receipts need it).
        set_committed_value(seat, "delivered_id", message_id)
        return True

    for user_id in user_ids:
        told.update(_moved(room_id, seats, user_id, move))
    db.session.commit()
    return list(told.items())


def mark_read(room: Room, user_id: int, message_id: int) -> tuple[int, Receipts]:
    """Move user_id's read marker forward (never back); return it and the receipts it changed."""
    seats = list(room.members)

    def move(seat: RoomMember) -> bool:
        if message_id <= (seat.read_id or 0):
            return False
        seat.read_id = message_id
        return True

    told = _moved(room.id, seats, user_id, move)
    mine = room.member(user_id)
    read_id = mine.read_id if mine is not None else 0
    db.session.commit()
    return read_id, told


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
    """Return the user's rooms with their members loaded, newest activity first."""
    query = (
        select(Room)
        .join(RoomMember, RoomMember.room_id == Room.id)
        .where(RoomMember.user_id == user_id)
        .options(selectinload(Room.members).joinedload(RoomMember.user))
        .order_by(Room.last_activity_at.desc(), Room.id.desc())
    )
    return list(db.session.scalars(query).all())


def peer_ids_of(user_id: int) -> set[int]:
    """Return the ids of everyone who shares a room with user_id, in one query."""
    mine = aliased(RoomMember)
    query = (
        select(RoomMember.user_id)
        .join(mine, mine.room_id == RoomMember.room_id)
        .where(mine.user_id == user_id, RoomMember.user_id != user_id)
        .distinct()
    )
    return set(db.session.scalars(query).all())


def room_public(room: Room) -> dict[str, Any]:
    """Return who and what a room is: {id, kind, name, members} (the `room_updated` frame)."""
    return {
        "id": room.id,
        "kind": room.kind,
        "name": room.name,
        "members": [member.user.to_public() for member in room.members],
    }


def room_summary(room: Room, user_id: int) -> dict[str, Any]:
    """Return a room as the room list shows it: who, last message, unread count.

    A direct room's `name` is the peer's username and `peer` the peer; a group has its own name
    and no `peer`.
    """
    public = room_public(room)
    peer = None
    if not room.is_group:
        peer = next((m for m in public["members"] if m["id"] != user_id), None)
        public["name"] = peer["username"] if peer is not None else None
    mine = room.member(user_id)
    last = db.session.scalar(
        select(Message).where(Message.room_id == room.id).order_by(Message.id.desc()).limit(1)
    )
    unread = db.session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.room_id == room.id,
            Message.sender_id != user_id,
            Message.id > (mine.read_id if mine is not None else 0),
        )
    )
    return {
        **public,
        "peer": peer,
        "last_message": last.to_public() if last is not None else None,
        "unread": unread or 0,
        "last_activity_at": iso(room.last_activity_at),
    }
