"""Short-lived TURN credentials (coturn's TURN REST API scheme) and the ICE servers to use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify
from flask_login import current_user, login_required

from .extensions import limiter

log = logging.getLogger("parley.turn")

bp = Blueprint("turn", __name__, url_prefix="/api")


def turn_credentials(secret: str, user_id: int, ttl: int, now: float) -> tuple[str, str]:
    """Return (username, password) that coturn's `use-auth-secret` accepts until now + ttl."""
    username = f"{int(now) + ttl}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def _limit() -> str:
    return str(current_app.config.get("TURN_RATE_LIMIT", "30 per minute"))


def _per_user() -> str:
    return f"turn:{current_user.get_id()}"


@bp.get("/ice-servers")
@login_required
@limiter.limit(_limit, key_func=_per_user)
def ice_servers() -> Any:
    config = current_app.config
    servers: list[dict[str, Any]] = []
    body: dict[str, Any] = {"iceTransportPolicy": config["ICE_TRANSPORT_POLICY"]}
    if config["STUN_URLS"]:
        servers.append({"urls": list(config["STUN_URLS"])})
    if config["TURN_URLS"] and config["TURN_SECRET"]:
        ttl = int(config["TURN_TTL"])
        username, password = turn_credentials(
            config["TURN_SECRET"], current_user.id, ttl, time.time()
        )
        uris = list(config["TURN_URLS"])
        servers.append({"urls": uris, "username": username, "credential": password})
        body.update(ttl=ttl, username=username, password=password, uris=uris)
    body["iceServers"] = servers
    return jsonify(body)


@bp.record_once
def _announce(state: Any) -> None:
    config = state.app.config
    if config["TURN_URLS"] and config["TURN_SECRET"]:
        log.info("TURN relays: %s", ", ".join(config["TURN_URLS"]))
    else:
        log.warning("no TURN configured: calls will use STUN/host candidates only")
