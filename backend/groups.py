"""Group rooms over the JSON API: create one, add a member, rename it, leave it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask_login import current_user, login_required

from . import chat, membership, signals
from .errors import error_response
from .models import Room

bp = Blueprint("groups", __name__, url_prefix="/api")


@bp.errorhandler(chat.ChatError)
def _chat_error(exc: chat.ChatError) -> Any:
    return error_response(exc.status, exc.message)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _changed(
    room: Room,
    message: dict[str, Any] | None,
    added: list[int] | None = None,
    removed: list[int] | None = None,
) -> None:
    """Tell the members' sockets who is in the room now, then show them its system message."""
    members = chat.member_ids(room)
    signals.emit(
        signals.members_changed,
        room_id=room.id,
        members=members,
        added=added or [],
        removed=removed or [],
        room=chat.room_public(room),
    )
    if message is not None:
        signals.emit(signals.message_posted, members=members, message=message)


@bp.post("/groups")
@login_required
def create_group() -> Any:
    body = _body()
    room, message = membership.create_group(current_user, body.get("name"), body.get("usernames"))
    _changed(room, message, added=chat.member_ids(room))
    return jsonify(chat.room_summary(room, current_user.id)), 201


@bp.post("/rooms/<int:room_id>/members")
@login_required
def add_member(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    username = _body().get("username")
    if not isinstance(username, str) or not username.strip():
        return error_response(400, "username is required")
    user, message = membership.add_member(current_user, room, username)
    _changed(room, message, added=[user.id])
    return jsonify(chat.room_summary(room, current_user.id))


@bp.patch("/rooms/<int:room_id>")
@login_required
def rename(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    message = membership.rename(current_user, room, _body().get("name"))
    if message is not None:
        _changed(room, message)
    return jsonify(chat.room_summary(room, current_user.id))


@bp.delete("/rooms/<int:room_id>/members/me")
@login_required
def leave(room_id: int) -> Any:
    room = chat.room_for(current_user.id, room_id)
    user_id = current_user.id
    message = membership.leave(current_user, room)
    _changed(room, message, removed=[user_id])
    return "", 204
