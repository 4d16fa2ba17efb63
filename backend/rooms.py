"""Rooms and their messages over the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from . import chat, signals
from .errors import error_response
from .extensions import db
from .models import Room
from .signaling.protocol import MAX_ID

bp = Blueprint("rooms", __name__, url_prefix="/api/rooms")


@bp.errorhandler(chat.ChatError)
def _chat_error(exc: chat.ChatError) -> Any:
    return error_response(exc.status, exc.message)


def _tell_peer(room: Room, user_id: int) -> None:
    """Send the room's peer a `receipt`: user_id's delivered or read marker moved."""
    peer = chat.peer_id_of(room, user_id)
    signals.emit(signals.receipt_moved, user_id=peer, receipt=chat.receipt(room, peer))


def _delivered(room: Room, user_id: int, message_id: int | None) -> None:
    """Record that this response hands user_id the room's messages up to message_id."""
    if message_id is not None and chat.mark_delivered(room, user_id, message_id):
        _tell_peer(room, user_id)


@bp.post("")
@login_required
def open_room() -> Any:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    if not isinstance(username, str) or not username.strip():
        return error_response(400, "username is required")
    room, created = chat.open_room(current_user, username)
    if created:
        signals.emit(signals.room_created, a=room.user_a_id, b=room.user_b_id)
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
    peer = room.peer_of(current_user.id).to_public()
    _delivered(room, current_user.id, max((m["id"] for m in messages), default=None))
    marks = chat.receipt(room, current_user.id)
    return jsonify(
        messages=messages,
        peer=peer,
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
        signals.emit(signals.message_posted, a=room.user_a_id, b=room.user_b_id, message=payload)
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
    before = room.read_id_of(current_user.id)
    room.mark_read(current_user.id, message_id)
    db.session.commit()
    read_id = room.read_id_of(current_user.id)
    if read_id > before:
        _tell_peer(room, current_user.id)
    return jsonify(read_id=read_id)
