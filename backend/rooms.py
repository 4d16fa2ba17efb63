"""Rooms and their messages over the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required

from . import chat
from .errors import error_response
from .extensions import db
from .signaling.protocol import MAX_ID

bp = Blueprint("rooms", __name__, url_prefix="/api/rooms")


@bp.errorhandler(chat.ChatError)
def _chat_error(exc: chat.ChatError) -> Any:
    return error_response(exc.status, exc.message)


@bp.post("")
@login_required
def open_room() -> Any:
    body = request.get_json(silent=True)
    username = body.get("username") if isinstance(body, dict) else None
    if not isinstance(username, str) or not username.strip():
        return error_response(400, "username is required")
    room, created = chat.open_room(current_user, username)
    if created:
        notify = current_app.extensions.get("parley.on_room_created")
        if notify is not None:
            notify(room.user_a_id, room.user_b_id)
    return jsonify(chat.room_summary(room, current_user.id)), 201 if created else 200


@bp.get("")
@login_required
def list_rooms() -> Any:
    rooms = chat.rooms_of(current_user.id)
    return jsonify(rooms=[chat.room_summary(room, current_user.id) for room in rooms])


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
        chat.messages_after([room.id], after, limit)
        if after is not None
        else chat.history(room, before, limit)
    )
    return jsonify(
        messages=[m.to_public() for m in page],
        peer=room.peer_of(current_user.id).to_public(),
        read_id=room.read_id_of(room.peer_of(current_user.id).id),
    )


@bp.post("/<int:room_id>/messages")
@login_required
def post_message(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    new = chat.validate_new_message(request.get_json(silent=True))
    message, created = chat.post_message(current_user.id, room, new)
    payload = message.to_public()
    if created:
        deliver = current_app.extensions.get("parley.on_message")
        if deliver is not None:
            deliver(room.user_a_id, room.user_b_id, payload)
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
    room.mark_read(current_user.id, message_id)
    db.session.commit()
    return jsonify(read_id=room.read_id_of(current_user.id))
