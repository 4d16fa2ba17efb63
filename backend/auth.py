"""Sign up, sign in, sign out and who-am-I, with flask-login sessions."""

from __future__ import annotations

import ipaddress
import math
import re
import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Blueprint, Response, current_app, jsonify, request, session
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import chat, signals
from .errors import error_response
from .extensions import db, limiter, login_manager
from .models import User

bp = Blueprint("auth", __name__, url_prefix="/api")

USERNAME_RE = re.compile(r"[a-z0-9_.-]{3,32}")
PASSWORD_MIN, PASSWORD_MAX = 8, 256
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("parley-timing-equaliser")
# A browser that signed in to an account keeps this signed cookie; its attempts on that account
# are counted on their own (OWASP's device cookies), so a guesser elsewhere never locks it out.
DEVICE_COOKIE = "parley_device"
DEVICE_MAX_AGE = 365 * 24 * 3600


def _auth_limit() -> str:
    return str(current_app.config["AUTH_RATE_LIMIT"])


def _device_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="parley.device")


def _device_of(username: str) -> str | None:
    """Return this browser's device id if its cookie was issued for username, else None."""
    token = request.cookies.get(DEVICE_COOKIE)
    if not token:
        return None
    try:
        owner, device = _device_signer().loads(token, max_age=DEVICE_MAX_AGE)
    except (BadSignature, ValueError, TypeError):
        return None
    return str(device) if owner == username else None


def _remember_device(response: Response, username: str) -> None:
    """Mark this browser as one that signed in to username (kept to the sign-in route)."""
    token = _device_signer().dumps([username, secrets.token_urlsafe(12)])
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=DEVICE_MAX_AGE,
        path="/api/login",
        secure=bool(current_app.config["SESSION_COOKIE_SECURE"]),
        httponly=True,
        samesite="Strict",
    )


def _address() -> str:
    """Return the client's address; an IPv6 client is its /64, which one host usually holds."""
    address = get_remote_address() or "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


def _failure_budgets(username: str) -> list[tuple[RateLimitItem, tuple[str, ...]]]:
    """Return the failed-sign-in limits an attempt on username is counted against."""
    config = current_app.config
    prefix = str(config["REDIS_PREFIX"])
    per_account = parse(str(config["LOGIN_ACCOUNT_LIMIT"]))
    per_address = parse(str(config["LOGIN_ADDRESS_LIMIT"]))
    # No account has a name outside the rules: one key for all of those keeps keys short.
    account = username if USERNAME_RE.fullmatch(username) else "(not a username)"
    device = _device_of(account)
    if device is not None:
        return [(per_account, (prefix, "signin-failures", "device", account, device))]
    return [
        (per_account, (prefix, "signin-failures", "account", account)),
        (per_address, (prefix, "signin-failures", "address", _address())),
    ]


def _failures() -> MovingWindowRateLimiter:
    # flask-limiter's storage: in memory, or Redis (REDIS_URL) so every worker counts together.
    return MovingWindowRateLimiter(limiter.storage)


def _seconds_to_wait(budgets: list[tuple[RateLimitItem, tuple[str, ...]]]) -> int:
    """Return how long until every budget has room for one more failure (0: now)."""
    failures, now, wait = _failures(), time.time(), 0.0
    for item, keys in budgets:
        if not failures.test(item, *keys):
            wait = max(wait, failures.get_window_stats(item, *keys).reset_time - now)
    return max(1, math.ceil(wait)) if wait > 0 else 0


def too_many_attempts(seconds: int) -> tuple[Response, int]:
    """Return the 429 that tells the person when to try again."""
    response, status = error_response(429, f"Too many attempts. Try again in {seconds} s.")
    response.headers["Retry-After"] = str(seconds)
    return response, status


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
        signals.emit(signals.room_created, members=chat.member_ids(room))


def _account(user: User) -> dict[str, Any]:
    """Return the signed-in user and the echo-test bot's username (the page labels its room)."""
    return {**user.to_public(), "echo_username": current_app.config["ECHO_USERNAME"] or None}


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
    response = jsonify(_account(user))
    _remember_device(response, user.username)
    return response, 201


@bp.post("/login")
def login() -> Any:
    """Sign in; only failures are counted, per account and (a larger budget) per address."""
    username, password = _credentials()
    if username is None:
        return error_response(400, password)
    budgets = _failure_budgets(username)
    wait = _seconds_to_wait(budgets)
    if wait:
        return too_many_attempts(wait)
    user = db.session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        if user is None:
            raise VerificationError
    except (VerificationError, InvalidHashError):
        for item, keys in budgets:
            _failures().hit(item, *keys)
        return error_response(401, "wrong username or password")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        db.session.commit()
    _sign_in(user)
    _open_echo_room(user)
    response = jsonify(_account(user))
    _remember_device(response, user.username)
    return response


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        user_id, sid = current_user.id, session.get("sid")
        logout_user()
        session.clear()
        signals.emit(signals.signed_out, user_id=user_id, sid=sid)
    return Response(status=204)


@bp.get("/me")
@login_required
def me() -> Any:
    return jsonify(_account(current_user))
