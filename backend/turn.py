"""Short-lived TURN credentials (coturn's TURN REST API scheme) and the ICE servers to use."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user, login_required

from .errors import error_response
from .extensions import limiter
from .security import csrf_exempt

log = logging.getLogger("parley.turn")

bp = Blueprint("turn", __name__, url_prefix="/api")


def turn_credentials(secret: str, user: int | str, ttl: int, now: float) -> tuple[str, str]:
    """Return (username, password) that coturn's `use-auth-secret` accepts until now + ttl;
    `user` (a user id, or "janus") is named in the username."""
    username = f"{int(now) + ttl}:{user}"
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


@bp.route("/turn/janus", methods=["GET", "POST"])
@csrf_exempt  # no cookie is involved: Janus's key is the credential
def janus_turn() -> Any:
    """TURN credentials for Janus (its `turn_rest_api`): the draft-uberti-behave-turn-rest answer.

    Janus asks before every peer connection it sets up, presenting JANUS_API_SECRET as `key`
    (the secret Parley already shares with it). The username is `<expiry>:janus`.
    """
    config = current_app.config
    expected = str(config.get("JANUS_API_SECRET") or "")
    if not config.get("JANUS_URL") or not expected:
        return error_response(404, "no SFU is configured")
    key = request.values.get("key") or request.values.get("api") or ""
    if not hmac.compare_digest(key.encode(), expected.encode()):
        log.warning("TURN credentials for Janus refused: wrong key from %s", request.remote_addr)
        return error_response(403, "wrong key")
    if not (config["TURN_URLS"] and config["TURN_SECRET"]):
        return error_response(404, "no TURN is configured")
    ttl = int(config["TURN_TTL"])
    username, password = turn_credentials(config["TURN_SECRET"], "janus", ttl, time.time())
    return jsonify(username=username, password=password, ttl=ttl, uris=list(config["TURN_URLS"]))


@bp.record_once
def _announce(state: Any) -> None:
    config = state.app.config
    if config["TURN_URLS"] and config["TURN_SECRET"]:
        log.info("TURN relays: %s", ", ".join(config["TURN_URLS"]))
    else:
        log.warning("no TURN configured: calls will use STUN/host candidates only")
