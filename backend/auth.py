"""Sign up, sign in, sign out and who-am-I, with flask-login sessions."""

from __future__ import annotations

import re
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Response, current_app, jsonify, request, session
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import chat
from .errors import error_response
from .extensions import db, limiter, login_manager
from .models import User

bp = Blueprint("auth", __name__, url_prefix="/api")

USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("parley-timing-equaliser")


def _auth_limit() -> str:
    return str(current_app.config["AUTH_RATE_LIMIT"])


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


@login_manager.unauthorized_handler
def _unauthorized() -> Any:
    return error_response(401, "sign in first")


def _sign_in(user: User) -> None:
    """Start a session; `sid` names it so signing out can close exactly its sockets."""
    login_user(user)
    session["sid"] = secrets.token_urlsafe(16)


def _open_echo_room(user: User) -> None:
    """Give everyone a room with the echo-test bot, once the bot has its account."""
    echo_name = current_app.config["ECHO_USERNAME"]
    if not echo_name or user.username == echo_name:
        return
    if db.session.scalar(select(User.id).where(User.username == echo_name)) is None:
        return
    room, created = chat.open_room(user, echo_name)
    if created:
        linked = current_app.extensions.get("parley.on_room_created")
        if linked is not None:
            linked(room.user_a_id, room.user_b_id)


def _credentials() -> tuple[str, str] | tuple[None, str]:
    """Return (username, password) from the JSON body, or (None, reason)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, "send JSON {username, password}"
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return None, "username and password are required"
    return username.strip().lower(), password


@bp.post("/register")
@limiter.limit(_auth_limit)
def register() -> Any:
    username, password = _credentials()
    if username is None:
        return error_response(400, password)
    if not USERNAME_RE.fullmatch(username):
        return error_response(400, "username: 3-32 characters of a-z, 0-9, _ . -")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return error_response(400, f"password: {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        return error_response(409, "that username is taken")
    if username == current_app.config["ECHO_USERNAME"] and not secrets.compare_digest(
        password, current_app.config["ECHO_PASSWORD"]
    ):
        return error_response(409, "that username is taken")
    user = User(username=username, password_hash=_hasher.hash(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return error_response(409, "that username is taken")
    _sign_in(user)
    _open_echo_room(user)
    return jsonify(user.to_public()), 201


@bp.post("/login")
@limiter.limit(_auth_limit)
def login() -> Any:
    username, password = _credentials()
    if username is None:
        return error_response(400, password)
    user = db.session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return error_response(401, "wrong username or password")
    if user is None:
        return error_response(401, "wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.session.commit()
    _sign_in(user)
    _open_echo_room(user)
    return jsonify(user.to_public())


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        user_id, sid = current_user.id, session.get("sid")
        logout_user()
        session.clear()
        close_sockets = current_app.extensions.get("parley.on_logout")
        if close_sockets is not None:
            close_sockets(user_id, sid)
    return Response(status=204)


@bp.get("/me")
@login_required
def me() -> Any:
    return jsonify(current_user.to_public())
