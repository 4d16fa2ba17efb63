"""The database as the signalling service needs it: short sessions, and SQLite kept off the loop.

The call registry's CallStore (rooms, users, call records) and the chat the sockets carry (store
a message, move a delivered marker) each open a session for one job and release it, because a
session held for a socket's life exhausts the pool (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask, has_app_context
from gevent import monkey
from gevent.threadpool import ThreadPool
from sqlalchemy import select, update

from .. import chat
from ..extensions import db
from ..models import Call, Message, Room, User, utcnow
from . import protocol
from .protocol import CallReport, CallReportSend, ChatSend
from .registry import CallRecord

SWITCH_INTERVAL = 0.0005  # seconds; see _sqlite_thread
# How long after a call ended its participants may still report on it: a page sends its report
# at once, but its socket may be reconnecting just then.
REPORT_WINDOW = timedelta(minutes=5)

_T = TypeVar("_T")


class Store:
    """Every database access of one app's signalling service."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._echo_id: int | None = None
        self._db_thread = _sqlite_thread(str(app.config["SQLALCHEMY_DATABASE_URI"]))

    # --- the call registry's CallStore ---------------------------------------------------------

    def shared_room(self, room_id: int, a: int, b: int) -> bool:
        """Tell whether room_id is the room of users a and b."""
        with self.app.app_context():
            room = db.session.get(Room, room_id)
            return room is not None and room.has_member(a) and room.has_member(b) and a != b

    def group_members(self, room_id: int) -> list[int] | None:
        """Return the members of a group room, or None when room_id is no group."""
        with self.app.app_context():
            room = db.session.get(Room, room_id)
            return None if room is None or not room.is_group else chat.members_of(room_id)

    def user(self, user_id: int) -> protocol.User | None:
        """Return a user as others see them, or None."""
        with self.app.app_context():
            user = db.session.get(User, user_id)
            return None if user is None else protocol.User(id=user.id, username=user.username)

    def record(self, record: CallRecord) -> dict[str, Any] | None:
        """Store the call and its timeline message; return the message as the API shows it."""
        with self.app.app_context():
            if db.session.get(Call, record.call_id) is not None:
                return None
            call = Call(
                id=record.call_id,
                room_id=record.room_id,
                caller_id=record.caller_id,
                callee_id=record.callee_id,
                media=record.media,
                outcome=record.outcome,
                started_at=record.started_at,
                answered_at=record.answered_at,
                ended_at=record.ended_at,
                participants=record.participants,
            )
            message = Message(
                room_id=record.room_id,
                sender_id=record.caller_id,
                kind="call",
                text="",
                client_id=f"call:{record.call_id}",
                call=call,
            )
            db.session.add_all([call, message])
            room = db.session.get(Room, record.room_id)
            if room is not None:
                room.last_activity_at = utcnow()
            db.session.commit()
            return message.to_public()

    # --- call reports ----------------------------------------------------------------------------

    def report(
        self, user_id: int, report: CallReportSend
    ) -> tuple[dict[str, Any], int, int] | None:
        """Keep user_id's report on its call record; return the record's message and both sides.

        None when no record of that call exists (yet: the other side hears `call_end` before the
        record is written). Raise ReportRefused when the record may not take this report.
        """
        return self._off_loop(self._report, user_id, report)

    def _report(
        self, user_id: int, report: CallReportSend
    ) -> tuple[dict[str, Any], int, int] | None:
        with self.app.app_context():
            try:
                call = db.session.get(Call, report.call_id)
                if call is None:
                    return None
                if call.callee_id is None:
                    raise ReportRefused("forbidden", "group calls take no reports (yet)")
                if user_id not in (call.caller_id, call.callee_id):
                    raise ReportRefused("forbidden", "only the people in a call report on it")
                if call.answered_at is None or call.ended_at is None:
                    raise ReportRefused("forbidden", "only answered calls that ended have a report")
                if utcnow() - call.ended_at > REPORT_WINDOW:
                    minutes = int(REPORT_WINDOW.total_seconds() // 60)
                    late = f"too late: reports are taken for {minutes} minutes after a call ends"
                    raise ReportRefused("forbidden", late)
                column = Call.caller_report if user_id == call.caller_id else Call.callee_report
                # Conditional, so two sockets of one person cannot both write: the first one wins.
                kept = report.model_dump(include=set(CallReport.model_fields))  # no type, call_id
                written = db.session.execute(
                    update(Call)
                    .where(Call.id == call.id, column.is_(None))
                    .values({column: kept})
                    .execution_options(synchronize_session=False)
                )
                if not getattr(written, "rowcount", 0):
                    db.session.rollback()
                    raise ReportRefused("forbidden", "this call already has your report")
                db.session.commit()
                db.session.expire_all()
                message = db.session.scalar(select(Message).where(Message.call_id == call.id))
                if message is None:  # a record is written with its message: cannot happen
                    raise ReportRefused("not_found", "the call has no record")
                return message.to_public(), call.caller_id, call.callee_id
            finally:
                db.session.remove()

    # --- people ----------------------------------------------------------------------------------

    def peers_of(self, user_id: int) -> set[int]:
        """Return the ids of everyone who shares a room with user_id."""
        with self.app.app_context():
            return chat.peer_ids_of(user_id)

    def is_echo_bot(self, user_id: int) -> bool:
        """Tell whether user_id is the echo-test bot, which answers many calls at once."""
        if self._echo_id is None:
            name = self.app.config.get("ECHO_USERNAME")
            if not name:
                return False
            with self.app.app_context():
                self._echo_id = db.session.scalar(select(User.id).where(User.username == name))
            if self._echo_id is None:
                return False
        return user_id == self._echo_id

    # --- chat over the socket --------------------------------------------------------------------

    def store_chat(self, user_id: int, message: ChatSend) -> tuple[dict[str, Any], list[int], bool]:
        """Store a chat message once; return it as sent, the other members' ids, and whether new.

        Raise chat.ChatError when the message or the room is refused.
        """
        return self._off_loop(self._store_chat, user_id, message)

    def mark_delivered(self, room_id: int, user_ids: list[int], message_id: int) -> chat.Receipts:
        """Move the delivered markers of user_ids; return the receipts that changed (whom, what)."""
        return self._off_loop(self._mark_delivered, room_id, user_ids, message_id)

    def release(self) -> None:
        """End the calling greenlet's session, if it opened one outside the store's contexts."""
        # Sockets are served outside any request (Signaling.adopt), with no app context; most
        # frames (candidates, pings) never open a database session: skip the teardown.
        if has_app_context() and db.session.registry.has():
            db.session.remove()

    def _store_chat(
        self, user_id: int, message: ChatSend
    ) -> tuple[dict[str, Any], list[int], bool]:
        with self.app.app_context():
            try:
                # The message and room were just written by this session: reading them back
                # after the commit (two SELECTs) cost a fifth of a chat message's CPU.
                db.session().expire_on_commit = False
                new = chat.validate_new_message(
                    {"client_id": message.client_id, "text": message.text}
                )
                room, sender, seat = chat.room_with_sender(user_id, message.room_id)
                stored, created = chat.post_message(user_id, room, new, sender, seat)
                # A direct room's peer is on its row; only a group asks who is in it.
                return stored.to_public(), chat.others_in(room, user_id), created
            finally:
                db.session.remove()

    def _mark_delivered(self, room_id: int, user_ids: list[int], message_id: int) -> chat.Receipts:
        with self.app.app_context():
            try:
                return chat.mark_delivered(room_id, user_ids, message_id)
            finally:
                db.session.remove()

    def _off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run database work where it cannot stall the other sockets, and wait for it.

        SQLite has no cooperative I/O: under gevent its calls would hold every socket of the
        worker (docs/benchmarks.md, section 7), so they run in a real thread (sqlite3 releases
        the GIL while SQLite works). One thread: SQLite takes one writer at a time anyway. A
        server database (psycopg) already yields to other greenlets while it waits.
        """
        if self._db_thread is None:
            return fn(*args)
        return self._db_thread.apply(fn, args)


def _sqlite_thread(database_uri: str) -> ThreadPool | None:
    """Return a one-thread pool for SQLite work when running under gevent, else None."""
    if not database_uri.startswith("sqlite") or not monkey.is_module_patched("threading"):
        return None
    # While the pool's thread runs Python (the ORM), the worker's loop waits for the GIL up to
    # the switch interval, 5 ms by default: a relayed frame would wait that long.
    sys.setswitchinterval(SWITCH_INTERVAL)
    return ThreadPool(1)


class ReportRefused(Exception):
    """A call report the record may not take; becomes an `error` frame (reason, message)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
