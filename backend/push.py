"""Web Push: VAPID keys, per-device subscriptions, and ringing devices that have no open socket."""

from __future__ import annotations

import base64
import logging
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask_login import current_user, login_required
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from sqlalchemy import delete, select

from .errors import error_response
from .extensions import db
from .models import PushSubscription
from .signaling.protocol import PushPayload

bp = Blueprint("push", __name__, url_prefix="/api/push")
log = logging.getLogger("parley.push")

# How long a push service keeps an undelivered call notification: after the ring it is noise.
CALL_PUSH_TTL = 60


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_vapid(instance_path: Path) -> Vapid:
    """Return the VAPID key from VAPID_PRIVATE_KEY, or the one kept under instance/ (made once)."""
    from_env = os.environ.get("VAPID_PRIVATE_KEY", "").strip()
    if from_env:
        return Vapid.from_string(private_key=from_env.replace("\\n", "\n"))
    key_file = instance_path / "vapid_private.pem"
    if key_file.exists():
        return Vapid.from_file(str(key_file))
    vapid = Vapid()
    vapid.generate_keys()
    instance_path.mkdir(parents=True, exist_ok=True)
    vapid.save_key(str(key_file))
    key_file.chmod(0o600)
    return vapid


def public_key(vapid: Vapid) -> str:
    """Return the applicationServerKey browsers subscribe with (base64url, uncompressed point)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(raw)


class PushSender:
    """Send pushes to a user's devices in the background and forget the ones that are gone."""

    def __init__(self, app: Flask, vapid: Vapid, subject: str) -> None:
        self.app = app
        self.vapid = vapid
        self.subject = subject

    def notify(
        self,
        user_id: int,
        payload: PushPayload,
        *,
        skip: set[str] | None = None,
        ttl: int = CALL_PUSH_TTL,
        wait: bool = False,
    ) -> threading.Thread:
        """Push payload to every subscription of user_id except the endpoints in skip."""
        thread = threading.Thread(
            target=self._send_all, args=(user_id, payload, skip or set(), ttl), daemon=True
        )
        thread.start()
        if wait:
            thread.join()
        return thread

    def _send_all(self, user_id: int, payload: PushPayload, skip: set[str], ttl: int) -> None:
        with self.app.app_context():
            subs = db.session.scalars(
                select(PushSubscription).where(PushSubscription.user_id == user_id)
            ).all()
            targets = [(s.id, s.endpoint, s.p256dh, s.auth) for s in subs if s.endpoint not in skip]
            db.session.remove()
        gone: list[int] = []
        data = payload.model_dump_json(by_alias=True)
        for sub_id, endpoint, p256dh, auth in targets:
            try:
                webpush(
                    {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}},
                    data=data,
                    vapid_private_key=self.vapid,
                    vapid_claims={"sub": self.subject},
                    ttl=ttl,
                    headers={"Urgency": "high"},
                    timeout=10,
                )
            except WebPushException as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status in (404, 410):
                    gone.append(sub_id)
                else:
                    log.warning("push to %s failed: %s", urlsplit(endpoint).netloc, status)
            except OSError as exc:
                log.warning("push to %s failed: %s", urlsplit(endpoint).netloc, exc)
        if gone:
            with self.app.app_context():
                db.session.execute(delete(PushSubscription).where(PushSubscription.id.in_(gone)))
                db.session.commit()
                db.session.remove()
            log.info("deleted %d expired push subscription(s) of user %s", len(gone), user_id)


def sender() -> PushSender:
    """Return this app's PushSender."""
    push: PushSender = current_app.extensions["parley.push"]
    return push


@bp.record_once
def _setup(state: Any) -> None:
    app = state.app
    vapid = load_vapid(Path(app.instance_path))
    app.extensions["parley.push"] = PushSender(
        app, vapid, app.config.get("VAPID_SUBJECT", "mailto:parley@localhost")
    )


@bp.get("/key")
def key() -> Any:
    """Return the VAPID public key for PushManager.subscribe()."""
    return jsonify(publicKey=public_key(sender().vapid))


def _subscription_body() -> tuple[str, str, str] | None:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None
    endpoint, keys = body.get("endpoint"), body.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        return None
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    try:
        parts = urlsplit(endpoint)
    except ValueError:  # e.g. "https://[" (an unclosed IPv6 host)
        return None
    if parts.scheme not in ("https", "http") or not parts.netloc or len(endpoint) > 1024:
        return None
    if not isinstance(p256dh, str) or not isinstance(auth, str):
        return None
    if not 80 <= len(p256dh) <= 100 or not 16 <= len(auth) <= 32:
        return None
    return endpoint, p256dh, auth


@bp.post("/subscriptions")
@login_required
def subscribe() -> Any:
    """Store this device's subscription (re-subscribing moves it to the signed-in user)."""
    parsed = _subscription_body()
    if parsed is None:
        return error_response(400, "send a PushSubscription: {endpoint, keys: {p256dh, auth}}")
    endpoint, p256dh, auth = parsed
    sub = db.session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint))
    created = sub is None
    if sub is None:
        sub = PushSubscription(endpoint=endpoint, user_id=current_user.id, p256dh="", auth="")
        db.session.add(sub)
    sub.user_id, sub.p256dh, sub.auth = current_user.id, p256dh, auth
    sub.user_agent = (request.headers.get("User-Agent") or "")[:256]
    db.session.commit()
    return jsonify(id=sub.id), 201 if created else 200


@bp.delete("/subscriptions")
@login_required
def unsubscribe() -> Any:
    """Forget this device's subscription."""
    body = request.get_json(silent=True)
    endpoint = body.get("endpoint") if isinstance(body, dict) else None
    if not isinstance(endpoint, str):
        return error_response(400, "endpoint is required")
    db.session.execute(
        delete(PushSubscription).where(
            PushSubscription.endpoint == endpoint, PushSubscription.user_id == current_user.id
        )
    )
    db.session.commit()
    return Response(status=204)
