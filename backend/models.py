"""Parley's data: users, rooms and their members, messages and call records (SQLAlchemy 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db

# Ids and read markers are 64-bit: a busy server passes 2**31 messages, and clients may send any
# id up to 2**53 (protocol.MAX_ID), which a 32-bit column on PostgreSQL refuses with an error.
# SQLite's INTEGER is already 64-bit, and only INTEGER PRIMARY KEY is its auto-numbered rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Return the current time as a naive UTC datetime (what SQLite stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    """Format a stored naive-UTC datetime as ISO 8601 with a Z."""
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds") + "Z"


class User(UserMixin, db.Model):  # type: ignore[name-defined]
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(32), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def to_public(self) -> dict[str, Any]:
        """Return what other users may see of this user."""
        return {"id": self.id, "username": self.username}


class Room(db.Model):  # type: ignore[name-defined]
    """A direct room of two people, or a named group; who is in it is in room_members.

    A direct room keeps its pair in user_a_id < user_b_id too: the unique key that lets
    `POST /api/rooms {username}` find it again, and a membership check with no join.
    """

    __tablename__ = "rooms"
    __table_args__ = (
        UniqueConstraint("user_a_id", "user_b_id", name="uq_rooms_pair"),
        CheckConstraint(
            "(kind = 'direct' AND user_a_id < user_b_id)"
            " OR (kind = 'group' AND user_a_id IS NULL AND user_b_id IS NULL)",
            name="ck_rooms_kind_pair",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), default="direct", server_default="direct")
    name: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), default=None)
    user_a_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    user_b_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    user_a: Mapped[User | None] = relationship(foreign_keys=[user_a_id])
    user_b: Mapped[User | None] = relationship(foreign_keys=[user_b_id])
    members: Mapped[list[RoomMember]] = relationship(
        back_populates="room", cascade="all, delete-orphan", order_by="RoomMember.user_id"
    )

    @classmethod
    def direct(cls, a: int, b: int) -> Room:
        """Return a new direct room of users a and b (in either order), with both as members."""
        low, high = (a, b) if a < b else (b, a)
        return cls(
            kind="direct",
            user_a_id=low,
            user_b_id=high,
            members=[RoomMember(user_id=low), RoomMember(user_id=high)],
        )

    @property
    def is_group(self) -> bool:
        """Tell whether this is a group room (any number of members, a name)."""
        return self.kind == "group"

    def has_member(self, user_id: int) -> bool:
        """Tell whether user_id is in this room now."""
        if not self.is_group:
            return user_id in (self.user_a_id, self.user_b_id)
        return any(member.user_id == user_id for member in self.members)

    def member(self, user_id: int) -> RoomMember | None:
        """Return user_id's membership (with their markers), or None."""
        return next((m for m in self.members if m.user_id == user_id), None)

    def peer_of(self, user_id: int) -> User | None:
        """Return the other person of a direct room (None for groups)."""
        if self.is_group:
            return None
        return self.user_b if user_id == self.user_a_id else self.user_a


class RoomMember(db.Model):  # type: ignore[name-defined]
    """One person in one room, with how far they got: read and delivered markers.

    Leaving a group deletes the row: someone who left is a stranger to the room.
    """

    __tablename__ = "room_members"

    room_id: Mapped[int] = mapped_column(BigId, ForeignKey("rooms.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("users.id"), primary_key=True, index=True
    )
    # The newest message user_id read; the newest that reached a device of theirs
    # (chat.mark_delivered says when). Both only move forward.
    read_id: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    delivered_id: Mapped[int] = mapped_column(BigId, default=0, server_default="0")
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    room: Mapped[Room] = relationship(back_populates="members")
    user: Mapped[User] = relationship()

    @property
    def delivered(self) -> int:
        """Return the newest message known to have reached user_id (reading it counts)."""
        return max(self.delivered_id or 0, self.read_id or 0)


class Call(db.Model):  # type: ignore[name-defined]
    """The record of one call; live call state is in signaling.calls, this is its history."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    room_id: Mapped[int] = mapped_column(BigId, ForeignKey("rooms.id"), index=True)
    caller_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    # NULL for a group call, whose people are in `participants`.
    callee_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    media: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # Each side's call report (signaling.fields.CallReport), sent after the call ended. SQL
    # NULL until it comes (none_as_null: a JSON null would read back the same but match no IS NULL).
    caller_report: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), default=None
    )
    callee_report: Mapped[dict[str, Any] | None] = mapped_column(
        JSON(none_as_null=True), default=None
    )
    # A group call's people who ever joined it, [{id, username}]; NULL for a direct call.
    participants: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), default=None
    )

    @property
    def duration(self) -> int | None:
        """Return the talk time in whole seconds, for answered calls."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0, round((self.ended_at - self.answered_at).total_seconds()))

    def to_public(self) -> dict[str, Any]:
        """Return the call as shown in a room's timeline."""
        return {
            "id": self.id,
            "media": self.media,
            "outcome": self.outcome,
            "duration": self.duration,
            "caller_id": self.caller_id,
            "reports": {"caller": self.caller_report, "callee": self.callee_report},
            "group": self.callee_id is None,
            "participants": self.participants,
        }


class Message(db.Model):  # type: ignore[name-defined]
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("sender_id", "client_id", name="uq_messages_sender_client_id"),
        Index("ix_messages_room_id_id", "room_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    room_id: Mapped[int] = mapped_column(BigId, ForeignKey("rooms.id"))
    sender_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(8), default="text")
    text: Mapped[str] = mapped_column(Text, default="")
    client_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    sender: Mapped[User] = relationship()
    call: Mapped[Call | None] = relationship()

    def to_public(self) -> dict[str, Any]:
        """Return the message as the API and the socket send it."""
        return {
            "id": self.id,
            "room_id": self.room_id,
            "kind": self.kind,
            "text": self.text,
            "client_id": self.client_id,
            "created_at": iso(self.created_at),
            "sender": self.sender.to_public(),
            "call": self.call.to_public() if self.call is not None else None,
        }


class PushSubscription(db.Model):  # type: ignore[name-defined]
    """One device's Web Push subscription; deleted when the push service says it is gone."""

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    p256dh: Mapped[str] = mapped_column(String(256))
    auth: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
