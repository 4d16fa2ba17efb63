"""Rooms and their messages over the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from . import chat, signals
from .errors import error_response
from .models import Room
from .signaling.protocol import MAX_ID

bp = Blueprint("rooms", __name__, url_prefix="/api/rooms")


@bp.errorhandler(chat.ChatError)
def _chat_error(exc: chat.ChatError) -> Any:
    return error_response(exc.status, exc.message)


def _tell(receipts: chat.Receipts) -> None:
    """Send each member whose view moved a `receipt`: how far the others got now."""
    for user_id, receipt in receipts:
        signals.emit(signals.receipt_moved, user_id=user_id, receipt=receipt)


def _delivered(room: Room, user_id: int, message_id: int | None) -> None:
    """Record that this response hands user_id the room's messages up to message_id."""
    if message_id is not None:
        _tell(chat.mark_delivered(room.id, [user_id], message_id, list(room.members)))


@bp.post("")
@login_required
def open_room() -> Any:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    if not isinstance(username, str) or not username.strip():
        return error_response(400, "username is required")
    room, created = chat.open_room(current_user, username)
    if created:
        signals.emit(signals.room_created, members=chat.member_ids(room))
    return jsonify(chat.room_summary(room, current_user.id)), 201 if created else 200


@bp.get("")
@login_required
def list_rooms() -> Any:
    rooms = chat.rooms_of(current_user.id)
    summaries = [chat.room_summary(room, current_user.id) for room in rooms]
    # The list hands this device each room's newest message (and how many unread precede it).
    for room, summary in zip(rooms, summaries, strict=True):
        last = summary["last_message"]
        _delivered(room, current_user.id, last["id"] if last is not None else None)
    return jsonify(rooms=summaries)


def _clamp(value: int, low: int, high: int) -> int:
    """Return value limited to [low, high]."""
    return min(max(value, low), high)


@bp.get("/<int:room_id>/messages")
@login_required
def messages(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    try:
        limit = _clamp(int(request.args.get("limit", 50)), 1, 200)
        before_raw, after_raw = request.args.get("before"), request.args.get("after")
        # Clamped both ways: an id past a 64-bit column is a database error, not a page.
        before = _clamp(int(before_raw), 0, MAX_ID + 1) if before_raw else None
        after = _clamp(int(after_raw), 0, MAX_ID) if after_raw else None
    except ValueError:
        return error_response(400, "before, after and limit must be integers")
    if after is not None and before is not None:
        return error_response(400, "give before or after, not both")
    # `after` pages forward from what a client already has, so a long outage leaves no gap.
    page = (
        chat.messages_after(room, after, limit)
        if after is not None
        else chat.history(room, before, limit)
    )
    messages = [m.to_public() for m in page]
    public = chat.room_public(room)
    peer = next((m for m in public["members"] if m["id"] != current_user.id), None)
    marks = chat.receipt(room, current_user.id)
    _delivered(room, current_user.id, max((m["id"] for m in messages), default=None))
    return jsonify(
        messages=messages,
        peer=None if room.is_group else peer,
        members=public["members"],
        read_id=marks["read_id"],
        delivered_id=marks["delivered_id"],
    )


@bp.post("/<int:room_id>/messages")
@login_required
def post_message(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    new = chat.validate_new_message(request.get_json(silent=True))
    message, created = chat.post_message(current_user.id, room, new)
    payload = message.to_public()
    if created:
        signals.emit(signals.message_posted, members=chat.member_ids(room), message=payload)
    return jsonify(payload), 201


@bp.post("/<int:room_id>/read")
@login_required
def mark_read(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    body = request.get_json(silent=True)
    message_id = body.get("message_id") if isinstance(body, dict) else None
    if not isinstance(message_id, int) or isinstance(message_id, bool) or message_id < 0:
        return error_response(400, "message_id must be a non-negative integer")
    if message_id > MAX_ID:
        return error_response(400, f"message_id must be at most {MAX_ID}")
    read_id, receipts = chat.mark_read(room, current_user.id, message_id)
    _tell(receipts)
    return jsonify(read_id=read_id)
